"""When a failed model call is tried again (tenacity does the trying).

Only before the model's first token: after it, text has reached the client,
and a second call would send different text after it. Only for failures that
may pass (the server unreachable, overloaded or slow); a request the server
refuses (400, 401, 404) goes straight to the next fallback model.
"""

import random
from collections.abc import Callable

from tenacity import AsyncRetrying, RetryCallState, retry_if_exception, stop_after_attempt

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


def backoff(state: RetryCallState) -> float:
    """BACKOFF, 2x BACKOFF, 4x... seconds with full jitter, but never less
    than the server's Retry-After."""
    ceiling = conf.LLM_RETRY_BACKOFF_SECONDS * 2 ** (state.attempt_number - 1)
    exc = state.outcome.exception() if state.outcome else None
    retry_after = exc.retry_after if isinstance(exc, UpstreamRateLimited) else None
    return min(max(random.uniform(0, ceiling), retry_after or 0), conf.LLM_RETRY_MAX_WAIT_SECONDS)


def retrying(*, before_text: Callable[[], bool]) -> AsyncRetrying:
    """Tries of one model: again while `before_text()` (no token yet) and the
    failure is transient, LLM_RETRIES times at most."""
    return AsyncRetrying(
        stop=stop_after_attempt(1 + conf.LLM_RETRIES),
        wait=backoff,
        retry=retry_if_exception(lambda exc: isinstance(exc, UpstreamError) and before_text() and transient(exc)),
        reraise=True,
    )
