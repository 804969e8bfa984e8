"""The Responses API on the OpenAI door (`v1/responses`), through the
official `openai` SDK: its events and objects parse as OpenAI's, its turns
are saved once, and previous_response_id goes on in chatstream's own
history."""

import json

import openai
import pytest

from conversations.models import Turn
from harness.fake_upstream import Behaviour, reasoning_script, tool_calls_behaviour

from .helpers import wait_for_answer

WEATHER = {"type": "function", "name": "get_weather", "parameters": {"type": "object"}}
CHAT_WEATHER = {"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}
FILE_PART = {"type": "input_file", "file_id": "file_1"}
ANSWER = "".join(f"t{i} " for i in range(20))  # the fake upstream's answer


def _turn(raw) -> Turn:
    return Turn.objects.get(pk=raw.headers["X-Chatstream-Turn"])


def _said(call) -> list[dict]:
    """What the upstream was sent, without the system prompt."""
    return [m for m in call.body["messages"] if m["role"] != "system"]


# --- one response object ----------------------------------------------------------------


def test_a_whole_response_is_saved_with_the_clients_input(sdk, upstream):
    raw = sdk.responses.with_raw_response.create(model="fake-model", input="Hi", temperature=0.2)
    response, turn = raw.parse(), _turn(raw)
    assert response.id == f"resp_{turn.pk.hex}" and response.object == "response"
    assert response.status == "completed" and response.model == "fake-model"
    assert response.output_text == turn.content == ANSWER
    assert [item.type for item in response.output] == ["message"]
    assert response.usage.input_tokens == 11 and response.usage.total_tokens == 31
    assert response.usage.output_tokens_details.reasoning_tokens == 0
    assert upstream.calls[-1].body["messages"] == [{"role": "user", "content": "Hi"}]
    assert upstream.calls[-1].body["temperature"] == 0.2
    asked = Turn.objects.get(conversation_id=turn.conversation_id, role="user")
    assert asked.content == "Hi" and asked.reply_id == turn.pk


def test_input_messages_and_instructions_reach_the_upstream_as_chat_messages(sdk, upstream):
    given = [
        {"role": "developer", "content": "Answer in French."},
        {"role": "user", "content": [{"type": "input_text", "text": "Hi"}]},
        {"role": "assistant", "content": [{"type": "output_text", "text": "Salut."}]},
        {"type": "message", "role": "user", "content": "Weather?"},
    ]
    sdk.responses.create(model="fake-model", input=given, instructions="You are terse.")
    assert upstream.calls[-1].body["messages"] == [
        {"role": "system", "content": "You are terse."},
        {"role": "system", "content": "Answer in French."},
        {"role": "user", "content": [{"type": "text", "text": "Hi"}]},
        {"role": "assistant", "content": [{"type": "text", "text": "Salut."}]},
        {"role": "user", "content": "Weather?"},
    ]


def test_usage_the_door_counted_itself_says_so(sdk, upstream):
    reported = sdk.responses.create(model="fake-model", input="Hi")
    assert "chatstream_estimated" not in (reported.usage.model_extra or {})
    upstream.behaviour = Behaviour(usage_chunk=False)
    estimated = sdk.responses.create(model="fake-model", input="Hi")
    saved = Turn.objects.get(pk=estimated.id.removeprefix("resp_"))
    assert estimated.usage.chatstream_estimated is True and estimated.usage.output_tokens == saved.tokens_out > 0


def test_the_saved_response_is_read_again_by_its_id(sdk, upstream):
    created = sdk.responses.create(model="fake-model", input="Hi")
    again = sdk.responses.retrieve(created.id)
    assert (again.id, again.output_text, again.status) == (created.id, ANSWER, "completed")
    assert again.usage.total_tokens == created.usage.total_tokens


# --- streamed ---------------------------------------------------------------------------


def test_a_stream_is_openais_events_in_order(sdk, upstream):
    with sdk.responses.with_streaming_response.create(model="fake-model", input="Hi", stream=True) as raw:
        turn_id = raw.headers["X-Chatstream-Turn"]
        events = list(raw.parse())
    kinds = [event.type for event in events]
    assert kinds[:5] == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
        "response.output_text.delta",
    ]
    assert kinds[-5:] == [
        "response.output_text.delta",
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.completed",
    ]
    assert [event.sequence_number for event in events] == list(range(len(events)))
    turn = Turn.objects.get(pk=turn_id)
    assert "".join(e.delta for e in events if e.type == "response.output_text.delta") == turn.content == ANSWER
    assert events[-1].response.output_text == ANSWER and events[-1].response.usage.total_tokens == 31


