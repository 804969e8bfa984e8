"""What a hostile or careless client, or a failing server part, meets: every
error the JSON shape and logged, nothing cached, standard SSE clients told
when to stop. Through a real ASGI server."""

import json
import logging
import socket
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
import redis
from django.contrib.auth import get_user_model
from django.core.handlers.asgi import ASGIHandler
from django.db import OperationalError

from conversations import selectors
from conversations.asgi import RequestGuard
from harness import stacks
from harness.fake_upstream import Behaviour
from harness.servers import ServerThread

from .helpers import (
    log_in,
    post_and_read,
    read_events,
    read_until_deltas,
    redis_url,
    sse_events,
    stream,
    text_of,
    wait_for,
    wait_for_answer,
)


def raw_client(api_user) -> httpx.Client:
    """A client without the API-description check: 5xx are not described."""
    return httpx.Client(base_url=str(api_user.client.base_url), headers=dict(api_user.client.headers), timeout=30)


def test_a_server_error_is_json_logged_with_its_trace_id(alice, monkeypatch, caplog):
    def broken(**kwargs):
        raise RuntimeError("a bug in a selector")

    monkeypatch.setattr(selectors, "owned_conversations", broken)
    with raw_client(alice) as client, caplog.at_level(logging.ERROR, logger="conversations"):
        response = client.get("/api/conversations", headers={"X-Request-ID": "trace-500-test"})
    assert response.status_code == 500 and response.headers["content-type"] == "application/json"
    error = response.json()["error"]
    assert error["code"] == "internal_error" and error["trace_id"] == "trace-500-test"
    assert response.headers["X-Request-ID"] == "trace-500-test"
    assert "a bug in a selector" not in response.text  # the log has it, not the client
    logged = [record for record in caplog.records if "trace-500-test" in record.getMessage()]
    assert logged and logged[0].exc_info is not None and "a bug in a selector" in str(logged[0].exc_info[1])


def test_a_database_that_is_down_is_a_503_at_once(alice, monkeypatch):
    def down(**kwargs):
        raise OperationalError("connection refused")

    monkeypatch.setattr(selectors, "owned_conversations", down)
    with raw_client(alice) as client:
        response = client.get("/api/conversations")
    assert response.status_code == 503 and response.json()["error"]["code"] == "database_unavailable"
    assert response.headers["Retry-After"] == "5"


def test_api_json_is_never_cached_and_streams_say_how(alice, upstream):
    upstream.behaviour = Behaviour(tokens=2)
    conversation_id, _, stream = post_and_read(alice)
    assert stream.headers["Cache-Control"] == "no-cache, no-transform"
    for response in (
        alice.client.get("/api/conversations"),
        alice.client.get(f"/api/conversations/{conversation_id}"),
        alice.client.get("/api/conversations/not-an-id"),
        alice.client.get("/api/nowhere"),
        httpx.get(f"{alice.client.base_url}/api/conversations"),  # 401
    ):
        assert response.headers["Cache-Control"] == "no-store", response.request.url


def test_an_eventsource_reconnecting_after_the_end_is_told_to_stop(alice, upstream):
    upstream.behaviour = Behaviour(tokens=5)
    conversation_id, events, response = post_and_read(alice)
    assert response.text.startswith(": stream open\nretry: 3000\n\n")
    turn_id, end = events[0]["data"]["turn_id"], events[-1]["id"]

    # What an EventSource does when the stream closes: reconnect with the last id.
    again = alice.client.get(f"/api/turns/{turn_id}/events", headers={"Last-Event-ID": end})
    assert again.status_code == 204 and again.content == b""
    # In the middle, it gets the rest; an explicit ?after= at the end still replays the final event.
    middle = alice.client.get(f"/api/turns/{turn_id}/events", headers={"Last-Event-ID": "6"})
    assert text_of(read_events(middle)) == "t2 t3 t4 "
    replay = read_events(alice.client.get(f"/api/turns/{turn_id}/events", params={"after": end}))
    assert [event["event"] for event in replay] == ["done"]


