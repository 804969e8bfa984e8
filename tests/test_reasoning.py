"""Everything a model streams besides text: reasoning in each shape servers
send, tool calls, refusals, and the usage chunk, from the fake upstream's
wire to the client's events, the saved turn and its replay."""

import asyncio
import json

import orjson
import pytest

from conversations.models import Turn
from conversations.providers import REASONING, REFUSAL, TEXT, TOOL_CALL, Completion
from conversations.providers.openai import OpenAIProvider, close_shared_session
from conversations.providers.tool_calls import ToolCalls
from harness.fake_upstream import (
    Behaviour,
    parallel_tool_calls_script,
    reasoning_script,
    refusal_script,
    reused_index_tool_calls_script,
)

from .helpers import post_and_read, read_events, saved_answer, sse_events, stream

THOUGHTS = ["The user ", "says hello. ", "I should ", "greet them ", "back."]
ANSWER = ["Hello", " to you", " too!"]


def pieces_of(provider: OpenAIProvider) -> tuple[list[tuple[str, str]], Completion]:
    """Every piece the provider gives for one call, joined by kind in order,
    and what it recorded."""
    completion = Completion(model="fake-model")

    async def run() -> list[tuple[str, str]]:
        got: list[tuple[str, str]] = []
        try:
            async for pieces in provider.stream([{"role": "user", "content": "hi"}], completion):
                got += pieces
            got += completion.rest()
        finally:
            await close_shared_session()
        return got

    return merged(asyncio.run(run())), completion


def merged(pieces) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    for kind, text in pieces:
        if out and out[-1][0] == kind and kind != TOOL_CALL:
            out[-1] = (kind, out[-1][1] + text)
        else:
            out.append((kind, text))
    return out


def output_of(events: list[dict]) -> list[tuple[str, str]]:
    """A stream's output events as (kind, text), joined by kind in order."""
    pieces = []
    for event in events:
        if event["event"] in (TEXT, REASONING, REFUSAL):
            pieces.append((event["event"], event["data"]["text"]))
        elif event["event"] == TOOL_CALL:
            pieces.append((TOOL_CALL, orjson.dumps(event["data"]).decode()))
    return merged(pieces)


# --- the provider reads every shape ---------------------------------------------------


@pytest.mark.parametrize("shape", ["reasoning_content", "reasoning", "both", "think"])
def test_reasoning_in_every_shape_is_read_apart_from_the_text(openai_provider, upstream, shape):
    upstream.behaviour = Behaviour(script=reasoning_script(THOUGHTS, ANSWER, shape=shape))
    pieces, completion = pieces_of(openai_provider)
    assert pieces == [(REASONING, "".join(THOUGHTS)), (TEXT, "".join(ANSWER))]
    assert completion.finish_reason == "stop"


def test_a_think_tag_later_in_the_text_is_text(openai_provider, upstream):
    upstream.behaviour = Behaviour(script=[{"content": "Use "}, {"content": "<think> in HTML"}])
    assert pieces_of(openai_provider)[0] == [(TEXT, "Use <think> in HTML")]


def test_parallel_tool_calls_interleaved_by_index_are_assembled(openai_provider, upstream):
    upstream.behaviour = Behaviour(script=parallel_tool_calls_script(), finish_reason="tool_calls")
    pieces, completion = pieces_of(openai_provider)
    calls = [json.loads(text) for kind, text in pieces if kind == TOOL_CALL]
    assert [kind for kind, _ in pieces] == [TOOL_CALL, TOOL_CALL]
    # Each goes out when its arguments close.
    assert calls == [
        {"id": "call_a", "name": "get_weather", "arguments": '{"city": "Paris"}'},
        {"id": "call_b", "name": "get_time", "arguments": '{"zone": "CET"}'},
    ]
    assert completion.finish_reason == "tool_calls"


