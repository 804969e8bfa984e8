"""What a turn costs: its token counts times its model's prices.

Prices are per million tokens, from LLM_PRICES and the model catalogue's
entries (LLM_MODELS), overridden by the admin's model prices (ModelPrice rows). The rows are read at most every
PRICES_CACHE_SECONDS per process, on a database thread, so pricing adds no
query to most saves; an edit in the admin applies within that time.
"""

import threading
import time
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

from .. import state
from ..catalogue import catalogue
from ..conf import conf
from ..models import ModelPrice

PRICES_CACHE_SECONDS = 30.0
MILLION = Decimal(1_000_000)
COST_PLACES = Decimal("0.0000000001")


@dataclass(frozen=True)
class Price:
    input: Decimal
    cached_input: Decimal
    output: Decimal


_cache: dict[str, Price] = {}
_read_at = -PRICES_CACHE_SECONDS
_lock = threading.Lock()


def _decimal(value: object) -> Decimal:
    try:
        return Decimal(str(value))
    except InvalidOperation:
        raise ValueError(f"{value!r} is not a price") from None


def _price(where: str, entry: object) -> Price:
    if not isinstance(entry, dict) or "input" not in entry or "output" not in entry:
        raise ValueError(f'{where} needs "input" and "output" (per million tokens)')
    given = _decimal(entry["input"])
    cached = _decimal(entry["cached_input"]) if entry.get("cached_input") is not None else given
    return Price(given, cached, _decimal(entry["output"]))


def settings_prices() -> dict[str, Price]:
    """LLM_PRICES, then the model catalogue's own prices over them, by
    upstream model id (ValueError names a bad entry)."""
    prices = {model: _price(f"LLM_PRICES[{model!r}]", entry) for model, entry in conf.LLM_PRICES.items()}
    for entry in catalogue().values():
        if entry.prices is not None:
            prices[entry.model] = _price(f"LLM_MODELS[{entry.name!r}].prices", entry.prices)
    return prices


def prices() -> dict[str, Price]:
    """Every model's price: the settings', then the admin's over them."""
    global _read_at
    with _lock:
        if time.monotonic() - _read_at >= PRICES_CACHE_SECONDS:
            table = settings_prices()
            for row in ModelPrice.objects.all():
                cached = row.cached_input if row.cached_input is not None else row.input
                table[row.model] = Price(row.input, cached, row.output)
            _cache.clear()
            _cache.update(table)
            _read_at = time.monotonic()
        return dict(_cache)


@state.forgotten_when("LLM_PRICES", "LLM_MODELS", "LLM_MODEL")
def forget_prices() -> None:
    """Read the prices afresh at the next save (an admin edit, a test)."""
    global _read_at
    _read_at = -PRICES_CACHE_SECONDS


def cost(model: str, *, tokens_in: int | None, tokens_cached: int | None, tokens_out: int | None) -> Decimal | None:
    """None when the model has no price. Cached prompt tokens are part of
    `tokens_in` (as OpenAI, vLLM and DeepSeek count them); reasoning tokens
    are part of `tokens_out`."""
    price = prices().get(model)
    if price is None:
        return None
    cached = min(tokens_cached or 0, tokens_in or 0)
    total = (
        ((tokens_in or 0) - cached) * price.input + cached * price.cached_input + (tokens_out or 0) * price.output
    ) / MILLION
    return total.quantize(COST_PLACES)