def test_wrong_api_keys_are_throttled_per_address(alice, throttled):
    with raw_client(alice) as client:
        statuses = [
            client.get("/api/conversations", headers={"Authorization": f"Bearer cs_guess{i}_x"}).status_code
            for i in range(4)
        ]
        assert statuses == [401, 401, 401, 429]
        refused = client.get("/api/conversations")  # alice's own good key, from the same address
    assert refused.status_code == 429 and refused.json()["error"]["code"] == "too_many_failures"
    assert 0 < int(refused.headers["Retry-After"]) <= 900


def test_wrong_passwords_are_throttled_per_account(live, throttled):
    get_user_model().objects.create_user("vic", password="the-right-password")
    with httpx.Client(base_url=live.url) as browser:
        guesses = [log_in(browser, "/accounts/login/", "vic", f"guess-{i}") for i in range(3)]
        assert [response.status_code for response in guesses] == [200, 200, 200]  # the form again
        blocked = log_in(browser, "/accounts/login/", "vic", "the-right-password")
    assert blocked.status_code == 429 and "Too many failed attempts" in blocked.text
    assert int(blocked.headers["Retry-After"]) > 0


def test_sign_up_is_closed_unless_enabled(live, settings):
    settings.CHATSTREAM_SIGNUP = False
    assert httpx.get(f"{live.url}/accounts/signup/").status_code == 404
    assert "Sign up" not in httpx.get(f"{live.url}/accounts/login/").text


class Recorder:
    """An ASGI app behind the guard: what reached it, and its body."""

    def __init__(self) -> None:
        self.bodies: list[bytes] = []

    async def __call__(self, scope, receive, send) -> None:
        message = await receive()
        self.bodies.append(message["body"])
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})


@pytest.fixture
def guarded(alice):
    """The guard before a Recorder; alice's key (`server.key`) is one it lets through."""
    recorder = Recorder()
    with ServerThread(RequestGuard(recorder)) as server:
        server.recorder = recorder
        server.key = alice.key
        yield server


@pytest.fixture
def guarded_app(live, settings):
    """The app served with the guard: the opt-in handler applies it, Django's
    own is wrapped in it (as docs/deployment.md tells a project to)."""
    if stacks.uses_opt_in_handler(settings.STACK):
        yield live
        return
    with ServerThread(RequestGuard(ASGIHandler())) as server:
        yield server


def raw_request(server, head: str, body: bytes = b"", wait: float = 5.0) -> bytes:
    """Send a request's head (and some body) on a socket; what comes back
    before the server closes the connection, or within `wait`."""
    host, port = server.url.removeprefix("http://").split(":")
    received = b""
    with socket.create_connection((host, int(port)), timeout=wait) as connection:
        connection.sendall(head.replace("\n", "\r\n").encode() + b"\r\n" + body)
        try:
            while chunk := connection.recv(65536):
                received += chunk
        except (TimeoutError, ConnectionResetError):
            pass
    return received


def test_an_oversized_body_is_refused_before_it_is_sent(guarded, settings):
    settings.CHATSTREAM_MAX_BODY_BYTES = 1000
    started = time.monotonic()
    # 100 MB announced, none of it sent: the answer comes at once.
    answer = raw_request(guarded, "POST /api/conversations HTTP/1.1\nHost: x\nContent-Length: 100000000\n")
    assert answer.startswith(b"HTTP/1.1 413") and b'"body_too_large"' in answer
    assert time.monotonic() - started < 2 and guarded.recorder.bodies == []


def test_a_body_without_credentials_is_refused_before_it_is_read(guarded):
    answer = raw_request(guarded, "POST /api/conversations HTTP/1.1\nHost: x\nContent-Length: 5000\n")
    assert answer.startswith(b"HTTP/1.1 401") and b'"not_authenticated"' in answer
    assert guarded.recorder.bodies == []


@pytest.mark.parametrize(
    "credential", ["Cookie: sessionid=made-up", "Authorization: Bearer cs_123456abcdef_made-up", "Authorization: x"]
)
def test_a_body_with_made_up_credentials_is_refused_before_it_is_read(guarded_app, settings, credential):
    settings.CHATSTREAM_BODY_TIMEOUT_SECONDS = 5
    started = time.monotonic()
    # 1 MiB announced, none of it sent: the answer comes at once, not when the body would have.
    head = f"POST /api/conversations HTTP/1.1\nHost: x\n{credential}\nContent-Length: 1048576\n"
    answer = raw_request(guarded_app, head)
    assert answer.startswith(b"HTTP/1.1 401") and time.monotonic() - started < 2, answer[:200]


