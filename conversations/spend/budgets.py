"""Spend and token budgets, per user and per API key, for a UTC day or month.

A user's budgets come from CHATSTREAM_DAILY_BUDGET / CHATSTREAM_MONTHLY_BUDGET
unless the admin gives them their own (a Budget row); an API key has budgets
only in the admin. What a budget has used is what the spend ledger holds
(ledger.py: every model call, answers, the router's classifier and memory
updates, kept when a conversation is deleted) and what the model calls still
streaming have reserved (reservations.py: the most each may cost), so every
process counts the same and answers streaming at once cannot together pass
a budget. A message is refused (429 `budget_exceeded`, nothing saved, no
model call) once a budget is used up, or when its call's reservation does
not fit (reservations.py).
"""

import calendar
import math
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from django.db.models import Q, Sum
from django.db.models.functions import Coalesce

from .. import state
from ..conf import conf
from ..exceptions import ApiError
from ..models import Budget, Reservation, Spend

# Whether any Budget row exists is read at most this often: with no budgets
# anywhere, a message costs no query here.
ROWS_CACHE_SECONDS = 30.0


@dataclass(frozen=True)
class Usage:
    """What a budget has used: spent (the ledger) and reserved (calls streaming)."""

    spend: Decimal
    tokens: int
    held_spend: Decimal
    held_tokens: int

    @property
    def total_spend(self) -> Decimal:
        return self.spend + self.held_spend

    @property
    def total_tokens(self) -> int:
        return self.tokens + self.held_tokens

    def described(self, limit: "Limit", *, tokens: bool) -> str:
        """What was used, as a refusal says it (`tokens`: of a token budget)."""
        if tokens:
            said, held = f"{self.tokens} of {limit.max_tokens} tokens used", f"{self.held_tokens} tokens"
        else:
            said, held = f"{self.spend:.4f} of {limit.max_spend:.4f} spent", f"{self.held_spend:.4f}"
        if not (self.held_tokens if tokens else self.held_spend):
            return said
        return f"{said}, {held} more reserved by answers being written"


@dataclass(frozen=True)
class Limit:
    owner: str  # "user" or "API key"
    period: str  # Budget.Period
    max_spend: Decimal | None
    max_tokens: int | None


_rows_exist = (False, -ROWS_CACHE_SECONDS)
_lock = threading.Lock()


def _any_rows() -> bool:
    global _rows_exist
    with _lock:
        exist, read_at = _rows_exist
        if time.monotonic() - read_at >= ROWS_CACHE_SECONDS:
            _rows_exist = exist, _ = Budget.objects.exists(), time.monotonic()
        return exist


def none_apply() -> bool:
    """Known, without a query, that no budget applies to anyone: none in the
    settings, and no Budget row when the rows were last looked at (under
    ROWS_CACHE_SECONDS ago). False means: check."""
    exist, read_at = _rows_exist
    fresh = time.monotonic() - read_at < ROWS_CACHE_SECONDS
    settings_empty = not (conf.CHATSTREAM_DAILY_BUDGET.strip() or conf.CHATSTREAM_MONTHLY_BUDGET.strip())
    return settings_empty and fresh and not exist


@state.forgotten_when()
def forget_rows() -> None:
    """Look for Budget rows afresh (an admin edit, a test)."""
    global _rows_exist
    _rows_exist = (False, -ROWS_CACHE_SECONDS)


def _setting(value: str) -> Decimal | None:
    return Decimal(value) if value.strip() else None


def limits_for(user_id: int, api_key_id: int | None) -> list[Limit]:
    defaults: dict[str, Decimal | None] = {
        Budget.Period.DAY: _setting(conf.CHATSTREAM_DAILY_BUDGET),
        Budget.Period.MONTH: _setting(conf.CHATSTREAM_MONTHLY_BUDGET),
    }
    user_limits = {
        period: Limit("user", period, spend, None) for period, spend in defaults.items() if spend is not None
    }
    key_limits = []
    if _any_rows():
        rows = Budget.objects.filter(
            Q(user_id=user_id) | Q(api_key_id=api_key_id) if api_key_id else Q(user_id=user_id)
        )
        for row in rows:
            limit = Limit("user" if row.user_id else "API key", row.period, row.max_spend, row.max_tokens)
            if row.user_id:
                user_limits[row.period] = limit  # the admin's, over the settings'
            else:
                key_limits.append(limit)
    return [*user_limits.values(), *key_limits]


