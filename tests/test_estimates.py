"""Usage chatstream counts itself when the server sends none: the prompt with
its per-message overhead, tool calls by their names and arguments, the
demo's thinking never more than its output, and `estimated` on every door."""

import json

from conversations.providers.estimates import (
    MESSAGE_OVERHEAD_TOKENS,
    REPLY_PRIMING_TOKENS,
    OutputCount,
    prompt_tokens,
    text_tokens,
)
from conversations.providers.kinds import REASONING, TEXT, TOOL_CALL
from harness.fake_upstream import Behaviour, tool_calls_behaviour

from .helpers import read_events, saved_answer, send, sse_events, stream, use_demo_model_with_tools

ARGUMENTS = {"city": "Paris", "units": "metric", "days": 3}


def test_a_short_message_counts_its_wrapping_and_the_replys_priming():
    hello = [{"role": "user", "content": "hello"}]
    assert prompt_tokens(hello) == 1 + MESSAGE_OVERHEAD_TOKENS + REPLY_PRIMING_TOKENS == 7
    with_system = [{"role": "system", "content": "You are terse."}, *hello]
    assert prompt_tokens(with_system) == 7 + text_tokens("You are terse.") + MESSAGE_OVERHEAD_TOKENS


def test_a_tool_call_counts_its_name_and_arguments_not_chatstreams_wrapping():
    counted = OutputCount()
    arguments = json.dumps(ARGUMENTS)
    counted.add(TOOL_CALL, json.dumps({"id": "call_1", "name": "get_weather", "arguments": arguments}))
    assert counted.tokens() == text_tokens("get_weather" + arguments) > 1


def test_reasoning_is_part_of_the_output_and_never_more():
    counted = OutputCount()
    counted.add(REASONING, "I should think about this for a while.")
    assert counted.reasoning_tokens() == counted.tokens()
    counted.add(TEXT, "Yes, it is.")
    assert counted.reasoning_tokens() is not None and counted.reasoning_tokens() < counted.tokens()
    assert OutputCount().reasoning_tokens() is None


def test_an_answer_of_tool_calls_alone_without_usage_counts_the_calls(alice, upstream):
    upstream.behaviour = tool_calls_behaviour(("call_1", "get_weather", ARGUMENTS))
    upstream.behaviour.usage_chunk = False
    conversation_id = alice.new_conversation()
    done = read_events(send(alice, conversation_id, "Weather?"))[-1]
    turn = saved_answer(conversation_id)
    expected = text_tokens("get_weather" + json.dumps(ARGUMENTS))
    assert turn.finish_reason == "tool_calls" and turn.tokens_out == expected > 1
    assert (turn.usage_source, turn.tokens_estimated) == ("estimated", True)
    assert done["data"]["usage"]["tokens_out"] == expected and done["data"]["usage"]["estimated"] is True


def test_a_short_prompt_with_a_system_prompt_counts_what_was_sent(alice, upstream):
    upstream.behaviour = Behaviour(text="Hi there.", usage_chunk=False)
    response = alice.client.post("/api/conversations", json={"system_prompt": "You answer in French, briefly."})
    conversation_id = response.json()["id"]
    done = read_events(send(alice, conversation_id, "hello"))[-1]
    sent = upstream.calls[-1].body["messages"]
    assert [message["role"] for message in sent] == ["system", "user"]
    turn = saved_answer(conversation_id)
    assert turn.tokens_in == prompt_tokens(sent) > 1 + MESSAGE_OVERHEAD_TOKENS + REPLY_PRIMING_TOKENS
    assert turn.tokens_out == text_tokens("Hi there.")
    assert done["data"]["usage"] | {"source": "estimated", "estimated": True} == done["data"]["usage"]


def test_the_demo_cancelled_mid_thought_counts_no_more_thinking_than_output(alice, settings):
    use_demo_model_with_tools(settings, tokens_per_second=50, first_token_delay=0)
    settings.LLM_DEMO_REASONING = True
    conversation_id = alice.new_conversation()
    with stream(alice, conversation_id, "Tell me about streaming") as response:
        events = sse_events(response)
        start = next(events)
        thoughts = [next(events) for _ in range(3)]
        alice.client.post(f"/api/turns/{start['data']['turn_id']}/cancel")
        rest = list(events)
    assert [event["event"] for event in thoughts] == [REASONING] * 3
    usage = rest[-1]["data"]["usage"]
    assert rest[-1]["data"]["finish_reason"] == "cancelled" and usage["estimated"] is True
    turn = saved_answer(conversation_id)
    assert turn.content == "" and 3 <= turn.tokens_reasoning == turn.tokens_out == usage["tokens_out"]


def test_the_demo_finished_counts_its_thinking_among_its_output(alice, settings):
    use_demo_model_with_tools(settings, tokens_per_second=0, first_token_delay=0)
    settings.LLM_DEMO_REASONING = True
    conversation_id = alice.new_conversation()
    read_events(send(alice, conversation_id, "Tell me about streaming"))
    turn = saved_answer(conversation_id)
    assert turn.usage_source == "reported" and 0 < turn.tokens_reasoning < turn.tokens_out
