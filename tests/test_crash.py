"""A server process killed with -9 mid-answer (two real uvicorn processes on
Redis and the test database): the other one notices as the answer's lease
lapses, saves the turn with everything the journal holds, and its readers
get the error at once. Mid tool loop, every step that had ended is saved,
and no tool runs again."""

import contextlib
import os
import signal
import subprocess
import sys
import time

import pytest
import redis

from conversations.models import AnswerStep, Spend, ToolRun, Turn
from harness.fake_upstream import Behaviour, tool_calls_behaviour

from .helpers import make_api_user, redis_url, sse_events, start_pair

# End to end: run on one CI leg, not on the legs that vary Django, the stack or the database.
pytestmark = pytest.mark.e2e

LEASE_SECONDS = 1.0


@pytest.fixture
def doomed_pair(tmp_path_factory, upstream_server, django_db_setup, redis_ready, transactional_db):
    tools = "tests.test_tool_loop.add,tests.test_tool_loop.guarded"
    a, b = start_pair(
        tmp_path_factory,
        upstream_server.url,
        "continue",
        CHATSTREAM_ANSWER_LEASE_SECONDS=str(LEASE_SECONDS),
        CHATSTREAM_TOOLS=tools,
    )
    with a, b:
        yield a, b


def test_an_answer_whose_process_is_killed_is_saved_by_the_other(doomed_pair, upstream):
    a, b = doomed_pair
    kim = make_api_user(f"http://127.0.0.1:{a.port}", "kim")
    user, on_a, on_b = kim.user, kim.client, kim.on(f"http://127.0.0.1:{b.port}").client
    upstream.behaviour = Behaviour(tokens=2000, pace=0.01)
    conversation_id = on_a.post("/api/conversations", json={}).json()["id"]

    with on_a.stream("POST", f"/api/conversations/{conversation_id}/messages", json={"content": "Long"}) as first:
        turn_id = next(sse_events(first))["data"]["turn_id"]
        with on_b.stream("GET", f"/api/turns/{turn_id}/events") as follower:
            events = sse_events(follower)
            seen = "".join(e["data"]["text"] for _, e in zip(range(20), _deltas(events), strict=False))
            os.kill(a.pid, signal.SIGKILL)  # mid-answer, nothing saved
            killed_at = time.monotonic()
            rest = list(events)  # until the end the other process gives it
    ended_after = time.monotonic() - killed_at

    assert rest[-1]["event"] == "error" and rest[-1]["data"]["code"] == "process_lost"
    assert ended_after < LEASE_SECONDS * 3 + 2  # not the 180 s of a reader waiting on its own
    seen += "".join(e["data"]["text"] for e in rest if e["event"] == "delta")
    turn = Turn.objects.get(pk=turn_id)
    assert (turn.finish_reason, turn.error_code, turn.status) == ("error", "process_lost", "failed")
    assert turn.content.startswith(seen) and seen  # all the text its reader saw, and nothing after it lost
    assert int(rest[-1]["id"]) == len(turn.content)
    spend = Spend.objects.get(turn_id=turn_id)  # what it wrote is paid for
    assert (spend.user_id, spend.tokens_out, spend.tokens_estimated) == (user.pk, turn.tokens_out, True)
    # The slot the dead process held for the user lapses within three leases.
    slots = redis.Redis.from_url(redis_url())
    deadline = killed_at + 3 * LEASE_SECONDS + 2
    while slots.zcount(f"chatstream:streams:{user.pk}", time.time(), "+inf"):
        assert time.monotonic() < deadline, "the dead process's stream slot was not freed"
        time.sleep(0.1)
    slots.close()
    for client in (on_a, on_b):
        client.close()


