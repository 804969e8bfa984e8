"""When a failed model call is tried again.

Only before the model's first token: after it, text has reached the client,
and a second call would send different text after it. Only for failures that
may pass (the server unreachable, overloaded or slow); a request the server
refuses (400, 401, 404) goes straight to the next fallback model.

A plain loop rather than tenacity, which this used to be: its retrying
object lived as long as the answer, about 3 KB of every open stream, and set
up cost 1.8 % of the relay's CPU at 200-token answers (docs/benchmarks.md).
"""

import asyncio
import random
from collections.abc import Awaitable, Callable

from ..conf import conf
from ..exceptions import (
    UpstreamError,
    UpstreamIncomplete,
    UpstreamRateLimited,
    UpstreamStatusError,
    UpstreamTimeout,
    UpstreamUnavailable,
)

TRANSIENT_STATUSES = frozenset({408, 409, 429, 500, 502, 503, 504})


def transient(exc: BaseException) -> bool:
    """A failure that the same call may not meet again, and whose wait (a
    429's Retry-After) is not longer than we are willing to wait."""
    if isinstance(exc, UpstreamRateLimited) and (exc.retry_after or 0) > conf.LLM_RETRY_MAX_WAIT_SECONDS:
        return False
    if isinstance(exc, UpstreamStatusError):
        return exc.status in TRANSIENT_STATUSES
    return isinstance(exc, UpstreamUnavailable | UpstreamTimeout | UpstreamIncomplete)


def backoff(attempt: int, exc: UpstreamError) -> float:
    """BACKOFF, 2x BACKOFF, 4x... seconds with full jitter after the
    `attempt`th failure, but never less than the server's Retry-After."""
    ceiling = conf.LLM_RETRY_BACKOFF_SECONDS * 2 ** (attempt - 1)
    retry_after = exc.retry_after if isinstance(exc, UpstreamRateLimited) else None
    return min(max(random.uniform(0, ceiling), retry_after or 0), conf.LLM_RETRY_MAX_WAIT_SECONDS)


async def with_retries(call: Callable[[], Awaitable[None]], *, before_text: Callable[[], bool]) -> None:
    """`call()`, and again while `before_text()` (no token yet) and the
    failure is transient, LLM_RETRIES times at most; the last failure is raised."""
    attempt = 1
    while True:
        try:
            return await call()
        except UpstreamError as exc:
            if attempt > conf.LLM_RETRIES or not before_text() or not transient(exc):
                raise
            await asyncio.sleep(backoff(attempt, exc))
            attempt += 1
