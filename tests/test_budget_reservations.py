"""Budgets that hold: each model call reserves the most it may cost before
it is made (conversations/spend/reservations.py), so answers streaming at
once, and the calls of a tool loop, never spend past a budget; an answer
that reaches the cap while streaming is cut; a reservation is settled to
the call's real cost, and a dead process's lapses."""

import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from django.db import connection
from django.db.models import Sum

from conversations.exceptions import ApiError
from conversations.models import Reservation, Spend, Turn
from conversations.spend import reservations
from conversations.spend.reservations import Holder
from conversations.tools import tool
from harness.fake_upstream import Behaviour

from .helpers import read_until_deltas, redis_url, send, sse_events, stream, wait_for, wait_for_answer

PRICES = {"fake-model": {"input": "1000", "output": "1000"}}  # 0.001 a token, in or out
MESSAGES_AT_ONCE = 20

pytestmark = pytest.mark.usefixtures("fresh_prices")


@tool
def clock() -> str:
    """What time it is (a tool for the tool loop)."""
    return "noon"


@pytest.fixture
def priced(upstream, settings):
    settings.LLM_PRICES = PRICES
    settings.CHATSTREAM_MAX_CONCURRENT_STREAMS = 0  # the budget alone holds the user back
    settings.CHATSTREAM_MESSAGES_PER_MINUTE = 0
    settings.CHATSTREAM_RESERVE_TOKENS = 20
    yield upstream
    upstream.tool_loop = False


def spent() -> Decimal:
    return Spend.objects.aggregate(total=Sum("cost"))["total"] or Decimal(0)


def cost_of_one_answer(alice) -> Decimal:
    """What one answer costs here, measured, then forgotten (no budget yet)."""
    assert send(alice, alice.new_conversation(), "Hello").status_code == 200
    cost = spent()
    Spend.objects.all().delete()
    return cost


def send_at_once(alice, count: int) -> list[int]:
    conversations = [alice.new_conversation() for _ in range(count)]
    start = threading.Barrier(count)

    def one(conversation_id: str) -> int:
        start.wait()
        response = send(alice, conversation_id, "Hello")
        if response.status_code != 200:
            assert response.json()["error"]["code"] == "budget_exceeded"
        return response.status_code

    with ThreadPoolExecutor(count) as pool:
        return list(pool.map(one, conversations))


def wait_until_all_saved() -> None:
    wait_for(lambda: not Reservation.objects.exists(), 10, "every answer saved, its reservation settled")


@pytest.mark.parametrize("tool_loop", [False, True], ids=["answers", "tool-loops"])
def test_messages_sent_at_once_never_spend_past_the_budget(alice, priced, settings, tool_loop):
    if tool_loop:  # each answer: a call of the tool, then one with its result
        settings.CHATSTREAM_TOOLS = [f"{__name__}.clock"]
        priced.tool_loop = True
    priced.behaviour = Behaviour(tokens=10, pace=0.02)
    budget = 3 * cost_of_one_answer(alice)
    if tool_loop:
        assert Turn.objects.filter(role="assistant").get().tool_calls  # two model calls an answer
    settings.CHATSTREAM_DAILY_BUDGET = str(budget)
    statuses = send_at_once(alice, MESSAGES_AT_ONCE)
    wait_until_all_saved()
    assert 200 in statuses and 429 in statuses
    assert 0 < spent() <= budget, f"{spent()} spent of {budget}"


def test_an_answer_that_reaches_the_cap_while_streaming_is_cut(alice, priced, settings):
    settings.CHATSTREAM_DAILY_BUDGET = "0.1"  # 100 tokens: the prompt, 20 reserved, then more as it streams
    # Paced as a model writes: cut, its stream is closed before the server
    # has sent (and reported) the rest. All sent at once, the server would bill it all.
    priced.behaviour = Behaviour(tokens=400, pace=0.002)
    conversation_id = alice.new_conversation()
    with stream(alice, conversation_id, "Write at length") as response:
        events = list(sse_events(response))
    assert events[-1]["data"]["finish_reason"] == "budget_exceeded"
    turn = wait_for_answer(conversation_id)
    assert turn.finish_reason == "budget_exceeded" and 20 < len(turn.content.split()) < 100
    assert turn.content == "".join(event["data"]["text"] for event in events if event["event"] == "delta")
    assert 0 < spent() <= Decimal("0.1")
    wait_until_all_saved()


