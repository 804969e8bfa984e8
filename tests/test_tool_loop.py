"""The tool loop (issue 25): an answer whose model has tools runs the calls it
asks for and calls the model again with their results, through the live
server and the fake upstream."""

import asyncio
import json
import logging
import threading

import pytest

from conversations.models import ToolRun, Turn
from conversations.stream.tool_loop import transcript_text
from conversations.tools import ToolContext, tool
from harness.fake_upstream import Behaviour, tool_calls_behaviour

from .helpers import read_events, saved_answer, send, sse_events, stream

HERE = __name__


@tool
def add(a: int, b: int) -> int:
    """Add two numbers."""
    return a + b


@tool
def whoami(context: ToolContext) -> str:
    """The user's name, read through the ORM."""
    return context.user.get_username()


@tool
def broken() -> str:
    """Always fails."""
    raise ValueError("out of stock")


RUNS: list[str] = []  # calls of `counted`, in this process
OVERLAP = {"now": 0, "most": 0}
SLOW = {"started": threading.Event(), "cancelled": threading.Event()}


@tool
def counted(label: str) -> str:
    """Counts its runs."""
    RUNS.append(label)
    return f"ran {label}"


@tool
async def overlapping(label: str) -> str:
    """Notes how many of its calls run at once."""
    OVERLAP["now"] += 1
    OVERLAP["most"] = max(OVERLAP["most"], OVERLAP["now"])
    await asyncio.sleep(0.15)
    OVERLAP["now"] -= 1
    return label


@tool
async def slow() -> str:
    """Takes a long time."""
    SLOW["started"].set()
    try:
        await asyncio.sleep(30)
    except asyncio.CancelledError:
        SLOW["cancelled"].set()
        raise
    return "late"


@tool(needs_approval=True)
def guarded() -> str:
    """Needs the user's approval."""
    RUNS.append("guarded")
    return "ran"


@pytest.fixture
def tools(settings):
    settings.CHATSTREAM_TOOLS = [f"{HERE}.guarded"] + [
        f"{HERE}.{name}" for name in ("add", "whoami", "broken", "counted", "overlapping", "slow")
    ]
    RUNS.clear()
    OVERLAP.update(now=0, most=0)
    for event in SLOW.values():
        event.clear()


def answer_with(upstream, *behaviours: Behaviour) -> None:
    upstream.next_calls.extend(behaviours)


def loop_answer(alice, content: str = "Go") -> tuple[str, list[dict]]:
    conversation_id = alice.new_conversation()
    with stream(alice, conversation_id, content) as response:
        response.read()
    return conversation_id, read_events(response)


def joined(events: list[dict]) -> list[dict]:
    """Consecutive deltas as one, as a replay of the saved turn sends them."""
    out: list[dict] = []
    for event in events:
        if out and event["event"] == out[-1]["event"] == "delta":
            text = out[-1]["data"]["text"] + event["data"]["text"]
            out[-1] = {**event, "data": {"text": text}}
        else:
            out.append(event)
    return out


def kinds(events: list[dict]) -> list[str]:
    return [event["event"] for event in events]


def test_tool_results_go_to_the_next_model_call(alice, upstream, tools):
    answer_with(
        upstream, tool_calls_behaviour(("c1", "add", {"a": 2, "b": 3}), text="Let me add. "), Behaviour(text="Five.")
    )
    conversation_id, events = loop_answer(alice)
    events = joined(events)  # how many deltas a text comes in depends on the frame timer

    assert kinds(events) == ["start", "delta", "tool_call", "tool_result", "step", "delta", "done"]
    result = events[3]["data"]
    assert result["id"] == "c1" and result["name"] == "add" and result["output"] == "5"
    assert events[4]["data"] == {"n": 2}
    assert events[-1]["data"]["finish_reason"] == "stop"

    first, second = (call.body for call in upstream.calls)
    assert [spec["function"]["name"] for spec in first["tools"]][:3] == ["guarded", "add", "whoami"]
    assert "tool_choice" not in first and "tool_choice" not in second
    assistant, tool_message = second["messages"][-2:]
    assert assistant["role"] == "assistant" and assistant["content"] == "Let me add. "
    assert assistant["tool_calls"] == [
        {"id": "c1", "type": "function", "function": {"name": "add", "arguments": '{"a": 2, "b": 3}'}}
    ]
    assert tool_message == {"role": "tool", "tool_call_id": "c1", "content": "5"}

    turn = saved_answer(conversation_id)
    assert turn.content == "Let me add. Five." and turn.finish_reason == "stop"
    assert turn.tool_results == [result]
    assert (turn.tokens_in, turn.usage_source) == (22, "reported")  # 11 a call, summed
    run = ToolRun.objects.get(turn_id=turn.pk)
    assert (run.call_id, run.name, run.output, run.error) == ("c1", "add", "5", None) and run.ended_at


