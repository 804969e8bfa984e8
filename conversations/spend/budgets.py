"""Spend and token budgets, per user and per API key, for a UTC day or month.

A user's budgets come from CHATSTREAM_DAILY_BUDGET / CHATSTREAM_MONTHLY_BUDGET
unless the admin gives them their own (a Budget row); an API key has budgets
only in the admin. A message is refused (429 `budget_exceeded`, nothing saved,
no model call) once what was spent in the period reaches a budget. What was
spent is read from the spend ledger (ledger.py: every model call, answers,
the router's classifier and memory updates, kept when a conversation is
deleted), so every process counts the same; an answer still streaming
counts once it is saved (the user's stream limit bounds how far that can
overshoot).
"""

import calendar
import math
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from django.db.models import Q, Sum
from django.db.models.functions import Coalesce

from .. import state
from ..conf import conf
from ..exceptions import ApiError
from ..models import Budget, Spend

# Whether any Budget row exists is read at most this often: with no budgets
# anywhere, a message costs no query here.
ROWS_CACHE_SECONDS = 30.0


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


def check(
    *,
    user_id: int,
    api_key_id: int | None,
    now: datetime | None = None,
    unrecorded: tuple[Decimal, int] = (Decimal(0), 0),
) -> None:
    """Raise 429 `budget_exceeded` if any of the user's or the key's budgets
    is spent, counting `unrecorded` spend and tokens beside the ledger's (a
    tool loop's steps before its answer is saved). Runs on a database thread."""
    limits = limits_for(user_id, api_key_id)
    if not limits:
        return
    now = now or datetime.now(UTC)
    for limit in limits:
        start, end = period_bounds(limit.period, now)
        key = api_key_id if limit.owner == "API key" else None
        spend, tokens = spent(user_id=user_id, api_key_id=key, since=start)
        spend, tokens = spend + unrecorded[0], tokens + unrecorded[1]
        if limit.max_spend is not None and spend >= limit.max_spend:
            raise _exceeded(limit, f"{spend:.4f} of {limit.max_spend:.4f} spent", end, now)
        if limit.max_tokens is not None and tokens >= limit.max_tokens:
            raise _exceeded(limit, f"{tokens} of {limit.max_tokens} tokens used", end, now)


def _exceeded(limit: Limit, used: str, resets_at: datetime, now: datetime) -> ApiError:
    period = "daily" if limit.period == Budget.Period.DAY else "monthly"
    reset = resets_at.isoformat().replace("+00:00", "Z")
    return ApiError(
        429,
        "budget_exceeded",
        f"The {period} budget of this {limit.owner} is reached ({used}); it resets at {reset}.",
        headers={"Retry-After": str(max(1, math.ceil((resets_at - now).total_seconds())))},
        details={"budget": {"owner": limit.owner, "period": limit.period, "resets_at": reset}},
    )