def test_a_body_that_trickles_in_is_given_up_on(guarded, settings):
    settings.CHATSTREAM_BODY_TIMEOUT_SECONDS = 0.5
    head = f"POST /api/conversations HTTP/1.1\nHost: x\nAuthorization: Bearer {guarded.key}\nContent-Length: 100\n"
    answer = raw_request(guarded, head, body=b"{", wait=3)  # 1 byte of 100, then nothing
    assert answer.startswith(b"HTTP/1.1 408") and guarded.recorder.bodies == []


def test_an_upload_announced_over_the_file_limit_is_refused_before_it_is_sent(guarded_app, alice):
    started = time.monotonic()
    head = f"POST /api/files HTTP/1.1\nHost: x\nAuthorization: Bearer {alice.key}\nContent-Length: 100000000\n"
    answer = raw_request(guarded_app, head)
    assert answer.startswith(b"HTTP/1.1 413") and b'"file_too_large"' in answer
    assert time.monotonic() - started < 2


def test_an_upload_that_stops_arriving_is_given_up_on(guarded_app, alice, settings):
    settings.CHATSTREAM_BODY_TIMEOUT_SECONDS = 0.5
    head = (
        f"POST /api/files HTTP/1.1\nHost: x\nAuthorization: Bearer {alice.key}\n"
        "Content-Type: multipart/form-data; boundary=b\nContent-Length: 5000000\n"
    )
    started = time.monotonic()
    answer = raw_request(guarded_app, head, body=b"--b\r\n" + b"x" * 100_000, wait=5)
    assert answer.startswith(b"HTTP/1.1 408") and time.monotonic() - started < 3


def test_what_the_guard_lets_through_arrives_whole(guarded):
    body = json.dumps({"content": "x" * 5000}).encode()
    with httpx.Client(base_url=guarded.url) as client:
        response = client.post("/api/conversations", content=body, headers={"Authorization": f"Bearer {guarded.key}"})
        outside = client.post("/accounts/login/", content=b"a=1")  # not the API: not its business
    assert response.status_code == 200 and guarded.recorder.bodies == [body, b"a=1"]
    assert outside.status_code == 200


def test_the_projects_handler_guards_the_api(live, settings):
    if not stacks.uses_opt_in_handler(settings.STACK):
        pytest.skip("Django's own handler reads the body first: a project wraps it in RequestGuard")
    settings.CHATSTREAM_MAX_BODY_BYTES = 1000
    answer = raw_request(live, "POST /api/conversations HTTP/1.1\nHost: x\nContent-Length: 100000000\n")
    assert answer.startswith(b"HTTP/1.1 413")


@pytest.fixture
def on_redis(settings, live):
    """The in-process server on a Redis of the test's choosing. Changing
    REDIS_URL makes the app forget its clients and singletons, closing the
    old ones on the server's loop (conversations/state.py), as setting it
    back afterwards does."""

    def use(url: str, **more) -> None:
        settings.REDIS_URL = url
        for name, value in more.items():
            setattr(settings, name, value)

    return use


def test_a_redis_that_cannot_be_reached_is_logged_once_and_answers_go_on(alice, upstream, on_redis, caplog):
    on_redis("redis://127.0.0.1:1/0", CHATSTREAM_MAX_CONCURRENT_STREAMS=2, CHATSTREAM_MESSAGES_PER_MINUTE=50)
    upstream.behaviour = Behaviour(tokens=3)
    with caplog.at_level(logging.ERROR, logger="conversations"):
        for _ in range(4):
            conversation_id, events, response = post_and_read(alice)
            assert response.status_code == 200 and events[-1]["event"] == "done"
            assert alice.client.get(f"/api/conversations/{conversation_id}").status_code == 200
    troubles = [record for record in caplog.records if "Redis (REDIS_URL) failed" in record.getMessage()]
    # One line per kind of trouble (counting, a slot, sharing...), not one per request.
    kinds = {record.getMessage().split(":")[0] for record in troubles}
    assert 0 < len(troubles) == len(kinds) <= 6


