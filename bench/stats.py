"""Small statistics helpers: percentiles without numpy."""

from collections.abc import Sequence


def percentile(values: Sequence[float], q: float) -> float | None:
    """The q-th percentile (0-100), interpolating between the nearest ranks."""
    if not values:
        return None
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def summary(values: Sequence[float]) -> dict:
    """n, p50, p99 and max of a sample (None for an empty one)."""
    return {
        "n": len(values),
        "p50": percentile(values, 50),
        "p99": percentile(values, 99),
        "max": max(values) if values else None,
    }


def per_thousand(amount: float, count: int) -> float | None:
    return amount / count * 1000 if count else None


def largest(levels: list[dict], key: str) -> int | None:
    """The largest level that passed `key`, every smaller level run having passed too."""
    best = None
    for level in sorted(levels, key=lambda lv: lv["streams"]):
        if not level[key]:
            break
        best = level["streams"]
    return best
