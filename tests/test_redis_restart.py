"""Redis restarting empty (no persistence) while two server processes share
an answer: the answer goes on in its process, which writes it to Redis
again; a reader in the other process follows it to its end, and a Stop
sent there meanwhile is told to try again (503), not that there is no such
answer (404). On a Redis server of the test's own, never the machine's."""

import asyncio
import threading
import time

import httpx
import pytest

from conversations.live.redis import Process
from harness.fake_upstream import Behaviour
from harness.servers import Service, free_port

from .helpers import Pair, saved_answer, sse_events, start_event_and_a_delta, start_pair, stream, text_and_final

LEASE_SECONDS = 1.0  # how soon a process notices that Redis lost its answer's lease


class OwnRedis:
    """A redis-server without persistence on a port of its own, that a test
    can kill and start again on the same port: it comes back empty."""

    def __init__(self, log_dir) -> None:
        self.port, self.log_dir = free_port(), log_dir
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.service: Service | None = None

    def start(self) -> None:
        argv = ["redis-server", "--port", str(self.port), "--save", "", "--appendonly", "no"]
        argv += ["--dir", str(self.log_dir)]
        self.service = Service("redis", argv, self.port, log_dir=self.log_dir).__enter__()

    def kill(self) -> None:
        assert self.service is not None and self.service.proc is not None
        self.service.proc.kill()
        self.service.proc.wait()

    def stop(self) -> None:
        if self.service is not None:
            self.service.__exit__()


@pytest.fixture(scope="module")
def own_redis(tmp_path_factory):
    server = OwnRedis(tmp_path_factory.mktemp("redis"))
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def pair(tmp_path_factory, upstream_server, django_db_setup, own_redis):
    # Heartbeats every half second: a reader looks at Redis in each quiet spell.
    more = {"CHATSTREAM_ANSWER_LEASE_SECONDS": str(LEASE_SECONDS), "CHATSTREAM_HEARTBEAT_SECONDS": "0.5"}
    a, b = start_pair(tmp_path_factory, upstream_server.url, "cancel", redis=own_redis.url, **more)
    with a, b:
        yield Pair.of(a, b)


def follow_in_a_thread(api_user, turn_id: str) -> tuple[threading.Thread, threading.Event, list[dict]]:
    """Read the answer's events from the start in a thread; the Event is set
    at its first delta."""
    events: list[dict] = []
    reading = threading.Event()

    def read() -> None:
        try:
            with api_user.client.stream("GET", f"/api/turns/{turn_id}/events") as response:
                for event in sse_events(response):
                    events.append(event)
                    if event["event"] == "delta":
                        reading.set()
        except httpx.HTTPError as exc:  # the stream broke: the test sees its last event is not the end
            events.append({"event": "broken", "id": None, "data": {"error": repr(exc)}})

    thread = threading.Thread(target=read, daemon=True)
    thread.start()
    return thread, reading, events


def test_a_reader_on_b_gets_the_whole_answer_through_a_redis_restart(on, upstream, own_redis):
    upstream.behaviour = Behaviour(pace=0.02, tokens=100)
    conversation_id = on["a"].new_conversation()
    with stream(on["a"], conversation_id) as response:
        events = sse_events(response)
        turn_id = start_event_and_a_delta(events)
        reader, reading, followed = follow_in_a_thread(on["b"], turn_id)
        assert reading.wait(5)
        own_redis.kill()
        refused = on["b"].client.post(f"/api/turns/{turn_id}/cancel")
        own_redis.start()
        restarted_at = time.monotonic()
        rest = list(events)
        reader.join(10)

    saved = saved_answer(conversation_id)
    assert refused.status_code == 503, refused.text
    assert refused.json()["error"]["code"] == "answer_unreachable"
    assert rest[-1]["event"] == "done" and saved.finish_reason == "stop"
    assert not reader.is_alive()
    text, final = text_and_final(followed)
    assert (final["event"], final["data"]["finish_reason"]) == ("done", "stop"), final
    assert text == saved.content and int(final["id"]) == len(saved.content)
    finished_at = upstream.calls[-1].finished_at
    assert finished_at is not None and finished_at > restarted_at  # the answer went on after Redis came back


def test_after_a_redis_restart_a_stop_on_b_reaches_the_answer_on_a(on, upstream, own_redis):
    upstream.behaviour = Behaviour(pace=0.02, tokens=500)
    conversation_id = on["a"].new_conversation()
    with stream(on["a"], conversation_id) as response:
        events = sse_events(response)
        turn_id = start_event_and_a_delta(events)
        own_redis.kill()
        own_redis.start()
        # Until process A has written its answer to Redis again, B cannot
        # reach it: 503, try again (as Retry-After says).
        deadline = time.monotonic() + 3
        while (stopped := on["b"].client.post(f"/api/turns/{turn_id}/cancel")).status_code == 503:
            assert time.monotonic() < deadline, "the answer was never written to Redis again"
            time.sleep(0.05)
        rest = list(events)

    assert stopped.status_code == 200, stopped.text
    assert stopped.json()["finish_reason"] == "cancelled"
    assert rest[-1]["event"] == "done" and rest[-1]["data"]["finish_reason"] == "cancelled"
    assert saved_answer(conversation_id).finish_reason == "cancelled"


def test_a_stop_sent_just_after_a_redis_restart_is_not_lost(own_redis, settings):
    """The channel layer's pool hands out a connection the old Redis had open
    (its first send fails: "Connection closed by server"); a cancel is sent
    once more rather than lost, which left a Stop waiting 10 s for nothing."""
    settings.REDIS_URL = own_redis.url

    async def scenario() -> None:
        process = Process()
        channel = await process.layer.new_channel()
        await process.tell(channel, "answer.cancel", "before")  # the pool now holds a connection
        assert (await process.layer.receive(channel))["turn"] == "before"
        own_redis.kill()
        own_redis.start()
        await process.tell(channel, "answer.cancel", "after")
        async with asyncio.timeout(5):
            assert (await process.layer.receive(channel))["turn"] == "after"
        await process.layer.close_pools()
        await process.redis.aclose()

    asyncio.run(scenario())