def test_the_stream_helpers_final_response_is_the_saved_turn(sdk, upstream):
    with sdk.responses.stream(model="fake-model", input="Hi") as stream:
        texts = [event.snapshot for event in stream if event.type == "response.output_text.delta"]
        final = stream.get_final_response()
    turn = Turn.objects.get(pk=final.id.removeprefix("resp_"))
    assert final.output_text == texts[-1] == turn.content == ANSWER


def test_reasoning_streams_as_a_reasoning_item_before_the_message(sdk, upstream):
    upstream.behaviour = Behaviour(script=reasoning_script(["Let me ", "think."], ["Paris."]))
    with sdk.responses.stream(model="fake-model", input="Capital of France?", reasoning={"effort": "low"}) as stream:
        deltas = [event.delta for event in stream if event.type == "response.reasoning_text.delta"]
        final = stream.get_final_response()
    reasoning, message = final.output
    assert "".join(deltas) == "Let me think." and reasoning.type == "reasoning"  # a slow reader gets one delta
    assert reasoning.content[0].text == "Let me think." and final.output_text == "Paris."
    assert upstream.calls[-1].body["reasoning_effort"] == "low"
    whole = sdk.responses.retrieve(final.id)
    assert [item.type for item in whole.output] == ["reasoning", "message"] and whole.output_text == "Paris."


def test_a_length_stop_is_incomplete_and_an_upstream_failure_fails(sdk, upstream, settings):
    upstream.behaviour = Behaviour(finish_reason="length")
    events = list(sdk.responses.create(model="fake-model", input="Hi", stream=True, max_output_tokens=20))
    assert events[-1].type == "response.incomplete"
    assert events[-1].response.incomplete_details.reason == "max_output_tokens"
    assert upstream.calls[-1].body["max_tokens"] == 20
    settings.LLM_RETRIES = 0
    upstream.behaviour = Behaviour(status=500)
    events = list(sdk.responses.create(model="fake-model", input="Hi", stream=True))
    assert events[-1].type == "response.failed" and events[-1].response.error.message
    with pytest.raises(openai.InternalServerError):
        sdk.responses.create(model="fake-model", input="Hi")


def test_a_client_that_closes_its_stream_stops_the_upstream_and_the_turn_keeps_what_it_got(sdk, upstream):
    upstream.behaviour = Behaviour(tokens=2000, pace=0.01)
    streamed = []
    with sdk.responses.with_streaming_response.create(model="fake-model", input="Hi", stream=True) as raw:
        conversation_id = raw.headers["X-Chatstream-Conversation"]
        for event in raw.parse():
            if event.type == "response.output_text.delta":
                streamed.append(event.delta)
            if len(streamed) == 8:
                break
    assert upstream.closed_within(2.0)
    turn = wait_for_answer(conversation_id)
    assert turn.finish_reason == "client_disconnected"
    whole = "".join(f"t{i} " for i in range(2000))
    assert turn.content.startswith("".join(streamed)) and len(turn.content) < len(whole)  # cut short
    assert Turn.objects.filter(conversation_id=conversation_id).count() == 2


# --- tools and previous_response_id -----------------------------------------------------


