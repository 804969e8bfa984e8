"""The spend ledger: every model call's cost kept apart from the turns, so a
conversation deleted while its answer streams stops the model call and
still pays for what it produced (the second review's first finding)."""

from decimal import Decimal

import openai
import pytest

from conversations.models import Spend, Turn
from conversations.spend import budgets
from harness.fake_upstream import Behaviour

from .helpers import door_stream_until_text, read_until_deltas, sse_events, stream

PRICES = {"fake-model": {"input": "100", "output": "100"}}


pytestmark = pytest.mark.usefixtures("fresh_prices")


@pytest.fixture
def expensive(upstream, settings):
    """A long, slow answer from a model priced 100 a million tokens."""
    settings.LLM_PRICES = PRICES
    upstream.behaviour = Behaviour(tokens=2000, pace=0.01)
    return upstream


def refused_for_budget(api_user) -> bool:
    conversation_id = api_user.new_conversation()
    response = api_user.client.post(f"/api/conversations/{conversation_id}/messages", json={"content": "More"})
    response.read()
    return response.status_code == 429 and response.json()["error"]["code"] == "budget_exceeded"


def test_deleting_a_conversation_mid_answer_stops_the_model_and_keeps_the_cost(alice, expensive, settings):
    conversation_id = alice.new_conversation()
    with stream(alice, conversation_id) as response:
        events = sse_events(response)  # held: the client stays connected
        read_until_deltas(events, 3)
        assert alice.client.delete(f"/api/conversations/{conversation_id}").status_code == 204
        assert expensive.closed_within(2.0)  # the model call is closed, not left to run to its end
        assert list(events)[-1]["data"]["finish_reason"] == "cancelled"  # and its reader told
    spend = Spend.objects.get(conversation_id=conversation_id)
    assert spend.kind == "answer" and spend.user_id == alice.user.pk and spend.api_key_id is not None
    assert spend.tokens_out and spend.tokens_out < 2000 and spend.cost and spend.cost > 0
    assert not Turn.objects.filter(conversation_id=conversation_id).exists()
    settings.CHATSTREAM_DAILY_BUDGET = str(spend.cost)  # what the deleted conversation cost: all there was
    assert refused_for_budget(alice)


def test_deleting_the_doors_conversation_mid_answer_keeps_the_cost(alice, expensive, sdk, settings):
    messages = [{"role": "user", "content": "Write at length"}]
    with sdk.chat.completions.with_streaming_response.create(
        model="fake-model", messages=messages, stream=True
    ) as response:
        conversation_id, lines = door_stream_until_text(response)
        assert alice.client.delete(f"/api/conversations/{conversation_id}").status_code == 204
        assert expensive.closed_within(2.0)
    cost = Spend.objects.get(conversation_id=conversation_id).cost
    assert cost > 0
    settings.CHATSTREAM_DAILY_BUDGET = str(cost)
    with pytest.raises(openai.RateLimitError):
        sdk.chat.completions.create(model="fake-model", messages=messages)


def test_a_deleted_conversations_saved_answers_still_count(alice, upstream, settings):
    settings.LLM_PRICES = PRICES
    upstream.behaviour = Behaviour(tokens=5, usage={"prompt_tokens": 10, "completion_tokens": 5})
    conversation_id = alice.new_conversation()
    with stream(alice, conversation_id) as response:
        response.read()
    alice.client.delete(f"/api/conversations/{conversation_id}")
    spent, tokens = budgets.spent(user_id=alice.user.pk, api_key_id=None, since=Spend.objects.get().created_at)
    assert (spent, tokens) == (Decimal("0.0015"), 15)  # 15 tokens at 100 a million


def test_an_answer_is_in_the_ledger_once_whoever_saves_it(alice, upstream):
    from conversations.spend.ledger import record

    conversation_id = alice.new_conversation()
    with stream(alice, conversation_id) as response:
        response.read()
    turn = Turn.objects.get(conversation_id=conversation_id, role="assistant")
    record(kind="answer", user_id=alice.user.pk, model="fake-model", tokens_in=1, tokens_out=1, turn_id=turn.pk)
    assert Spend.objects.filter(turn_id=turn.pk).count() == 1