def test_what_the_killed_process_own_clients_saw_is_saved(doomed_pair, upstream):
    """Its own readers are given only what the journal holds, so no race
    can lose text a client here saw: the cores kept busy meanwhile, as
    when the loss was seen (1 answer in 39), and three answers at once."""
    a, b = doomed_pair
    kim = make_api_user(f"http://127.0.0.1:{a.port}", "kim")
    upstream.behaviour = Behaviour(tokens=2000, pace=0.005)
    seen: dict[str, str] = {}
    with busy_cores(), contextlib.ExitStack() as streams:
        for n in range(3):
            conversation_id = kim.client.post("/api/conversations", json={}).json()["id"]
            response = streams.enter_context(
                kim.client.stream("POST", f"/api/conversations/{conversation_id}/messages", json={"content": f"{n}"})
            )
            events = sse_events(response)
            turn_id = next(events)["data"]["turn_id"]
            seen[turn_id] = "".join(e["data"]["text"] for _, e in zip(range(3), _deltas(events), strict=False))
        os.kill(a.pid, signal.SIGKILL)
        streams.pop_all()  # their connections died with the process
    on_b = kim.on(f"http://127.0.0.1:{b.port}").client
    for turn_id in seen:  # the other process follows each to its end: saved as lost
        with on_b.stream("GET", f"/api/turns/{turn_id}/events") as follower:
            assert list(sse_events(follower))[-1]["data"]["code"] == "process_lost"
    for turn in Turn.objects.filter(pk__in=seen):
        assert seen[str(turn.pk)] and turn.content.startswith(seen[str(turn.pk)]), (seen[str(turn.pk)], turn.content)
    assert Turn.objects.filter(pk__in=seen).count() == 3
    for client in (kim.client, on_b):
        client.close()


@contextlib.contextmanager
def busy_cores():
    """A process per core spinning, for as long as the block runs."""
    spinners = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(os.cpu_count() or 2)]
    try:
        yield
    finally:
        for spinner in spinners:
            spinner.kill()
            spinner.wait()


def test_a_loop_whose_process_is_killed_keeps_every_ended_step(doomed_pair, upstream):
    a, b = doomed_pair
    kim = make_api_user(f"http://127.0.0.1:{a.port}", "kim")
    on_a, on_b = kim.client, kim.on(f"http://127.0.0.1:{b.port}").client
    upstream.next_calls.extend(
        [
            tool_calls_behaviour(("c1", "add", {"a": 2, "b": 3}), text="Adding. "),
            tool_calls_behaviour(("g1", "guarded", {}), text="Now the guarded one. "),
        ]
    )
    conversation_id = on_a.post("/api/conversations", json={}).json()["id"]
    with on_a.stream("POST", f"/api/conversations/{conversation_id}/messages", json={"content": "Go"}) as first:
        turn_id = next(sse_events(first))["data"]["turn_id"]
        with on_b.stream("GET", f"/api/turns/{turn_id}/events") as follower:
            events = sse_events(follower)
            seen = [event["event"] for event in _until_approval(events)]
            os.kill(a.pid, signal.SIGKILL)  # waiting for a decision, the first step saved
            rest = list(events)

    assert seen == ["start", "delta", "tool_call", "tool_result", "step", "delta", "tool_call", "approval_request"]
    assert rest[-1]["event"] == "error" and rest[-1]["data"]["code"] == "process_lost"
    turn = Turn.objects.get(pk=turn_id)
    assert turn.content == "Adding. Now the guarded one. " and [r["output"] for r in turn.tool_results] == ["5"]
    assert [call["id"] for call in turn.tool_calls] == ["c1", "g1"] and turn.approvals[0]["approved"] is None
    assert AnswerStep.objects.get(turn_id=turn_id).tokens_in == 11  # the first call's usage
    runs = {run.call_id: run for run in ToolRun.objects.filter(turn_id=turn_id)}
    assert runs["c1"].output == "5" and runs["g1"].approval == "undecided"  # never to run
    assert (
        on_b.post(f"/api/turns/{turn_id}/approvals", json={"tool_call_id": "g1", "approved": True}).status_code == 409
    )
    assert Spend.objects.get(turn_id=turn_id).tokens_in == 11
    for client in (on_a, on_b):
        client.close()


def _until_approval(events):
    for event in events:
        yield event
        if event["event"] == "approval_request":
            return


def _deltas(events):
    for event in events:
        if event["event"] == "delta":
            yield event