def test_a_function_call_answered_with_previous_response_id_carries_on_the_same_question(sdk, upstream):
    upstream.next_calls.append(tool_calls_behaviour(("call_7", "get_weather", {"city": "Paris"})))
    with sdk.responses.stream(model="fake-model", input="Weather in Paris?", tools=[WEATHER]) as stream:
        argument_deltas = [e.delta for e in stream if e.type == "response.function_call_arguments.delta"]
        asked = stream.get_final_response()
    (call,) = asked.output
    assert (call.type, call.call_id, call.name) == ("function_call", "call_7", "get_weather")
    assert json.loads(call.arguments) == {"city": "Paris"} and argument_deltas == [call.arguments]
    assert upstream.calls[-1].body["tools"] == [CHAT_WEATHER]
    output = {"type": "function_call_output", "call_id": "call_7", "output": "18°C"}
    raw = sdk.responses.with_raw_response.create(
        model="fake-model", previous_response_id=asked.id, input=[output], tools=[WEATHER]
    )
    answered = raw.parse()
    assert answered.output_text == ANSWER and [item.type for item in answered.output] == ["message"]
    assert _said(upstream.calls[-1]) == [
        {"role": "user", "content": "Weather in Paris?"},
        {"role": "assistant", "content": "", "tool_calls": [_chat_call(call)]},
        {"role": "tool", "tool_call_id": "call_7", "content": "18°C"},
    ]
    turns = Turn.objects.filter(conversation_id=raw.headers["X-Chatstream-Conversation"])
    assert turns.filter(role="user").count() == 1  # the question once; the step is a new version of its answer
    first, second = turns.filter(role="assistant").order_by("created_at")
    assert first.pk.hex == asked.id.removeprefix("resp_") and second.parent == first.parent
    assert second.content == ANSWER and second.tool_results[0]["output"] == "18°C"
    thanks = sdk.responses.create(model="fake-model", previous_response_id=answered.id, input="Thanks!")
    assert _said(upstream.calls[-1])[1:] == [
        {"role": "assistant", "content": "", "tool_calls": [_chat_call(call)]},
        {"role": "tool", "tool_call_id": "call_7", "content": "18°C"},
        {"role": "assistant", "content": ANSWER},
        {"role": "user", "content": "Thanks!"},
    ]
    assert sdk.responses.retrieve(answered.id).output_text == ANSWER and thanks.output_text == ANSWER


def _chat_call(call) -> dict:
    return {"id": call.call_id, "type": "function", "function": {"name": call.name, "arguments": call.arguments}}


def test_previous_response_id_goes_on_in_chatstreams_history(sdk, upstream):
    first = sdk.responses.with_raw_response.create(model="fake-model", input="Hi")
    second = sdk.responses.with_raw_response.create(
        model="fake-model", previous_response_id=first.parse().id, input="And then?", instructions="Be brief."
    )
    sent = upstream.calls[-1].body["messages"]
    assert sent == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": ANSWER},
        {"role": "user", "content": "And then?"},
    ]
    conversation_id = first.headers["X-Chatstream-Conversation"]
    assert second.headers["X-Chatstream-Conversation"] == conversation_id
    question = Turn.objects.get(conversation_id=conversation_id, content="And then?")
    assert question.parent == _turn(first).pk and _turn(second).parent == question.pk
    assert Turn.objects.filter(conversation_id=conversation_id).count() == 4


def test_a_previous_response_that_is_not_the_users_is_openais_404(sdk, bob, live, upstream):
    theirs = openai.OpenAI(base_url=f"{live.url}/v1", api_key=bob.key, max_retries=0)
    foreign = theirs.responses.create(model="fake-model", input="Hi").id
    calls = len(upstream.calls)
    for given in (foreign, "resp_" + "0" * 32, "resp_nope", "chatcmpl-1"):
        with pytest.raises(openai.NotFoundError) as refused:
            sdk.responses.create(model="fake-model", previous_response_id=given, input="Hi")
        assert (refused.value.type, refused.value.param) == ("invalid_request_error", "previous_response_id")
    with pytest.raises(openai.NotFoundError):
        sdk.responses.retrieve(foreign)
    assert len(upstream.calls) == calls
    theirs.close()


