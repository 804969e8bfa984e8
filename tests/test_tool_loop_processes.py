"""The tool loop across two server processes sharing Redis (issue 25): a
reader on B, resuming mid-loop from A's stream, gets exactly what A's reader
gets, tool results and steps included; a decision on a call that A's answer
waits on may be sent to B."""

import pytest

from conversations.models import ToolRun
from harness.fake_upstream import Behaviour, tool_calls_behaviour

from .helpers import Pair, read_events, saved_answer, sse_events, start_pair, stream
from .test_approvals import decide, until
from .test_tool_loop import joined, kinds


@pytest.fixture(scope="module")
def pair(tmp_path_factory, upstream_server, django_db_setup, redis_ready):
    tools = "tests.test_tool_loop.add,tests.test_tool_loop.overlapping,tests.test_tool_loop.guarded"
    a, b = start_pair(tmp_path_factory, upstream_server.url, "continue", CHATSTREAM_TOOLS=tools)
    with a, b:
        yield Pair.of(a, b)


def test_a_reader_on_b_resumes_mid_loop(on, upstream):
    upstream.next_calls.extend(
        [
            tool_calls_behaviour(("c1", "overlapping", {"label": "one"}), ("c2", "add", {"a": 1, "b": 2})),
            Behaviour(text="Both are done now.", pace=0.01),
        ]
    )
    conversation_id = on["a"].new_conversation()
    with stream(on["a"], conversation_id, "Go") as response:
        events = sse_events(response)
        seen = [next(events)]
        while seen[-1]["event"] != "tool_call":
            seen.append(next(events))
        turn_id, last_id = seen[0]["data"]["turn_id"], seen[-1]["id"]
        resumed = read_events(on["b"].client.get(f"/api/turns/{turn_id}/events", headers={"Last-Event-ID": last_id}))
        rest = list(events)
    assert joined(resumed) == joined(rest)
    assert kinds(joined(rest)) == ["tool_call", "tool_result", "tool_result", "step", "delta", "done"]
    saved = saved_answer(conversation_id)
    assert {result["id"] for result in saved.tool_results} == {"c1", "c2"}
    assert saved.content == "Both are done now."


def test_a_decision_sent_to_b_reaches_the_answer_on_a(on, upstream):
    upstream.next_calls.extend([tool_calls_behaviour(("g1", "guarded", {})), Behaviour(text="Approved and done.")])
    conversation_id = on["a"].new_conversation()
    with stream(on["a"], conversation_id, "Go") as response:
        events = sse_events(response)
        turn_id = until(events, "approval_request")[0]["data"]["turn_id"]
        with on["b"].client.stream("GET", f"/api/turns/{turn_id}/events") as follower:  # pending there too
            assert until(sse_events(follower), "approval_request")[-1]["data"]["id"] == "g1"
        decided = decide(on["b"], turn_id, "g1", True)
        rest = list(events)
    assert decided.status_code == 200, decided.text
    assert kinds(joined(rest)) == ["tool_result", "step", "delta", "done"] and rest[0]["data"]["output"] == "ran"
    assert saved_answer(conversation_id).approvals[0]["approved"] is True
    assert ToolRun.objects.get(turn_id=turn_id).approval == "approved"