def test_a_reservation_is_settled_to_the_real_cost(alice, priced, settings):
    settings.CHATSTREAM_DAILY_BUDGET = "1"
    priced.behaviour = Behaviour(tokens=8, pace=0.05)
    conversation_id = alice.new_conversation()
    with stream(alice, conversation_id) as response:
        events = sse_events(response)  # held: the client stays
        read_until_deltas(events, 1)
        held = Reservation.objects.get()  # held while it streams: the prompt and 20 tokens out
        answer_id = Turn.objects.get(conversation_id=conversation_id, role="user").reply_id
        assert held.turn_id == answer_id and held.expires_at > datetime.now(UTC)
        assert list(events)[-1]["data"]["finish_reason"] == "stop"
    turn = wait_for_answer(conversation_id)
    assert held.tokens == turn.prompt_tokens + 20 and held.cost == Decimal("0.001") * held.tokens
    wait_until_all_saved()  # released: the ledger's row counts what the call cost
    assert Spend.objects.get().cost == turn.cost and 0 < turn.cost < held.cost


@pytest.mark.parametrize("with_redis", [False, True], ids=["database", "redis"])
def test_a_dead_processs_reservation_lapses_and_frees_the_budget(alice, priced, settings, with_redis, request):
    if with_redis:
        request.getfixturevalue("redis_ready")
        settings.REDIS_URL = redis_url()
    settings.CHATSTREAM_ANSWER_LEASE_SECONDS = 0.2  # a reservation lapses 0.6 s after it was last renewed
    settings.CHATSTREAM_DAILY_BUDGET = "0.1"
    # What a process that died mid-answer leaves: a reservation nobody renews.
    dead = Holder(uuid.uuid4(), alice.user.pk, None)
    assert reservations.reserve(dead, cost=Decimal("0.09"), tokens=90)
    conversation_id = alice.new_conversation()
    refused = send(alice, conversation_id, "Now?")
    assert refused.status_code == 429 and "reserved by answers being written" in refused.json()["error"]["message"]
    wait_for(lambda: send(alice, conversation_id, "Now?").status_code == 200, 5, "the reservation lapsed")
    assert Reservation.objects.filter(turn_id=dead.turn_id).count() == 0  # forgotten when the next was made
    wait_until_all_saved()


def test_a_live_answers_reservation_is_renewed_past_its_lapse(alice, priced, settings):
    settings.CHATSTREAM_ANSWER_LEASE_SECONDS = 0.1  # lapses 0.3 s after its last renewal
    settings.CHATSTREAM_DAILY_BUDGET = "1"
    priced.behaviour = Behaviour(tokens=30, pace=0.03)  # streams for about 0.9 s
    conversation_id = alice.new_conversation()
    with stream(alice, conversation_id) as response:
        events = sse_events(response)
        read_until_deltas(events, 1)
        first = Reservation.objects.get().expires_at
        wait_for(lambda: Reservation.objects.get().expires_at > first, 2, "a renewal")
        assert list(events)[-1]["data"]["finish_reason"] == "stop"
    wait_until_all_saved()


@pytest.mark.django_db(transaction=True)
def test_two_reserving_the_last_of_a_budget_cannot_both_succeed(django_user_model, settings):
    settings.CHATSTREAM_DAILY_BUDGET = "0.3"  # room for three reservations of 0.1
    user = django_user_model.objects.create(username="racer")
    start = threading.Barrier(10)

    def reserve() -> bool:
        start.wait()
        try:
            return reservations.reserve(Holder(uuid.uuid4(), user.pk, None), cost=Decimal("0.1"), tokens=1)
        except ApiError:
            return False
        finally:
            connection.close()

    with ThreadPoolExecutor(10) as pool:
        made = list(pool.map(lambda _: reserve(), range(10)))
    assert made.count(True) == 3 and Reservation.objects.aggregate(total=Sum("cost"))["total"] == Decimal("0.3")