def test_a_tool_reads_the_orm_as_the_user(alice, upstream, tools):
    answer_with(upstream, tool_calls_behaviour(("c1", "whoami", {})), Behaviour(text="Hi alice."))
    _, events = loop_answer(alice)
    assert next(e["data"] for e in events if e["event"] == "tool_result")["output"] == "alice"


def test_parallel_calls_run_together_and_answer_in_order(alice, upstream, tools):
    calls = [("p1", "overlapping", {"label": "one"}), ("p2", "overlapping", {"label": "two"})]
    answer_with(upstream, tool_calls_behaviour(*calls), Behaviour(text="Both."))
    _, events = loop_answer(alice)
    assert OVERLAP["most"] == 2
    assert sorted(e["data"]["id"] for e in events if e["event"] == "tool_result") == ["p1", "p2"]
    tool_messages = upstream.calls[1].body["messages"][-2:]
    assert [(m["tool_call_id"], m["content"]) for m in tool_messages] == [("p1", "one"), ("p2", "two")]


def test_an_error_is_a_result_and_the_loop_goes_on(alice, upstream, tools):
    answer_with(upstream, tool_calls_behaviour(("e1", "broken", {}), ("e2", "nope", {})), Behaviour(text="Sorry."))
    conversation_id, events = loop_answer(alice)
    errors = {e["data"]["id"]: e["data"]["error"] for e in events if e["event"] == "tool_result"}
    assert errors == {"e1": "out of stock", "e2": "There is no tool named 'nope'."}
    assert upstream.calls[1].body["messages"][-2]["content"] == '{"error":"out of stock"}'
    assert saved_answer(conversation_id).finish_reason == "stop"


def test_the_last_model_call_allowed_gets_tool_choice_none(alice, upstream, tools, settings):
    settings.CHATSTREAM_MAX_TOOL_STEPS = 2
    upstream.behaviour = tool_calls_behaviour(("c1", "counted", {"label": "x"}))  # it asks for tools every time
    conversation_id, events = loop_answer(alice)
    assert len(upstream.calls) == 2
    assert "tool_choice" not in upstream.calls[0].body and upstream.calls[1].body["tool_choice"] == "none"
    assert kinds(events).count("tool_result") == 1 and RUNS == ["x"]
    assert saved_answer(conversation_id).finish_reason == "tool_calls"


def test_stop_during_a_slow_tool_cancels_it_and_saves_the_steps(alice, upstream, tools):
    answer_with(upstream, tool_calls_behaviour(("s1", "add", {"a": 1, "b": 1}), ("s2", "slow", {})))
    conversation_id = alice.new_conversation()
    with stream(alice, conversation_id, "Go") as response:
        events = sse_events(response)
        turn_id = next(events)["data"]["turn_id"]
        while next(events)["event"] != "tool_result":  # add's; slow's never comes
            pass
        assert SLOW["started"].wait(5)
        stopped = alice.client.post(f"/api/turns/{turn_id}/cancel")
        rest = list(events)
    assert stopped.status_code == 200, stopped.text
    assert SLOW["cancelled"].wait(2)
    assert rest[-1]["data"]["finish_reason"] == "cancelled"
    turn = saved_answer(conversation_id)
    assert turn.finish_reason == "cancelled" and len(upstream.calls) == 1
    assert [call["id"] for call in turn.tool_calls] == ["s1", "s2"]
    assert [result["id"] for result in turn.tool_results] == ["s1"]