@pytest.mark.parametrize(
    ("options", "param"),
    [
        ({"background": True}, "background"),
        ({"tools": [{"type": "web_search"}]}, "tools[0].type"),
        ({"extra_body": {"conversation": "conv_1"}}, "conversation"),
        ({"input": [{"role": "user", "content": [FILE_PART]}]}, "input[0].content[0].type"),
    ],
)
def test_what_the_door_cannot_do_is_refused_naming_the_parameter(sdk, upstream, options, param):
    given = {"model": "fake-model", "input": "Hi", **options}
    with pytest.raises(openai.BadRequestError) as refused:
        sdk.responses.create(**given)
    assert (refused.value.code, refused.value.type, refused.value.param) == (
        "unsupported_parameter",
        "invalid_request_error",
        param,
    )
    assert not upstream.calls and not Turn.objects.exists()


@pytest.mark.parametrize(
    ("options", "param"),
    [
        ({"input": []}, "input"),
        ({"input": [{"role": "robot", "content": "Hi"}]}, "input[0].role"),
        ({"input": [{"role": "user", "content": [{"type": "input_text"}]}]}, "input[0].content[0].text"),
        ({"input": [{"type": "function_call_output", "output": "1"}]}, "input[0].call_id"),
        ({"temperature": 3}, "temperature"),
        ({"max_output_tokens": 0}, "max_output_tokens"),
        ({"reasoning": {"effort": "extreme"}}, "reasoning.effort"),
        ({"tool_choice": {"type": "file_search"}}, "tool_choice"),
        ({"tools": [{"type": "function", "name": "a b"}]}, "tools[0].name"),
    ],
)
def test_a_malformed_request_is_an_openai_shaped_400_naming_the_field(sdk, upstream, options, param):
    given = {"model": "fake-model", "input": "Hi", **options}
    with pytest.raises(openai.BadRequestError) as refused:
        sdk.responses.create(**given)
    assert (refused.value.type, refused.value.param) == ("invalid_request_error", param)
    assert not upstream.calls and not Turn.objects.exists()


def test_the_message_limit_holds_and_names_the_input(sdk, upstream, settings):
    settings.CHATSTREAM_MAX_MESSAGE_CHARS = 10
    with pytest.raises(openai.BadRequestError, match="the limit is 10") as refused:
        sdk.responses.create(model="fake-model", input="x" * 11)
    assert (refused.value.code, refused.value.param) == ("content_too_long", "input")
    assert not upstream.calls


def test_a_json_format_goes_on_as_the_response_format(sdk, upstream):
    schema = {"type": "object", "properties": {"city": {"type": "string"}}}
    text = {"format": {"type": "json_schema", "name": "place", "schema": schema, "strict": True}}
    sdk.responses.create(model="fake-model", input="Where?", text=text)
    expected = {"type": "json_schema", "json_schema": {"name": "place", "schema": schema, "strict": True}}
    assert upstream.calls[-1].body["response_format"] == expected
    with pytest.raises(openai.BadRequestError) as refused:
        sdk.responses.create(model="fake-model", input="Where?", text={"format": {"type": "json_schema"}})
    assert refused.value.param == "text.format"


def test_a_call_may_go_on_from_an_older_response_with_its_own_format(sdk, upstream):
    first = sdk.responses.with_raw_response.create(model="fake-model", input="Hi")
    sdk.responses.create(model="fake-model", previous_response_id=first.parse().id, input="Go on.")
    upstream.behaviour = Behaviour(text='{"city": "Paris"}')
    text = {"format": {"type": "json_object"}}
    forked = sdk.responses.with_raw_response.create(
        model="fake-model", previous_response_id=first.parse().id, input="As JSON?", text=text
    )
    assert _said(upstream.calls[-1]) == [
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": ANSWER},
        {"role": "user", "content": "As JSON?"},
    ]
    assert upstream.calls[-1].body["response_format"] == {"type": "json_object"}
    question = Turn.objects.get(pk=_turn(forked).parent)
    assert question.parent == _turn(first).pk and _turn(forked).output_valid is True


