"""Whatever fails while an answer ends, its turn is saved with what was
produced and the stream ends with a final event; a Stop never answers 500
(the second review's second finding)."""

import pytest

from conversations import services
from conversations.models import Spend
from conversations.providers.base import Completion
from conversations.spend import pricing
from conversations.stream import ending, telemetry
from harness.fake_upstream import Behaviour

from .helpers import door_stream_until_text, post_and_read, text_of, wait_for_answer


def broken(*args, **kwargs):
    raise RuntimeError("injected")


def broken_once(original):
    calls = []

    def first_call_fails(*args, **kwargs):
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("injected")
        return original(*args, **kwargs)

    return first_call_fails


# Each step of an answer's end, and whether the turn is then saved as an
# internal error (the answer could not be built or saved as it was).
STEPS = {
    "held-back output": (lambda mp: mp.setattr(Completion, "rest", broken), True),
    "usage": (lambda mp: mp.setattr(ending, "usage_of", broken), True),
    "the save": (lambda mp: mp.setattr(services, "record_answer", broken_once(services.record_answer)), True),
    "pricing": (lambda mp: mp.setattr(pricing, "cost", broken), False),
    "telemetry": (lambda mp: mp.setattr(telemetry, "stream_ended", broken), False),
    "final event": (lambda mp: mp.setattr(ending, "final_event", broken), False),
}


@pytest.mark.parametrize("step", list(STEPS))
def test_a_failure_at_any_step_of_the_end_still_saves_the_turn_and_ends_the_stream(alice, upstream, monkeypatch, step):
    upstream.behaviour = Behaviour(tokens=6)
    inject, saved_as_error = STEPS[step]
    inject(monkeypatch)
    conversation_id, events, _ = post_and_read(alice)
    turn = wait_for_answer(conversation_id)
    assert events[-1]["event"] in ("done", "error")  # never a stream left on heartbeats
    assert turn.content == text_of(events) == "".join(f"t{i} " for i in range(6))
    if saved_as_error:
        assert turn.finish_reason == "error" and turn.error_code == "internal_error"
        assert events[-1]["event"] == "error" and "injected" not in events[-1]["data"]["message"]
    else:
        assert turn.finish_reason == "stop"


def test_a_door_prompt_with_tool_calls_and_no_content_is_saved_and_billed_when_stopped(
    alice, upstream, sdk, settings, fresh_prices
):
    """OpenAI's own tool-call history: an assistant message with `tool_calls`
    and no `content`, and a stream stopped before its usage chunk."""
    settings.LLM_PRICES = {"fake-model": {"input": "1", "output": "1"}}
    upstream.behaviour = Behaviour(tokens=2000, pace=0.01)
    messages = [
        {"role": "user", "content": "Weather in Paris?"},
        {
            "role": "assistant",
            "tool_calls": [
                {"id": "call_1", "type": "function", "function": {"name": "weather", "arguments": '{"city":"Paris"}'}}
            ],
        },
        {"role": "tool", "tool_call_id": "call_1", "content": "Sunny, 21 C"},
    ]
    with sdk.chat.completions.with_streaming_response.create(
        model="fake-model", messages=messages, stream=True
    ) as response:
        conversation_id, lines = door_stream_until_text(response)
        turn_id = next(iter(alice.client.get(f"/api/conversations/{conversation_id}").json()["generating"]))["turn_id"]
        stopped = alice.client.post(f"/api/turns/{turn_id}/cancel")
        assert stopped.status_code == 200, stopped.text
        assert [line for line in lines if line][-1] == "data: [DONE]"
    turn = wait_for_answer(conversation_id)
    assert turn.finish_reason == "cancelled" and turn.tokens_in and turn.usage_source == "estimated"
    assert Spend.objects.get(turn_id=turn.pk).cost > 0
