"""SIGTERM to a web process mid-answer: every answer is saved, with what it
produced and why it ended, before the process exits."""

import signal
import threading
import time

import pytest

from conversations.models import Turn
from harness.fake_upstream import Behaviour
from harness.servers import PYTHON, Service, free_port

from .helpers import make_api_user, process_env, read_until_deltas, sse_events, text_of

GRACE_SECONDS = 1.0


@pytest.fixture
def server(tmp_path, upstream_server, transactional_db):
    env = process_env(upstream_server.url, CHATSTREAM_SHUTDOWN_GRACE_SECONDS=str(GRACE_SECONDS))
    port = free_port()
    argv = [PYTHON, "-m", "uvicorn", "harness.asgi:application", "--port", str(port)]
    argv += ["--timeout-graceful-shutdown", "10", "--log-level", "info"]  # lifespan: uvicorn's default
    with Service("web", argv, port, log_dir=tmp_path, env=env) as service:
        yield service


def test_sigterm_saves_every_answer_before_the_process_exits(server, upstream):
    client = make_api_user(f"http://127.0.0.1:{server.port}", "dora").client
    upstream.behaviour = Behaviour(pace=0.05, tokens=2000)  # far longer than the grace
    received: dict[str, str] = {}
    started = threading.Barrier(4)

    def converse(name: str) -> None:
        conversation_id = client.post("/api/conversations", json={}).json()["id"]
        with client.stream("POST", f"/api/conversations/{conversation_id}/messages", json={"content": name}) as reply:
            events = sse_events(reply)
            _, text, _ = read_until_deltas(events, 1)
            started.wait()
            received[conversation_id] = (text, list(events))

    threads = [threading.Thread(target=converse, args=(f"stream {index}",)) for index in range(3)]
    for thread in threads:
        thread.start()
    started.wait(timeout=10)
    signalled_at = time.monotonic()
    server.proc.send_signal(signal.SIGTERM)
    server.proc.wait(timeout=15)
    exited_after = time.monotonic() - signalled_at
    for thread in threads:
        thread.join(timeout=5)
    client.close()

    assert GRACE_SECONDS <= exited_after < GRACE_SECONDS + 5
    answers = Turn.objects.filter(role=Turn.Role.ASSISTANT)
    assert answers.count() == 3  # every started answer saved, once
    for turn in answers:
        first, events = received[str(turn.conversation_id)]
        assert events[-1]["event"] == "error" and events[-1]["data"]["code"] == "server_shutdown"
        assert (turn.finish_reason, turn.error_code) == ("error", "server_shutdown")
        seen = first + text_of(events)
        assert seen == turn.content and turn.content.startswith("t0 ")  # what the client saw, kept
    assert upstream.closed_within(1.0)  # the fake notices on its own thread
    assert all(call.disconnected_at is not None for call in upstream.calls)  # the model calls were closed
    assert "interrupted 3 answer(s)" in server.log_path.read_text()


def test_an_answer_that_ends_within_the_grace_ends_normally(server, upstream):
    upstream.behaviour = Behaviour(pace=0.05, tokens=12)  # about 0.6 s: inside the grace
    with make_api_user(f"http://127.0.0.1:{server.port}", "eve").client as client:
        conversation_id = client.post("/api/conversations", json={}).json()["id"]
        with client.stream("POST", f"/api/conversations/{conversation_id}/messages", json={"content": "hi"}) as reply:
            events = sse_events(reply)
            read_until_deltas(events, 1)
            server.proc.send_signal(signal.SIGTERM)
            rest = list(events)
    server.proc.wait(timeout=15)
    assert rest[-1]["event"] == "done" and rest[-1]["data"]["finish_reason"] == "stop"
    assert Turn.objects.get(role=Turn.Role.ASSISTANT).finish_reason == "stop"
