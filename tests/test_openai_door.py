"""The OpenAI-compatible door, through the official `openai` SDK: its turns
are saved, priced and resumable like any other, its chunks are OpenAI's."""

import json
from concurrent.futures import ThreadPoolExecutor

import openai
import pytest

from conversations.models import Conversation, Turn
from conversations.providers.estimates import text_tokens
from harness.fake_upstream import Behaviour, parallel_tool_calls_script, reasoning_script, tool_calls_behaviour

from .helpers import read_events, wait_for_answer

MESSAGES = [
    {"role": "system", "content": "You are terse."},
    {"role": "user", "content": "Hi"},
    {"role": "assistant", "content": "Hello."},
    {"role": "user", "content": "Weather in Paris?"},
]
TOOLS = [{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}]


def test_models_are_listed(sdk, upstream):
    assert [model.id for model in sdk.models.list()] == ["fake-model"]


def test_a_model_is_retrieved_and_an_unknown_one_is_openais_404(sdk, upstream, settings):
    settings.LLM_MODELS = {"fake-model": {"model": "fake-model"}, "org/big": {"model": "big"}}
    model = sdk.models.retrieve("fake-model")
    assert (model.id, model.object, model.created, model.owned_by) == ("fake-model", "model", 0, "openai")
    assert sdk.models.retrieve("org/big").id == "org/big"  # a name with a slash, as vLLM's often are
    with pytest.raises(openai.NotFoundError) as refused:
        sdk.models.retrieve("gpt-nope")
    assert (refused.value.code, refused.value.type) == ("model_not_found", "invalid_request_error")


def test_a_whole_completion_is_saved_with_the_clients_prompt(sdk, upstream):
    raw = sdk.chat.completions.with_raw_response.create(model="fake-model", messages=MESSAGES, temperature=0.2)
    completion = raw.parse()
    turn = Turn.objects.get(pk=raw.headers["X-Chatstream-Turn"])
    assert completion.choices[0].message.content == turn.content == "".join(f"t{i} " for i in range(20))
    assert completion.choices[0].finish_reason == "stop" and completion.usage.total_tokens == 31
    sent = upstream.calls[-1].body
    assert sent["messages"] == MESSAGES and sent["temperature"] == 0.2  # no memory, no system prompt of ours
    user_turn = Turn.objects.get(conversation_id=raw.headers["X-Chatstream-Conversation"], role="user")
    assert user_turn.content == "Weather in Paris?"


def test_a_stream_carries_reasoning_tool_calls_and_usage_in_openais_shape(sdk, upstream):
    script = reasoning_script(["Let me ", "check."], []) + parallel_tool_calls_script()[1:]
    upstream.behaviour = Behaviour(script=script, finish_reason="tool_calls")
    chunks = list(
        sdk.chat.completions.create(
            model="fake-model", messages=MESSAGES, tools=TOOLS, stream=True, stream_options={"include_usage": True}
        )
    )
    deltas = [chunk.choices[0].delta for chunk in chunks if chunk.choices]
    reasoning = "".join(getattr(delta, "reasoning_content", None) or "" for delta in deltas)
    calls = [call for delta in deltas for call in delta.tool_calls or ()]
    assert deltas[0].role == "assistant" and reasoning == "Let me check."
    assert [(c.index, c.function.name) for c in calls] == [(0, "get_weather"), (1, "get_time")]
    assert json.loads(calls[0].function.arguments) == {"city": "Paris"}
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "tool_calls"
    assert chunks[-1].usage is not None and chunks[-1].usage.prompt_tokens == 11
    assert upstream.calls[-1].body["tools"] == TOOLS


def test_a_conversation_is_named_by_a_header_and_the_answer_resumes(sdk, alice, upstream):
    conversation_id = alice.new_conversation()
    headers = {"X-Chatstream-Conversation": conversation_id}
    raw = sdk.chat.completions.with_raw_response.create(model="fake-model", messages=MESSAGES, extra_headers=headers)
    assert raw.headers["X-Chatstream-Conversation"] == conversation_id
    replay = read_events(alice.client.get(f"/api/turns/{raw.headers['X-Chatstream-Turn']}/events"))
    assert replay[-1]["event"] == "done"
    assert Turn.objects.filter(conversation_id=conversation_id).count() == 2