def test_resume_mid_loop_gets_exactly_the_rest(alice, upstream, tools):
    answer_with(
        upstream,
        tool_calls_behaviour(("c1", "overlapping", {"label": "one"})),
        Behaviour(text="The rest of the answer.", pace=0.01),
    )
    conversation_id = alice.new_conversation()
    with stream(alice, conversation_id, "Go") as response:
        events = sse_events(response)
        seen = [next(events)]
        while seen[-1]["event"] != "tool_call":
            seen.append(next(events))
        turn_id, last_id = seen[0]["data"]["turn_id"], seen[-1]["id"]
        resumed = read_events(alice.client.get(f"/api/turns/{turn_id}/events", headers={"Last-Event-ID": last_id}))
        rest = list(events)
    assert kinds(rest)[:2] == ["tool_result", "step"]
    assert joined(resumed) == joined(rest)  # readers may get the text in other slices, never other text or ids
    replay = read_events(alice.client.get(f"/api/turns/{turn_id}/events"))
    assert replay == joined(seen + rest)
    assert saved_answer(conversation_id).content == "The rest of the answer."


def test_a_replay_of_the_saved_turn_equals_the_live_events(alice, upstream, tools):
    answer_with(upstream, tool_calls_behaviour(("c1", "add", {"a": 2, "b": 2}), text="Adding. "), Behaviour(text="4."))
    conversation_id, live = loop_answer(alice)
    live = joined(live)  # as the saved turn has the text: the same characters and ids
    turn_id = live[0]["data"]["turn_id"]
    assert read_events(alice.client.get(f"/api/turns/{turn_id}/events")) == live
    after_call = next(e["id"] for e in live if e["event"] == "tool_call")
    tail = read_events(alice.client.get(f"/api/turns/{turn_id}/events", headers={"Last-Event-ID": after_call}))
    assert tail == live[3:]
    ndjson = alice.client.get(f"/api/turns/{turn_id}/events", headers={"Accept": "application/x-ndjson"})
    lines = [json.loads(line) for line in ndjson.text.splitlines()]
    assert [line["type"] for line in lines] == kinds(live)
    assert lines[3]["tool_result"] == live[3]["data"] and lines[4]["step"] == {"n": 2}
    assert [line["id"] for line in lines[1:]] == [int(e["id"]) for e in live[1:]]


def test_the_openai_door_never_runs_server_tools(sdk, upstream, tools):
    upstream.behaviour = tool_calls_behaviour(("c1", "add", {"a": 1, "b": 2}))
    client_tools = [{"type": "function", "function": {"name": "mine", "parameters": {"type": "object"}}}]
    chunks = list(
        sdk.chat.completions.create(
            model="fake-model", messages=[{"role": "user", "content": "Hi"}], tools=client_tools, stream=True
        )
    )
    assert len(upstream.calls) == 1 and upstream.calls[0].body["tools"] == client_tools
    assert chunks[-1].choices[0].finish_reason == "tool_calls"
    assert not ToolRun.objects.exists()
    plain = sdk.chat.completions.create(model="fake-model", messages=[{"role": "user", "content": "Hi"}])
    assert "tools" not in upstream.calls[1].body and plain.choices[0].finish_reason == "tool_calls"


def test_a_later_turn_carries_the_tool_messages(alice, upstream, tools):
    answer_with(upstream, tool_calls_behaviour(("c1", "add", {"a": 2, "b": 3}), text="Adding. "), Behaviour(text="5."))
    conversation_id, _ = loop_answer(alice, "What is 2+3?")
    upstream.behaviour = Behaviour(text="Yes.")
    send(alice, conversation_id, "Sure?")
    messages = upstream.calls[-1].body["messages"]
    roles = [m["role"] for m in messages[1:]]
    assert roles == ["user", "assistant", "tool", "assistant", "user"]
    assert messages[2]["tool_calls"][0]["id"] == "c1" and messages[2]["content"] == "Adding. "
    assert messages[3] == {"role": "tool", "tool_call_id": "c1", "content": "5"}
    assert messages[4] == {"role": "assistant", "content": "5."}


def test_a_call_id_is_never_run_twice(alice, upstream, tools):
    again = tool_calls_behaviour(("c1", "counted", {"label": "x"}))
    answer_with(upstream, again, tool_calls_behaviour(("c1", "counted", {"label": "x"})), Behaviour(text="Done."))
    conversation_id, events = loop_answer(alice)
    assert RUNS == ["x"]
    results = [e["data"] for e in events if e["event"] == "tool_result"]
    assert [r["output"] for r in results] == ["ran x", "ran x"]  # the second is the saved result
    assert ToolRun.objects.filter(turn_id=saved_answer(conversation_id).pk).count() == 1