def test_calls_reusing_an_index_with_new_ids_stay_apart(openai_provider, upstream):
    upstream.behaviour = Behaviour(script=reused_index_tool_calls_script(), finish_reason="stop")
    pieces, _ = pieces_of(openai_provider)
    calls = [json.loads(text) for _, text in pieces]
    assert [(call["id"], call["arguments"]) for call in calls] == [
        ("call_1", '{"path": "a.py"}'),
        ("call_2", '{"path": "b.py"}'),
    ]


def test_tool_call_fragments_in_the_ways_servers_stray():
    calls = ToolCalls()
    done = calls.feed([{"id": "x1", "function": {"name": "f", "arguments": '{"a":'}}])  # no index (old Ollama)
    done += calls.feed([{"function": {"arguments": " 1}"}}])  # no id: the same call
    done += calls.feed([{"index": 3, "function": {"name": "g", "arguments": {"b": 2}}}])  # an object, no id
    done += calls.feed([{"index": 4, "id": "x4", "function": {"name": "h", "arguments": '{"c"'}}])  # never closed
    assert [json.loads(text) for text in done] == [
        {"id": "x1", "name": "f", "arguments": '{"a": 1}'},
        {"id": "call_1", "name": "g", "arguments": '{"b":2}'},
    ]
    assert [json.loads(text) for text in calls.rest()] == [{"id": "x4", "name": "h", "arguments": '{"c"'}]


def test_a_refusal_is_read_as_a_refusal(openai_provider, upstream):
    upstream.behaviour = Behaviour(script=refusal_script(["I can't ", "help with that."]))
    assert pieces_of(openai_provider)[0] == [(REFUSAL, "I can't help with that.")]


def test_the_usage_chunk_is_read_whole(openai_provider, upstream):
    usage = {
        "prompt_tokens": 1200,
        "completion_tokens": 300,
        "total_tokens": 1500,
        "prompt_tokens_details": {"cached_tokens": 1024},
        "completion_tokens_details": {"reasoning_tokens": 250},
    }
    upstream.behaviour = Behaviour(tokens=3, usage=usage)
    _, completion = pieces_of(openai_provider)
    assert (completion.tokens_in, completion.tokens_cached, completion.tokens_out, completion.tokens_reasoning) == (
        1200,
        1024,
        300,
        250,
    )
    assert completion.usage_reported


def test_deepseek_cache_hits_count_as_cached(openai_provider, upstream):
    usage = {"prompt_tokens": 100, "completion_tokens": 5, "prompt_cache_hit_tokens": 64}
    upstream.behaviour = Behaviour(tokens=3, usage=usage)
    assert pieces_of(openai_provider)[1].tokens_cached == 64


# --- through the API -------------------------------------------------------------------


def test_reasoning_streams_as_its_own_events_and_is_saved_apart(alice, upstream):
    upstream.behaviour = Behaviour(script=reasoning_script(THOUGHTS, ANSWER), pace=0.005)
    conversation_id, events, _ = post_and_read(alice)
    turn = saved_answer(conversation_id)
    assert output_of(events) == [(REASONING, "".join(THOUGHTS)), (TEXT, "".join(ANSWER))]
    assert (turn.reasoning, turn.content) == ("".join(THOUGHTS), "".join(ANSWER))
    ids = [int(event["id"]) for event in events[1:-1]]
    assert ids == sorted(set(ids)) and int(events[-1]["id"]) == len(turn.reasoning) + len(turn.content)
    assert turn.ttft_ms <= turn.ttft_answer_ms and turn.finish_reason == "stop"
    # The saved turn replays the same output (one event a run) and the same end.
    replay = read_events(alice.client.get(f"/api/turns/{turn.pk}/events"))
    assert replay[0] == events[0] and replay[-1] == events[-1]
    assert output_of(replay) == output_of(events)
    assert [int(e["id"]) for e in replay[1:-1]] == [len(turn.reasoning), len(turn.reasoning) + len(turn.content)]
    detail = alice.client.get(f"/api/conversations/{conversation_id}").json()["turns"][1]
    assert detail["reasoning"] == turn.reasoning and detail["ttft_answer_ms"] == turn.ttft_answer_ms