def test_a_client_that_closes_its_stream_stops_the_upstream(sdk, upstream):
    upstream.behaviour = Behaviour(tokens=2000, pace=0.01)
    with sdk.chat.completions.with_streaming_response.create(
        model="fake-model", messages=MESSAGES, stream=True
    ) as response:
        conversation_id = response.headers["X-Chatstream-Conversation"]
        for number, _ in enumerate(response.iter_lines()):
            if number == 8:
                break
    assert upstream.closed_within(2.0)
    turn = wait_for_answer(conversation_id)
    assert turn.finish_reason == "client_disconnected" and 0 < len(turn.content) < 2000 * 3


def test_an_unknown_model_and_a_failed_upstream_raise_as_openais_would(sdk, upstream, settings):
    with pytest.raises(openai.NotFoundError):
        sdk.chat.completions.create(model="gpt-nope", messages=MESSAGES)
    settings.LLM_RETRIES = 0
    upstream.behaviour = Behaviour(status=500)
    with pytest.raises(openai.InternalServerError):
        sdk.chat.completions.create(model="fake-model", messages=MESSAGES)
    with pytest.raises(openai.APIError):
        list(sdk.chat.completions.create(model="fake-model", messages=MESSAGES, stream=True))


def test_the_message_limit_holds_on_the_door(sdk, upstream, settings):
    settings.CHATSTREAM_MAX_MESSAGE_CHARS = 10
    with pytest.raises(openai.BadRequestError, match="the limit is 10"):
        sdk.chat.completions.create(model="fake-model", messages=[{"role": "user", "content": "x" * 11}])
    assert not upstream.calls


