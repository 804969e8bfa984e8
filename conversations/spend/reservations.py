"""Reservations: the most a model call may cost, held against every budget
that applies before the call is made, so answers streaming at once, or the
calls of one tool loop, cannot together pass a budget (budgets.py counts the
ledger and these rows).

    start_turn ── reserve: the prompt at the input price + max_tokens (or
                  CHATSTREAM_RESERVE_TOKENS) at the output price; refused: 429
    streaming ─── output nears what is reserved ─▶ extend by as much as the
                  budgets leave, or the answer is cut (`budget_exceeded`)
    tool loop ─── next call ─▶ resize: the steps' real cost + that call's most
    answer saved ─ its ledger row written and its reservation deleted in one
                  transaction (services.record_answer): settled to the real cost

Check and write are one transaction under a lock on the user's row (SELECT
… FOR UPDATE on PostgreSQL; SQLite's transactions here are IMMEDIATE, one
writer at a time), so two processes reserving the last of a budget cannot
both succeed. They live in the database even with REDIS_URL: what a budget
has used is the ledger's rows and these, and only a database transaction
reads both as one (a settled call's row and its reservation change
together, so none is counted twice or missed). A row lapses at `expires_at`
unless the process streaming its answer renews it (holds.py), so a crashed
process holds no budget for more than LAPSE_LEASES answer leases.

A model without a price reserves no spend: what it costs is not known, so
spend budgets cannot hold it back; token budgets still do.
"""

import math
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from django.contrib.auth import get_user_model
from django.db import transaction

from ..conf import conf
from ..exceptions import ApiError
from ..models import Reservation
from . import budgets, pricing

# A reservation outlives its last renewal by this many answer leases
# (CHATSTREAM_ANSWER_LEASE_SECONDS), as a stream slot does (limits.py).
LAPSE_LEASES = 3


@dataclass(frozen=True)
class Rates:
    """Per token, the dearest of the models the call may use (the model and its fallbacks)."""

    input: Decimal
    output: Decimal

    def cost(self, *, tokens_in: int, tokens_out: int) -> Decimal:
        return (tokens_in * self.input + tokens_out * self.output).quantize(pricing.COST_PLACES)


def rates_for(models: list[str]) -> Rates | None:
    """None when none of `models` has a price: its cost is not known."""
    table = pricing.prices()
    known = [table[model] for model in models if model in table]
    if not known:
        return None
    return Rates(
        max(price.input for price in known) / pricing.MILLION, max(price.output for price in known) / pricing.MILLION
    )


def lapse_at(now: datetime) -> datetime:
    return now + timedelta(seconds=LAPSE_LEASES * conf.CHATSTREAM_ANSWER_LEASE_SECONDS)


@dataclass(frozen=True)
class Holder:
    """Whose budgets a reservation counts against, and which answer holds it."""

    turn_id: uuid.UUID
    user_id: int
    api_key_id: int | None


def _locked(holder: Holder) -> list[budgets.Limit]:
    """The holder's budgets, with the user's row locked until the
    transaction ends: reservations of one user are made one at a time."""
    limits = budgets.limits_for(holder.user_id, holder.api_key_id)
    if limits:
        get_user_model().objects.select_for_update().filter(pk=holder.user_id).values_list("pk").first()
    return limits


def _room(limit: budgets.Limit, holder: Holder, now: datetime) -> tuple[Decimal | None, int | None]:
    """What `limit` has left once every other reservation and the ledger are
    counted (None: that kind is not budgeted)."""
    usage = budgets.used(limit, user_id=holder.user_id, api_key_id=holder.api_key_id, now=now, excluding=holder.turn_id)
    spend = None if limit.max_spend is None else limit.max_spend - usage.total_spend
    tokens = None if limit.max_tokens is None else limit.max_tokens - usage.total_tokens
    return spend, tokens


def _write(holder: Holder, cost: Decimal, tokens: int, now: datetime) -> None:
    Reservation.objects.update_or_create(
        turn_id=holder.turn_id,
        defaults={
            "user_id": holder.user_id,
            "api_key_id": holder.api_key_id,
            "cost": cost,
            "tokens": tokens,
            "expires_at": lapse_at(now),
        },
    )


@transaction.atomic
def reserve(holder: Holder, *, cost: Decimal, tokens: int) -> bool:
    """Hold `cost` and `tokens` for the holder's answer (replacing what it
    held), or raise 429 `budget_exceeded` if a budget has not that much
    left. False: no budget applies, nothing is held."""
    limits = _locked(holder)
    if not limits:
        return False
    now = datetime.now(UTC)
    forget_lapsed(now, user_id=holder.user_id)
    for limit in limits:
        spend, left = _room(limit, holder, now)
        if spend is not None and cost > spend or left is not None and tokens > left:
            usage = budgets.used(limit, user_id=holder.user_id, api_key_id=holder.api_key_id, now=now)
            raise budgets.exceeded(limit, _refusal(usage, limit, cost, tokens, by_tokens=spend is None), now)
    _write(holder, cost, tokens, now)
    return True


def _refusal(usage: budgets.Usage, limit: budgets.Limit, cost: Decimal, tokens: int, *, by_tokens: bool) -> str:
    need = f"{tokens} tokens" if by_tokens else f"{cost:.4f}"
    return f"{usage.described(limit, tokens=by_tokens)}; the next model call may need up to {need}"


def resize(holder: Holder, *, cost: Decimal, tokens: int) -> bool:
    """`reserve`, saying False where it would refuse (a tool loop's next call)."""
    try:
        reserve(holder, cost=cost, tokens=tokens)
    except ApiError:
        return False
    return True


@transaction.atomic
def extend(holder: Holder, *, tokens_out: int, rates: Rates | None) -> int:
    """Add up to `tokens_out` output tokens to the holder's reservation, as
    many as every budget has room for: how many were added (0: none left)."""
    limits = _locked(holder)
    if not limits:
        return tokens_out
    now = datetime.now(UTC)
    row = Reservation.objects.filter(turn_id=holder.turn_id).first()
    if row is None:  # no budget applied when it started, or it lapsed: held afresh
        row = Reservation(turn_id=holder.turn_id, user_id=holder.user_id, api_key_id=holder.api_key_id)
    granted = tokens_out
    for limit in limits:
        spend, left = _room(limit, holder, now)
        if spend is not None and rates is not None and rates.output > 0:
            granted = min(granted, math.floor((spend - row.cost) / rates.output))
        if left is not None:
            granted = min(granted, left - row.tokens)
    if granted <= 0:
        return 0
    added = rates.cost(tokens_in=0, tokens_out=granted) if rates is not None else Decimal(0)
    _write(holder, row.cost + added, row.tokens + granted, now)
    return granted


def renew(turn_ids: list[uuid.UUID]) -> int:
    """Push back the lapse of these answers' reservations (their process is alive)."""
    return Reservation.objects.filter(turn_id__in=turn_ids).update(expires_at=lapse_at(datetime.now(UTC)))


def settle(turn_id: uuid.UUID | str) -> None:
    """The answer's ledger row is being written (same transaction): its reservation goes."""
    Reservation.objects.filter(turn_id=turn_id).delete()


def forget_lapsed(now: datetime, *, user_id: int) -> None:
    """Delete the user's reservations that lapsed (their process stopped
    renewing them): they count for nothing already; this keeps the table small."""
    Reservation.objects.filter(user_id=user_id, expires_at__lte=now).delete()
