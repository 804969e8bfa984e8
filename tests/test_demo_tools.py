"""The offline demo model with the demo tools: it calls current_time and
lookup_order when asked, only those offered, and answers from their results."""

import asyncio
import json

import pytest

from conversations.providers import TEXT, TOOL_CALL, Completion
from conversations.providers.demo import DemoProvider
from conversations.providers.demo_tools import answer_from_results, calls_for, offered_tools
from conversations.providers.estimates import text_tokens
from conversations.tools import registered_tools

from .helpers import post_and_read, saved_answer, sse_events, stream, text_of, use_demo_model_with_tools
from .test_approvals import decide, until

BOTH = {"current_time", "lookup_order"}


def run(provider: DemoProvider, messages: list[dict]) -> tuple[str, list[dict], Completion]:
    """The provider's stream to its end: its text, its calls, the completion."""
    completion = Completion(model=provider.model)

    async def read() -> list:
        return [piece async for pieces in provider.stream(messages, completion) for piece in pieces]

    pieces = asyncio.run(read())
    text = "".join(piece for kind, piece in pieces if kind == TEXT)
    return text, [json.loads(piece) for kind, piece in pieces if kind == TOOL_CALL], completion


def demo_with(*tool_names: str, **options) -> DemoProvider:
    provider = DemoProvider(model="demo-1", tokens_per_second=0, first_token_delay=0)
    specs = [tool.spec() for tool in registered_tools().values() if tool.name in tool_names]
    provider.request_options = {"tools": specs, **options}
    return provider


@pytest.fixture
def demo_tools(settings):
    use_demo_model_with_tools(settings, tokens_per_second=0, first_token_delay=0)


@pytest.mark.parametrize(
    ("question", "calls"),
    [
        ("what time is it", [("current_time", {})]),
        ("What's the time in New York?", [("current_time", {"timezone": "America/New_York"})]),
        ("what time is it in Europe/Paris", [("current_time", {"timezone": "Europe/Paris"})]),
        ("look up order 1234", [("lookup_order", {"order_id": "1234"})]),
        ("where is my order A-17?", [("lookup_order", {"order_id": "A-17"})]),
        (
            "order #77 and order no. B-2, please",
            [("lookup_order", {"order_id": "77"}), ("lookup_order", {"order_id": "B-2"})],
        ),
        ("what is my order status", []),  # no number: nothing to look up
        ("Explain streaming tokens", []),
    ],
)
def test_a_question_calls_for_the_tools_it_names(question, calls):
    assert calls_for(question, BOTH) == calls


def test_a_call_counts_its_name_and_arguments_not_one_token(demo_tools):
    _, calls, completion = run(demo_with("lookup_order"), [{"role": "user", "content": "look up order 1234"}])
    preface = completion.deltas - len(calls)  # a word a token
    assert completion.tokens_out == preface + text_tokens("lookup_order" + calls[0]["arguments"]) > preface + 1


def test_only_tools_offered_are_called():
    assert calls_for("what time is it? and order 12", {"lookup_order"}) == [("lookup_order", {"order_id": "12"})]
    assert offered_tools({"tools": [{"type": "function", "function": {"name": "current_time"}}]}) == {"current_time"}
    assert offered_tools({"tools": [{"function": {"name": "current_time"}}], "tool_choice": "none"}) == set()
    assert offered_tools({}) == set()


def test_the_demo_calls_a_tool_then_answers_from_its_result(demo_tools):
    provider = demo_with("current_time")
    text, calls, completion = run(provider, [{"role": "user", "content": "what time is it"}])
    assert calls == [{"id": "call_0", "name": "current_time", "arguments": "{}"}]
    assert text == "Let me check the clock.\n\n" and completion.finish_reason == "tool_calls"

    result = {"timezone": "UTC", "time": "2026-12-07T14:02:09+00:00", "weekday": "Monday"}
    step = [
        {"role": "user", "content": "what time is it"},
        {"role": "assistant", "content": text, "tool_calls": [_openai_call(calls[0])]},
        {"role": "tool", "tool_call_id": "call_0", "content": json.dumps(result)},
    ]
    answer, more_calls, completion = run(provider, step)
    assert answer == "It is 14:02 UTC, on a Monday." and not more_calls and completion.finish_reason == "stop"


def test_without_tools_offered_the_demo_answers_as_before(demo_tools):
    for provider in (demo_with(), demo_with("current_time", tool_choice="none")):
        text, calls, _ = run(provider, [{"role": "user", "content": "what time is it"}])
        assert not calls and text.startswith('You asked: "what time is it"')


def test_an_order_declined_or_failed_is_said_so():
    def answer(content: str) -> str:
        call = {"id": "c1", "function": {"name": "lookup_order", "arguments": '{"order_id": "A-17"}'}}
        messages = [{"role": "assistant", "content": "", "tool_calls": [call]}]
        return answer_from_results([*messages, {"role": "tool", "tool_call_id": "c1", "content": content}])

    assert answer('{"error": "The user declined to run this tool."}') == (
        "You declined the lookup, so I did not look up order A-17."
    )
    assert answer('{"error": "Timed out."}') == "I could not look up order A-17: Timed out."
    order = {"order_id": "A-17", "status": "shipped", "placed_on": "2026-12-01", "total": "11.98"}
    lines = [{"product": "Pour-over kettle", "quantity": 2, "price": "5.99"}]
    assert answer(json.dumps({**order, "lines": lines})) == (
        "Order A-17 is **shipped** (placed on 2026-12-01): 2 × Pour-over kettle, 11.98 in all."
    )


def test_the_demo_model_runs_the_time_tool_through_the_loop(alice, demo_tools):
    conversation_id, events, _ = post_and_read(alice, "What time is it?")
    kinds = [event["event"] for event in events]
    assert kinds[:2] == ["start", "delta"] and kinds[-1] == "done"
    assert [kind for kind in kinds if kind not in ("delta",)] == ["start", "tool_call", "tool_result", "step", "done"]
    result = next(event["data"] for event in events if event["event"] == "tool_result")
    assert result["name"] == "current_time" and json.loads(result["output"])["timezone"] == "UTC"
    assert text_of(events).startswith("Let me check the clock.\n\nIt is ")

    turn = saved_answer(conversation_id)
    assert turn.finish_reason == "stop" and turn.tool_results == [result]


@pytest.mark.parametrize(
    ("approved", "said"),
    [(True, "Order A-17 is **"), (False, "You declined the lookup, so I did not look up order A-17.")],
)
def test_the_demo_model_waits_for_approval_of_an_order_lookup(alice, demo_tools, approved, said):
    conversation_id = alice.new_conversation()
    with stream(alice, conversation_id, "Where is my order A-17?") as response:
        events = sse_events(response)
        seen = until(events, "approval_request")
        turn_id, request = seen[0]["data"]["turn_id"], seen[-1]["data"]
        assert (request["name"], json.loads(request["arguments"])) == ("lookup_order", {"order_id": "A-17"})
        assert decide(alice, turn_id, request["id"], approved).status_code == 200
        rest = list(events)
    result = next(event["data"] for event in rest if event["event"] == "tool_result")
    assert ("output" in result) is approved
    assert text_of(rest).startswith(said) and rest[-1]["event"] == "done"
    assert saved_answer(conversation_id).approvals[0]["approved"] is approved


def _openai_call(call: dict) -> dict:
    return {"id": call["id"], "type": "function", "function": {"name": call["name"], "arguments": call["arguments"]}}