def test_a_thinking_model_is_alive_past_the_first_token_timeout(alice, upstream, settings):
    settings.LLM_FIRST_TOKEN_TIMEOUT = 0.3
    thoughts = [f"step {i}. " for i in range(10)]  # 10 x 0.1 s: three times the timeout
    upstream.behaviour = Behaviour(script=reasoning_script(thoughts, ANSWER), pace=0.1)
    conversation_id, events, _ = post_and_read(alice)
    turn = saved_answer(conversation_id)
    assert len(upstream.calls) == 1 and turn.finish_reason == "stop" and events[-1]["event"] == "done"
    assert turn.reasoning == "".join(thoughts) and turn.content == "".join(ANSWER)
    assert turn.ttft_answer_ms >= 900 > turn.ttft_ms


def test_a_tool_call_streamed_slowly_keeps_the_model_alive(alice, upstream, settings):
    settings.LLM_FIRST_TOKEN_TIMEOUT = 0.3
    pieces = ['{"q": ', '"a', "b", "c", "d", "e", "f", "g", '"}']  # 9 x 0.1 s, nothing relayed until the end
    script = [{"tool_calls": [{"index": 0, "id": "c1", "function": {"name": "find", "arguments": ""}}]}]
    script += [{"tool_calls": [{"index": 0, "function": {"arguments": piece}}]} for piece in pieces]
    upstream.behaviour = Behaviour(script=script, pace=0.1, finish_reason="tool_calls")
    conversation_id, events, _ = post_and_read(alice)
    turn = saved_answer(conversation_id)
    assert len(upstream.calls) == 1 and turn.finish_reason == "tool_calls"
    assert turn.tool_calls == [{"id": "c1", "name": "find", "arguments": '{"q": "abcdefg"}'}]


def test_a_nul_in_a_tool_call_is_stored_on_every_database(alice, upstream):
    script = [{"tool_calls": [{"index": 0, "id": "c1", "function": {"name": "f", "arguments": '{"q": "a\u0000b"}'}}]}]
    upstream.behaviour = Behaviour(script=script, finish_reason="tool_calls")
    conversation_id, events, _ = post_and_read(alice)
    assert saved_answer(conversation_id).tool_calls[0]["arguments"] == '{"q": "a\ufffdb"}'


def test_a_silent_model_still_times_out(alice, upstream, settings):
    settings.LLM_FIRST_TOKEN_TIMEOUT = 0.2
    settings.LLM_RETRIES = 0
    upstream.behaviour = Behaviour(first_token_delay=1.0, tokens=2)
    conversation_id, events, _ = post_and_read(alice)
    assert events[-1]["data"]["code"] == "upstream_timeout"
    assert saved_answer(conversation_id).usage_source == "estimated"  # the server took the call


@pytest.mark.parametrize("dropped_after", [1, 3, 7])
def test_a_resume_from_the_middle_of_the_reasoning_gives_exactly_the_rest(alice, upstream, settings, dropped_after):
    settings.CHATSTREAM_ON_DISCONNECT = "continue"
    thoughts = [f"thought {i}. " for i in range(12)]
    upstream.behaviour = Behaviour(script=reasoning_script(thoughts, ANSWER), pace=0.01)
    conversation_id = alice.new_conversation()
    before: list[dict] = []
    with stream(alice, conversation_id) as response:
        for event in sse_events(response):
            before.append(event)
            if sum(e["event"] == REASONING for e in before) == dropped_after:
                break
    turn_id, last_id = before[0]["data"]["turn_id"], before[-1]["id"]
    after = read_events(alice.client.get(f"/api/turns/{turn_id}/events", headers={"Last-Event-ID": last_id}))
    turn = saved_answer(conversation_id)
    assert output_of(before + after) == [(REASONING, turn.reasoning), (TEXT, turn.content)]
    assert turn.reasoning == "".join(thoughts) and len(upstream.calls) == 1
    # From the saved turn, the same rest.
    replay = read_events(alice.client.get(f"/api/turns/{turn_id}/events", headers={"Last-Event-ID": last_id}))
    assert output_of(replay) == output_of(after) and replay[-1]["id"] == after[-1]["id"]