def period_bounds(period: str, now: datetime) -> tuple[datetime, datetime]:
    """The UTC day or calendar month holding `now`: its start and its end."""
    day = now.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    if period == Budget.Period.DAY:
        return day, day + timedelta(days=1)
    start = day.replace(day=1)
    return start, start + timedelta(days=calendar.monthrange(start.year, start.month)[1])


def spent(*, user_id: int | None, api_key_id: int | None, since: datetime) -> tuple[Decimal, int]:
    """Spend and tokens of the model calls recorded since `since`."""
    calls = Spend.objects.filter(created_at__gte=since)
    if api_key_id:
        calls = calls.filter(api_key_id=api_key_id)
    else:
        assert user_id is not None, "a user's spend, or a key's"
        calls = calls.filter(user_id=user_id)
    totals = calls.aggregate(
        spend=Coalesce(Sum("cost"), Decimal(0)),
        tokens=Coalesce(Sum("tokens_in"), 0) + Coalesce(Sum("tokens_out"), 0),
    )
    return totals["spend"], totals["tokens"]


def reserved(
    *, user_id: int, api_key_id: int | None, now: datetime, excluding: uuid.UUID | None = None
) -> tuple[Decimal, int]:
    """Spend and tokens the model calls still streaming hold (their
    reservations not lapsed), but for the answer `excluding`'s own."""
    holds = Reservation.objects.filter(expires_at__gt=now)
    holds = holds.filter(api_key_id=api_key_id) if api_key_id else holds.filter(user_id=user_id)
    if excluding is not None:
        holds = holds.exclude(turn_id=excluding)
    totals = holds.aggregate(spend=Coalesce(Sum("cost"), Decimal(0)), tokens=Coalesce(Sum("tokens"), 0))
    return totals["spend"], totals["tokens"]


def used(
    limit: Limit, *, user_id: int, api_key_id: int | None, now: datetime, excluding: uuid.UUID | None = None
) -> Usage:
    """What `limit` has used in its period: the ledger's calls and the live reservations."""
    start, _ = period_bounds(limit.period, now)
    key = api_key_id if limit.owner == "API key" else None
    spend, tokens = spent(user_id=user_id, api_key_id=key, since=start)
    held_spend, held_tokens = reserved(user_id=user_id, api_key_id=key, now=now, excluding=excluding)
    return Usage(spend, tokens, held_spend, held_tokens)


def check(
    *,
    user_id: int,
    api_key_id: int | None,
    now: datetime | None = None,
    unrecorded: tuple[Decimal, int] = (Decimal(0), 0),
) -> None:
    """Raise 429 `budget_exceeded` if any of the user's or the key's budgets
    is used up, spent and reserved counted, and `unrecorded` spend and tokens
    beside them (a tool loop's steps before its answer is saved). Runs on a
    database thread."""
    limits = limits_for(user_id, api_key_id)
    if not limits:
        return
    now = now or datetime.now(UTC)
    for limit in limits:
        usage = used(limit, user_id=user_id, api_key_id=api_key_id, now=now)
        usage = Usage(usage.spend + unrecorded[0], usage.tokens + unrecorded[1], usage.held_spend, usage.held_tokens)
        if limit.max_spend is not None and usage.total_spend >= limit.max_spend:
            raise exceeded(limit, usage.described(limit, tokens=False), now)
        if limit.max_tokens is not None and usage.total_tokens >= limit.max_tokens:
            raise exceeded(limit, usage.described(limit, tokens=True), now)


def exceeded(limit: Limit, used: str, now: datetime) -> ApiError:
    _, resets_at = period_bounds(limit.period, now)
    period = "daily" if limit.period == Budget.Period.DAY else "monthly"
    reset = resets_at.isoformat().replace("+00:00", "Z")
    return ApiError(
        429,
        "budget_exceeded",
        f"The {period} budget of this {limit.owner} is reached ({used}); it resets at {reset}.",
        headers={"Retry-After": str(max(1, math.ceil((resets_at - now).total_seconds())))},
        details={"budget": {"owner": limit.owner, "period": limit.period, "resets_at": reset}},
    )