def test_the_door_needs_a_key(live, upstream):
    client = openai.OpenAI(base_url=f"{live.url}/v1", api_key="cs_nope_nope", max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        client.models.list()


def test_the_conversations_memory_goes_with_the_prompt_only_when_asked(sdk, alice, upstream):
    from conversations.models import ConversationMemory

    conversation_id = alice.new_conversation()
    ConversationMemory.objects.create(conversation_id=conversation_id, summary="They like short answers.")
    for memory in ("off", "on"):
        headers = {"X-Chatstream-Conversation": conversation_id, "X-Chatstream-Memory": memory}
        sdk.chat.completions.create(model="fake-model", messages=MESSAGES, extra_headers=headers)
    without, with_memory = (call.body["messages"] for call in upstream.calls[-2:])
    assert without == MESSAGES
    assert with_memory[0] == MESSAGES[0] and "They like short answers." in with_memory[1]["content"]
    assert with_memory[2:] == MESSAGES[1:]


# --- what the door lets through ---------------------------------------------------------


def test_the_output_bound_is_the_catalogues_cap_at_most(sdk, upstream, settings):
    settings.LLM_MAX_OUTPUT_TOKENS = 100
    asked = [{"max_tokens": 10**9}, {"max_completion_tokens": 10**9}, {}, {"max_tokens": 20}]
    for bound in asked:
        sdk.chat.completions.create(model="fake-model", messages=MESSAGES, **bound)
    sent = [{k: v for k, v in call.body.items() if k.startswith("max_")} for call in upstream.calls]
    assert sent == [{"max_tokens": 100}, {"max_completion_tokens": 100}, {"max_tokens": 100}, {"max_tokens": 20}]
    settings.LLM_MODELS = {"fake-model": {"model": "fake-model", "max_output_tokens": 50}}
    sdk.chat.completions.create(model="fake-model", messages=MESSAGES, max_tokens=10**9)
    assert upstream.calls[-1].body["max_tokens"] == 50


@pytest.mark.parametrize(
    ("options", "param"),
    [
        ({"messages": [{"role": "user", "content": [{"type": "text", "text": 5}]}]}, "messages[0].content[0].text"),
        ({"messages": [{"role": "user", "content": [{"type": "video", "url": "x"}]}]}, "messages[0].content[0].type"),
        ({"messages": [{"role": "user", "content": ["Hi"]}]}, "messages[0].content[0].type"),
        ({"messages": [{"role": "user", "content": 5}]}, "messages[0].content"),
        ({"tools": [{"type": "function", "function": {"parameters": {}}}]}, "tools[0].function.name"),
        ({"tools": [{"type": "function", "function": {"name": "a b"}}]}, "tools[0].function.name"),
        (
            {"tools": [{"type": "function", "function": {"name": "f", "parameters": []}}]},
            "tools[0].function.parameters",
        ),
        ({"tools": [{"type": "code", "code": {}}]}, "tools[0]"),
        ({"tools": TOOLS * 129}, "tools"),
        ({"tools": [{"type": "function", "function": {"name": "f", "description": "x" * 200}}]}, "tools[0]"),
        ({"reasoning_effort": "extreme"}, "reasoning_effort"),
        ({"max_tokens": "1e9"}, "max_tokens"),
        ({"max_completion_tokens": 0}, "max_completion_tokens"),
    ],
)
def test_a_malformed_request_is_an_openai_shaped_400(sdk, upstream, settings, options, param):
    settings.CHATSTREAM_MAX_MESSAGE_CHARS = 100
    with pytest.raises(openai.BadRequestError) as refused:
        sdk.chat.completions.create(**{"model": "fake-model", "messages": MESSAGES, **options})
    assert (refused.value.code, refused.value.type, refused.value.param) == (
        "invalid_request",
        "invalid_request_error",
        param,
    )
    assert not upstream.calls and not Turn.objects.exists()


@pytest.mark.parametrize(
    ("options", "param"),
    [({"n": 2}, "n"), ({"logprobs": True}, "logprobs"), ({"logprobs": False, "top_logprobs": 3}, "top_logprobs")],
)
def test_what_the_door_cannot_honour_is_refused_not_dropped(sdk, upstream, options, param):
    with pytest.raises(openai.BadRequestError) as refused:
        sdk.chat.completions.create(model="fake-model", messages=MESSAGES, **options)
    assert (refused.value.code, refused.value.type, refused.value.param) == (
        "unsupported_parameter",
        "invalid_request_error",
        param,
    )
    assert not upstream.calls and not Turn.objects.exists()
    sdk.chat.completions.create(model="fake-model", messages=MESSAGES, n=1, logprobs=False)  # what it can do
    assert len(upstream.calls) == 1


def test_estimated_usage_says_so_and_reported_usage_does_not(sdk, upstream):
    whole = sdk.chat.completions.create(model="fake-model", messages=MESSAGES)
    assert whole.usage is not None and not hasattr(whole.usage, "chatstream_estimated")
    upstream.behaviour = Behaviour(usage_chunk=False)  # the server counts nothing: chatstream does
    whole = sdk.chat.completions.create(model="fake-model", messages=MESSAGES)
    counted = text_tokens("".join(Behaviour().pieces()))  # its text's characters (providers/estimates.py)
    assert whole.usage is not None and whole.usage.chatstream_estimated is True
    assert whole.usage.completion_tokens == counted
    streamed = list(
        sdk.chat.completions.create(
            model="fake-model", messages=MESSAGES, stream=True, stream_options={"include_usage": True}
        )
    )
    usage = streamed[-1].usage
    assert usage is not None and usage.chatstream_estimated is True and usage.completion_tokens == counted


def test_usage_that_leaves_a_count_out_is_marked_as_estimated(sdk, upstream):
    upstream.behaviour = Behaviour(usage={"prompt_tokens": 11})  # no completion_tokens: chatstream counts them
    whole = sdk.chat.completions.create(model="fake-model", messages=MESSAGES)
    assert whole.usage is not None and whole.usage.prompt_tokens == 11 and whole.usage.chatstream_estimated is True
    assert whole.usage.completion_tokens == text_tokens("".join(Behaviour().pieces()))


def test_every_message_and_the_whole_prompt_are_held_to_the_apis_limits(sdk, upstream, settings):
    settings.CHATSTREAM_MAX_MESSAGE_CHARS, settings.LLM_CONTEXT_TOKENS = 100, 60
    long_system = [{"role": "system", "content": "x" * 101}, {"role": "user", "content": "Hi"}]
    with pytest.raises(openai.BadRequestError, match="the limit is 100") as refused:
        sdk.chat.completions.create(model="fake-model", messages=long_system)
    assert (refused.value.code, refused.value.param) == ("content_too_long", "messages[0]")
    parts = [{"type": "text", "text": "x" * 90}]
    too_many = [{"role": role, "content": parts} for role in ("user", "assistant", "user")]
    with pytest.raises(openai.BadRequestError, match="takes at most 60") as refused:
        sdk.chat.completions.create(model="fake-model", messages=too_many)
    assert refused.value.code == "context_length_exceeded"
    assert not upstream.calls and not Turn.objects.exists()
    sdk.chat.completions.create(model="fake-model", messages=too_many[:2])  # within the budget: answered
    assert len(upstream.calls) == 1


# --- repeats and caches -----------------------------------------------------------------


def test_an_idempotency_key_alone_names_one_conversation_and_one_model_call(sdk, upstream):
    upstream.behaviour = Behaviour(tokens=20, pace=0.01)
    key = {"Idempotency-Key": "order-42"}

    def call():
        return sdk.chat.completions.with_raw_response.create(model="fake-model", messages=MESSAGES, extra_headers=key)

    with ThreadPoolExecutor(2) as pool:
        together = list(pool.map(lambda _: call(), range(2)))
    later = call()
    named = {(raw.headers["X-Chatstream-Conversation"], raw.headers["X-Chatstream-Turn"]) for raw in [*together, later]}
    contents = {raw.parse().choices[0].message.content for raw in [*together, later]}
    assert len(named) == 1 and contents == {"".join(f"t{i} " for i in range(20))}
    assert len(upstream.calls) == 1 and Conversation.objects.count() == 1
    other = sdk.chat.completions.with_raw_response.create(
        model="fake-model", messages=MESSAGES, extra_headers={"Idempotency-Key": "order-43"}
    )
    assert other.headers["X-Chatstream-Conversation"] not in {name for name, _ in named}


def test_a_whole_completion_is_not_stored_by_caches(sdk, upstream):
    whole = sdk.chat.completions.with_raw_response.create(model="fake-model", messages=MESSAGES)
    assert whole.headers["Cache-Control"] == "no-store"
    with sdk.chat.completions.with_streaming_response.create(
        model="fake-model", messages=MESSAGES, stream=True
    ) as streamed:
        assert streamed.headers["Cache-Control"] == "no-cache, no-transform"


# --- retries and the client's tool loop -------------------------------------------------


def _turns(conversation_id: str) -> list[tuple[str, str]]:
    return list(Turn.objects.filter(conversation_id=conversation_id).values_list("role", "status"))


def test_an_sdks_retries_of_a_failed_call_save_its_question_once(sdk, upstream, settings):
    settings.LLM_RETRIES = 0
    upstream.behaviour = Behaviour(status=502)
    with pytest.raises(openai.InternalServerError):
        sdk.with_options(max_retries=2).chat.completions.create(model="fake-model", messages=MESSAGES)
    assert len(upstream.calls) == 3 and Conversation.objects.count() == 1
    (conversation_id,) = Conversation.objects.values_list("pk", flat=True)
    assert sorted(_turns(conversation_id)) == [("assistant", "failed")] * 3 + [("user", "complete")]


@pytest.mark.parametrize("named", ["", "X-Chatstream-Conversation", "Idempotency-Key"])
def test_a_retry_that_succeeds_answers_the_same_question(sdk, alice, upstream, settings, named):
    settings.LLM_RETRIES = 0
    value = alice.new_conversation() if named == "X-Chatstream-Conversation" else "order-7"
    headers = {named: value} if named else {}
    upstream.behaviour = Behaviour(status=502, fail_first=1)
    raw = sdk.with_options(max_retries=2).chat.completions.with_raw_response.create(
        model="fake-model", messages=MESSAGES, extra_headers=headers
    )
    conversation_id = raw.headers["X-Chatstream-Conversation"]
    assert raw.parse().choices[0].message.content == "".join(f"t{i} " for i in range(20))
    assert len(upstream.calls) == 2 and Conversation.objects.count() == 1
    assert sorted(_turns(conversation_id)) == [("assistant", "complete"), ("assistant", "failed"), ("user", "complete")]
    question = Turn.objects.get(conversation_id=conversation_id, role="user")
    assert str(question.reply_id) == raw.headers["X-Chatstream-Turn"]  # the shown answer: the one that worked
    sdk.chat.completions.create(model="fake-model", messages=MESSAGES, extra_headers=headers)
    if named != "Idempotency-Key":  # a new call: a new question (a key's repeat gets the first answer)
        assert Turn.objects.filter(role="user").count() == 2


def test_a_retry_of_an_answered_call_gets_that_answer_without_a_model_call(sdk, alice, upstream):
    headers = {"X-Chatstream-Conversation": alice.new_conversation()}
    first = sdk.chat.completions.with_raw_response.create(model="fake-model", messages=MESSAGES, extra_headers=headers)
    retry = sdk.chat.completions.with_raw_response.create(
        model="fake-model", messages=MESSAGES, extra_headers={**headers, "X-Stainless-Retry-Count": "1"}
    )
    assert retry.headers["X-Chatstream-Turn"] == first.headers["X-Chatstream-Turn"] and len(upstream.calls) == 1
    assert retry.parse().choices[0].message.content == first.parse().choices[0].message.content


@pytest.mark.parametrize("named", [True, False], ids=["conversation named", "no header"])
def test_a_client_tool_loop_step_carries_on_the_same_question(sdk, alice, upstream, named):
    headers = {"X-Chatstream-Conversation": alice.new_conversation()} if named else {}
    upstream.next_calls.append(tool_calls_behaviour(("call_7", "get_weather", {"city": "Paris"})))
    raw_asked = sdk.chat.completions.with_raw_response.create(
        model="fake-model", messages=MESSAGES, tools=TOOLS, extra_headers=headers
    )
    asked = raw_asked.parse()
    (call,) = asked.choices[0].message.tool_calls or []
    alice.new_conversation()  # a newer one than the call's: the step's is found among the newest
    step = [
        *MESSAGES,
        asked.choices[0].message.model_dump(exclude_none=True),
        {"role": "tool", "tool_call_id": call.id, "content": "18°C"},
    ]
    raw = sdk.chat.completions.with_raw_response.create(
        model="fake-model", messages=step, tools=TOOLS, extra_headers=headers
    )
    assert raw.parse().choices[0].message.content and upstream.calls[-1].body["messages"] == step
    assert raw.headers["X-Chatstream-Conversation"] == raw_asked.headers["X-Chatstream-Conversation"]
    turns = Turn.objects.filter(conversation_id=raw.headers["X-Chatstream-Conversation"])
    question = turns.get(role="user")
    assert question.content == "Weather in Paris?" and turns.filter(role="assistant").count() == 2
    assert str(question.reply_id) == raw.headers["X-Chatstream-Turn"]  # the loop's latest answer is the one shown
    assert set(turns.filter(role="assistant").values_list("parent", flat=True)) == {question.pk}


def test_a_retry_after_a_client_timeout_saves_the_question_once(sdk, upstream):
    upstream.next_calls.extend([Behaviour(first_token_delay=3), Behaviour()])
    raw = sdk.with_options(max_retries=1, timeout=1).chat.completions.with_raw_response.create(
        model="fake-model", messages=MESSAGES
    )
    assert raw.parse().choices[0].message.content == "".join(f"t{i} " for i in range(20))
    question = Turn.objects.get(role="user")  # the only one
    assert str(question.reply_id) == raw.headers["X-Chatstream-Turn"] and Conversation.objects.count() == 1


def test_only_a_retry_of_the_same_request_is_taken_for_one(sdk, alice, upstream):
    headers = {"X-Chatstream-Conversation": alice.new_conversation()}
    sdk.chat.completions.create(model="fake-model", messages=MESSAGES, extra_headers=headers)
    sdk.chat.completions.create(model="fake-model", messages=MESSAGES, extra_headers=headers)  # sent again on purpose
    # Its first attempt refused before anything was saved (a 429, say): same last words, another prompt.
    other = [*MESSAGES[:1], *MESSAGES[3:]]
    retry = {**headers, "X-Stainless-Retry-Count": "1"}
    sdk.chat.completions.create(model="fake-model", messages=other, extra_headers=retry)
    assert len(upstream.calls) == 3 and Turn.objects.filter(role="user").count() == 3