def test_a_stream_cut_in_the_middle_of_the_reasoning_saves_what_came(alice, upstream):
    upstream.behaviour = Behaviour(script=reasoning_script(THOUGHTS, ANSWER), cut_after=4)
    conversation_id, events, _ = post_and_read(alice)
    turn = saved_answer(conversation_id)
    assert events[-1]["event"] == "error" and turn.finish_reason == "error"
    assert turn.reasoning == "".join(THOUGHTS[:3]) and turn.content == ""
    assert len(upstream.calls) == 1  # output had reached the client: never called twice
    assert turn.usage_source == "estimated" and turn.tokens_estimated


def test_tool_calls_are_relayed_saved_and_finish_as_tool_calls(alice, upstream):
    upstream.behaviour = Behaviour(script=parallel_tool_calls_script(), finish_reason="tool_calls")
    conversation_id, events, _ = post_and_read(alice)
    turn = saved_answer(conversation_id)
    relayed = [event["data"] for event in events if event["event"] == TOOL_CALL]
    assert [call["name"] for call in relayed] == ["get_weather", "get_time"]
    assert turn.tool_calls == relayed and json.loads(relayed[0]["arguments"]) == {"city": "Paris"}
    assert events[-1]["data"]["finish_reason"] == turn.finish_reason == "tool_calls"
    assert turn.status == Turn.Status.COMPLETE
    ndjson = alice.client.get(f"/api/turns/{turn.pk}/events", headers={"Accept": "application/x-ndjson"})
    lines = [json.loads(line) for line in ndjson.text.splitlines()]
    assert [line["tool_call"] for line in lines if line["type"] == TOOL_CALL] == relayed


def test_ollama_ends_a_tool_calling_answer_with_stop_and_it_is_kept_as_tool_calls(alice, upstream):
    upstream.behaviour = Behaviour(script=reused_index_tool_calls_script(), finish_reason="stop")
    conversation_id, events, _ = post_and_read(alice)
    turn = saved_answer(conversation_id)
    assert [call["id"] for call in turn.tool_calls] == ["call_1", "call_2"]
    assert turn.finish_reason == "tool_calls"


def test_a_refusal_is_relayed_and_saved_as_a_refusal(alice, upstream):
    upstream.behaviour = Behaviour(script=refusal_script(["I can't ", "help with that."]))
    conversation_id, events, _ = post_and_read(alice)
    turn = saved_answer(conversation_id)
    assert output_of(events) == [(REFUSAL, "I can't help with that.")]
    assert (turn.refusal, turn.content) == ("I can't help with that.", "")


def test_reasoning_goes_back_to_the_model_only_when_a_setting_says_so(alice, upstream, settings):
    upstream.behaviour = Behaviour(script=reasoning_script(THOUGHTS, ANSWER))
    conversation_id = alice.new_conversation()
    for setting in (False, False, True):
        settings.LLM_REASONING_IN_PROMPT = setting
        with stream(alice, conversation_id, "Again") as response:
            response.read()
    earlier_answer = [m for m in upstream.calls[1].body["messages"] if m["role"] == "assistant"][0]
    assert earlier_answer["content"] == "".join(ANSWER)
    earlier_answer = [m for m in upstream.calls[2].body["messages"] if m["role"] == "assistant"][0]
    assert earlier_answer["content"] == f"<think>\n{''.join(THOUGHTS)}\n</think>\n\n{''.join(ANSWER)}"