def test_a_burst_larger_than_the_redis_pool_waits_for_connections(alice, upstream, on_redis):
    on_redis(redis_url(1), CHATSTREAM_REDIS_MAX_CONNECTIONS=2, CHATSTREAM_MAX_CONCURRENT_STREAMS=50)
    upstream.behaviour = Behaviour(tokens=5, pace=0.01)
    conversation_ids = [alice.new_conversation() for _ in range(30)]

    def send(conversation_id: str) -> tuple[int, str]:
        with raw_client(alice) as client:
            response = client.post(f"/api/conversations/{conversation_id}/messages", json={"content": "Hi"})
            return response.status_code, response.text

    with ThreadPoolExecutor(30) as pool:
        results = list(pool.map(send, conversation_ids))
    assert [status for status, _ in results] == [200] * 30
    assert all("event: done" in text for _, text in results)


def test_stream_slots_are_leases_renewed_while_the_answer_lives(alice, upstream, on_redis, monkeypatch, request):
    """A process that died holding a slot frees it within the lease (three
    answer leases: here 1 s); a live answer keeps its own slot however long
    it runs."""
    on_redis(redis_url(1), CHATSTREAM_MAX_CONCURRENT_STREAMS=1, CHATSTREAM_ANSWER_LEASE_SECONDS=0.3)
    slots = redis.Redis.from_url(redis_url(1))
    request.addfinalizer(slots.close)
    key = f"chatstream:streams:{alice.user.pk}"
    slots.delete(key)
    slots.zadd(key, {"held-by-a-dead-process": time.time() + 0.6})  # as a process leaves it, killed between renewals
    upstream.behaviour = Behaviour(tokens=2)
    conversation_id = alice.new_conversation()
    first = alice.client.post(f"/api/conversations/{conversation_id}/messages", json={"content": "Hi"})
    assert first.status_code == 429 and first.json()["error"]["code"] == "too_many_streams"
    time.sleep(0.7)
    assert read_events(alice.client.post(f"/api/conversations/{conversation_id}/messages", json={"content": "Hi"}))

    # Given back as the answer's task ends, just after its last event.
    wait_for(lambda: not slots.zcard(key), 5, "the answer's slot given back")
    upstream.behaviour = Behaviour(tokens=60, pace=0.025)  # 1.5 s: longer than a slot's 1 s
    with stream(alice, conversation_id) as response:
        events = sse_events(response)
        read_until_deltas(events, 45)  # at least 1.1 s in: an unrenewed slot has lapsed
        refused = alice.client.post(f"/api/conversations/{conversation_id}/messages", json={"content": "Again"})
        assert refused.status_code == 429  # the live answer's slot was renewed
        list(events)


def test_with_redis_a_stalled_reader_still_holds_the_model_back(alice, upstream, on_redis, settings):
    """The journal's publisher reads the whole answer as it comes; it used to
    count as a reader, so a client that stopped reading held nothing back."""
    on_redis(redis_url(1))
    settings.CHATSTREAM_READER_STALL_SECONDS = 0.5
    size = 24_000_000
    upstream.behaviour = Behaviour(text="r" * size, piece_chars=1024)
    conversation_id = alice.new_conversation()
    with stream(alice, conversation_id) as response:
        chunks = response.iter_raw()
        next(chunks)
        turn = wait_for_answer(conversation_id, timeout=10)
    assert turn.finish_reason == "client_stalled" and len(turn.content) < size // 4


def test_an_idle_process_on_redis_logs_nothing(alice, upstream, on_redis, caplog):
    """The channel layer's receive blocks on Redis for 5 s; redis-py's socket
    timeout was 5 s too, so an idle process logged a timeout every ~6 s."""
    on_redis(redis_url(1))
    upstream.behaviour = Behaviour(tokens=2)
    with caplog.at_level(logging.WARNING, logger="conversations"):
        post_and_read(alice)  # the process opens its channel
        time.sleep(7)  # more than one blocking receive
    assert [record.getMessage() for record in caplog.records if record.levelno >= logging.WARNING] == []