def test_a_tool_loop_of_several_steps_keeps_every_step_in_the_history(sdk, upstream):
    upstream.next_calls.extend(
        [
            tool_calls_behaviour(("call_1", "get_weather", {"city": "Paris"})),
            tool_calls_behaviour(("call_2", "get_weather", {"city": "Oslo"}), text="Now Oslo."),
        ]
    )
    response = sdk.responses.create(model="fake-model", input="Paris or Oslo?", tools=[WEATHER])
    for call_id, output in (("call_1", "18°C"), ("call_2", "9°C")):
        (call,) = [item for item in response.output if item.type == "function_call"]
        assert call.call_id == call_id  # each response holds its own call only
        answer = {"type": "function_call_output", "call_id": call_id, "output": output}
        response = sdk.responses.create(
            model="fake-model", previous_response_id=response.id, input=[answer], tools=[WEATHER]
        )
    said = _said(upstream.calls[-1])
    assert [(m["role"], m.get("tool_call_id")) for m in said] == [
        ("user", None),
        ("assistant", None),
        ("tool", "call_1"),
        ("assistant", None),
        ("tool", "call_2"),
    ]
    assert said[3]["content"] == "Now Oslo." and response.output_text == ANSWER
    turn = Turn.objects.get(pk=response.id.removeprefix("resp_"))
    assert Turn.objects.filter(conversation_id=turn.conversation_id, role="user").count() == 1
    assert Turn.objects.filter(conversation_id=turn.conversation_id, role="assistant").count() == 3
    assert [r["output"] for r in turn.tool_results] == ["18°C", "9°C"]


def test_what_cannot_follow_a_previous_response_is_a_400_naming_input(sdk, upstream):
    upstream.next_calls.append(tool_calls_behaviour(("call_7", "get_weather", {})))
    asked = sdk.responses.create(model="fake-model", input="Weather?", tools=[WEATHER])
    calls = len(upstream.calls)
    wrong = [
        [{"type": "function_call_output", "call_id": "call_nope", "output": "1"}],
        [{"role": "assistant", "content": "I said so."}, {"role": "user", "content": "Right?"}],
        [{"type": "function_call_output", "call_id": "call_7", "output": "1"}, {"role": "user", "content": "And?"}],
        [{"role": "user", "content": [{"type": "input_image", "image_url": "https://example.com/a.png"}]}],
    ]
    for given in wrong:
        with pytest.raises(openai.BadRequestError) as refused:
            sdk.responses.create(model="fake-model", previous_response_id=asked.id, input=given)
        assert (refused.value.type, refused.value.param) == ("invalid_request_error", "input")
    assert len(upstream.calls) == calls


def test_an_sdks_retry_after_a_previous_response_gets_the_first_attempts_answer(sdk, upstream):
    first = sdk.responses.create(model="fake-model", input="Hi")
    body = {"model": "fake-model", "previous_response_id": first.id, "input": "More?"}
    answered = sdk.responses.create(**body)
    calls = len(upstream.calls)
    retried = sdk.responses.create(**body, extra_headers={"X-Stainless-Retry-Count": "1"})
    assert retried.id == answered.id and len(upstream.calls) == calls
    conversation = Turn.objects.get(pk=answered.id.removeprefix("resp_")).conversation_id
    assert Turn.objects.filter(conversation_id=conversation, content="More?").count() == 1


def test_an_input_image_goes_on_as_an_image_part(sdk, upstream, settings):
    settings.LLM_MODELS = {"fake-model": {"model": "fake-model", "vision": True}}
    image = {"type": "input_image", "image_url": "https://example.com/cat.png", "detail": "low"}
    raw = sdk.responses.with_raw_response.create(
        model="fake-model", input=[{"role": "user", "content": [{"type": "input_text", "text": "What?"}, image]}]
    )
    (sent,) = upstream.calls[-1].body["messages"]
    assert sent["content"][1] == {"type": "image_url", "image_url": {"url": image["image_url"], "detail": "low"}}
    asked = Turn.objects.get(conversation_id=raw.headers["X-Chatstream-Conversation"], role="user")
    assert asked.content == "What?\n[image]"
