"""What each turn costs, where its counts came from, and the budgets that
refuse a message once they are spent."""

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from conversations.access import api_keys
from conversations.models import Budget, ModelPrice, Spend, Turn
from conversations.spend import budgets
from harness.fake_upstream import Behaviour

from .helpers import post_and_read, read_until_deltas, saved_answer, send, sse_events, stream, wait_for_answer

USAGE = {
    "prompt_tokens": 2000,
    "completion_tokens": 500,
    "total_tokens": 2500,
    "prompt_tokens_details": {"cached_tokens": 1500},
    "completion_tokens_details": {"reasoning_tokens": 400},
}
PRICES = {"fake-model": {"input": "2.50", "cached_input": "1.25", "output": "10"}}
# 500 uncached x 2.50 + 1500 cached x 1.25 + 500 out x 10, per million
COST = Decimal("0.008125")


pytestmark = pytest.mark.usefixtures("fresh_prices")


@pytest.fixture
def priced(upstream, settings):
    settings.LLM_PRICES = PRICES
    upstream.behaviour = Behaviour(tokens=5, usage=USAGE)
    return upstream


def test_a_turn_is_priced_from_its_reported_usage(alice, priced):
    conversation_id, events, _ = post_and_read(alice)
    turn = saved_answer(conversation_id)
    assert (turn.tokens_in, turn.tokens_cached, turn.tokens_out, turn.tokens_reasoning) == (2000, 1500, 500, 400)
    assert turn.usage_source == "reported" and not turn.tokens_estimated
    assert turn.cost == COST and events[-1]["data"]["cost"] == str(turn.cost)
    assert Decimal(alice.client.get(f"/api/conversations/{conversation_id}").json()["turns"][1]["cost"]) == COST
    assert turn.api_key_id is not None  # spend per key


def test_the_admin_price_overrides_the_settings(alice, priced):
    ModelPrice.objects.create(model="fake-model", input=Decimal(1), output=Decimal(2))  # no cached price: input's
    conversation_id, _, _ = post_and_read(alice)
    assert saved_answer(conversation_id).cost == Decimal("0.003")  # 2000 x 1 + 500 x 2


def test_a_model_without_a_price_costs_nothing_known(alice, upstream):
    conversation_id, events, _ = post_and_read(alice)
    assert saved_answer(conversation_id).cost is None and events[-1]["data"]["cost"] is None


def test_a_stream_ended_before_its_usage_is_estimated_and_still_priced(alice, priced):
    priced.behaviour = Behaviour(tokens=400, pace=0.005, usage=USAGE)
    conversation_id = alice.new_conversation()
    with stream(alice, conversation_id) as response:
        read_until_deltas(sse_events(response), 2)  # the client leaves mid-answer
    turn = wait_for_answer(conversation_id)
    assert turn.finish_reason == "client_disconnected"
    assert turn.usage_source == "estimated" and turn.tokens_estimated and turn.cost is not None


def test_a_model_that_was_never_reached_has_no_usage(alice, upstream, settings):
    settings.LLM_RETRIES = 0
    upstream.behaviour = Behaviour(status=400)
    conversation_id, _, _ = post_and_read(alice)
    turn = saved_answer(conversation_id)
    assert (turn.usage_source, turn.tokens_in, turn.tokens_out) == ("none", None, None)


def send_one(api_user) -> tuple[str, int]:
    """A message in a new conversation: the conversation, and the status."""
    conversation_id = api_user.new_conversation()
    return conversation_id, send(api_user, conversation_id, "Hi").status_code


def test_a_spent_daily_budget_refuses_the_next_message_until_the_day_is_over(alice, priced, settings):
    settings.CHATSTREAM_DAILY_BUDGET = "0.008"
    settings.CHATSTREAM_RESERVE_TOKENS = 100  # the call's reservation fits (about 0.001)
    # 0.008125 spent: over the budget now (the server reported more than the prompt the reservation counted)
    assert send_one(alice)[1] == 200
    calls, turns = len(priced.calls), Turn.objects.count()
    conversation_id = alice.new_conversation()
    refused = alice.client.post(f"/api/conversations/{conversation_id}/messages", json={"content": "More"})
    error = refused.json()["error"]
    assert refused.status_code == 429 and error["code"] == "budget_exceeded"
    tomorrow = (datetime.now(UTC) + timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
    assert error["budget"] == {"owner": "user", "period": "day", "resets_at": tomorrow.isoformat()[:19] + "Z"}
    assert "0.0081 of 0.0080" in error["message"]
    assert 0 < int(refused.headers["Retry-After"]) <= 86400
    assert len(priced.calls) == calls and Turn.objects.count() == turns  # nothing saved, nothing sent
    # The day ends: yesterday's spend no longer counts.
    Spend.objects.update(created_at=datetime.now(UTC) - timedelta(days=1))
    assert send_one(alice)[1] == 200


def test_the_admin_gives_a_user_a_budget_of_their_own(alice, bob, priced, settings):
    settings.CHATSTREAM_MONTHLY_BUDGET = "0.001"
    settings.CHATSTREAM_RESERVE_TOKENS = 50  # 0.0005 reserved for a call
    Budget.objects.create(user=alice.user, period=Budget.Period.MONTH, max_spend=Decimal(1))
    assert [send_one(alice)[1], send_one(alice)[1]] == [200, 200]
    assert [send_one(bob)[1], send_one(bob)[1]] == [200, 429]


def test_an_api_key_has_a_token_budget_apart_from_its_user(alice, priced, live, settings):
    settings.CHATSTREAM_RESERVE_TOKENS = 100
    key = api_keys.key_id_of(api_keys.user_for_key(alice.key))
    Budget.objects.create(api_key_id=key, period=Budget.Period.DAY, max_tokens=2500)
    assert [send_one(alice)[1], send_one(alice)[1]] == [200, 429]
    _, other_key = api_keys.create_api_key(user=alice.user)
    alice.client.headers["Authorization"] = f"Bearer {other_key}"
    assert send_one(alice)[1] == 200  # the user's other key is not held back


def test_a_month_runs_from_its_first_day_to_the_next_month():
    start, end = budgets.period_bounds("month", datetime(2024, 2, 29, 13, 5, tzinfo=UTC))
    assert (start, end) == (datetime(2024, 2, 1, tzinfo=UTC), datetime(2024, 3, 1, tzinfo=UTC))
    start, end = budgets.period_bounds("day", datetime(2026, 12, 31, 23, 59, tzinfo=UTC))
    assert (start, end) == (datetime(2026, 12, 31, tzinfo=UTC), datetime(2027, 1, 1, tzinfo=UTC))