def test_calls_without_ids_are_named_apart_in_each_step(alice, upstream, tools):
    def unnamed(label: str) -> Behaviour:
        behaviour = tool_calls_behaviour(("", "counted", {"label": label}))
        del behaviour.script[1]["tool_calls"][0]["id"]  # as some servers send them
        return behaviour

    answer_with(upstream, unnamed("a"), unnamed("b"), Behaviour(text="Done."))
    _, events = loop_answer(alice)
    assert RUNS == ["a", "b"]
    assert [e["data"]["id"] for e in events if e["event"] == "tool_result"] == ["call_0", "call_2_0"]


def test_a_later_model_call_is_never_tried_again(alice, upstream, tools, settings):
    settings.LLM_RETRIES = 2
    answer_with(upstream, tool_calls_behaviour(("c1", "add", {"a": 1, "b": 1})), Behaviour(status=503))
    upstream.behaviour = Behaviour(text="A second try.")
    conversation_id, events = loop_answer(alice)
    assert len(upstream.calls) == 2 and events[-1]["event"] == "error"
    turn = saved_answer(conversation_id)
    assert turn.finish_reason == "error" and [r["output"] for r in turn.tool_results] == ["2"]


def test_the_memory_worker_reads_what_the_tools_returned():
    results = [{"id": "c1", "name": "add", "output": "5", "duration_ms": 1}, {"id": "c2", "name": "f", "error": "no"}]
    assert transcript_text("It is 5.", results) == "[add returned 5]\n[f failed: no]\nIt is 5."
    assert transcript_text("Hi.", []) == "Hi."


def test_a_conversation_can_turn_its_tools_off(alice, upstream, tools):
    conversation_id = alice.new_conversation()
    changed = alice.client.patch(f"/api/conversations/{conversation_id}", json={"tools": False})
    assert changed.status_code == 200 and changed.json()["tools"] is False
    upstream.behaviour = tool_calls_behaviour(("c1", "add", {"a": 1, "b": 2}))
    send(alice, conversation_id)
    assert "tools" not in upstream.calls[0].body and len(upstream.calls) == 1
    assert Turn.objects.get(conversation_id=conversation_id, role="assistant").finish_reason == "tool_calls"
    refused = alice.client.patch(f"/api/conversations/{conversation_id}", json={"tools": "no"})
    assert refused.status_code == 400


def test_an_answer_stopped_mid_loop_is_continued_with_its_steps(alice, upstream, tools):
    answer_with(
        upstream,
        tool_calls_behaviour(("c1", "add", {"a": 2, "b": 3}), text="Adding. "),
        tool_calls_behaviour(("s1", "slow", {})),
    )
    conversation_id = alice.new_conversation()
    with stream(alice, conversation_id, "Go") as response:
        events = sse_events(response)
        turn_id = next(events)["data"]["turn_id"]
        assert SLOW["started"].wait(5)
        assert alice.client.post(f"/api/turns/{turn_id}/cancel").status_code == 200
        list(events)
    answer_with(upstream, tool_calls_behaviour(("c9", "add", {"a": 1, "b": 1})), Behaviour(text="Five, then two."))
    with alice.client.stream("POST", f"/api/turns/{turn_id}/continue") as response:
        live = joined(read_events(response))
    asked = upstream.calls[2].body["messages"]
    # Its first step's call and result; the call that never ended is left out (no result answers it).
    assert [m["role"] for m in asked[1:]] == ["user", "assistant", "tool", "user"]
    assert asked[2]["content"] == "Adding. " and asked[2]["tool_calls"][0]["id"] == "c1" and asked[3]["content"] == "5"
    steps = [e["data"]["n"] for e in live if e["event"] == "step"]
    assert steps == [2, 3]  # the stopped answer's step, then this one's, counted on
    new_id = live[0]["data"]["turn_id"]
    assert read_events(alice.client.get(f"/api/turns/{new_id}/events")) == live  # the saved turn replays as it streamed


def test_the_pace_of_tokens_leaves_the_tools_time_out(alice, upstream, tools, caplog):
    caplog.set_level(logging.INFO, logger="conversations")
    # The tool takes 150 ms; the tokens come 5 ms apart.
    answer_with(upstream, tool_calls_behaviour(("c1", "overlapping", {"label": "x"})), Behaviour(tokens=6, pace=0.005))
    _, events = loop_answer(alice)
    trace_id = events[0]["data"]["trace_id"]
    [end] = [r for r in caplog.records if getattr(r, "trace_id", None) == trace_id and r.getMessage() == "stream.end"]
    assert end.tpot_ms < 30  # not (150 ms + 25 ms) over the last call's 5 gaps
