"""Failed logins and API keys, counted per account and per client address:
past CHATSTREAM_AUTH_FAILURES in AUTH_WINDOW_SECONDS, either one is refused
(429, Retry-After) until the window moves on, right or wrong, so passwords
and keys cannot be guessed at the speed of the server.

With REDIS_URL the counts live in Redis and hold across processes; otherwise
in this process's memory.
"""

import functools
import math
import time
from collections import defaultdict, deque

from asgiref.sync import async_to_sync
from redis.exceptions import RedisError

from .conf import conf
from .exceptions import ApiError
from .live.client import redis_client, redis_trouble

AUTH_WINDOW_SECONDS = 900.0


def too_many_failures(retry_after: float) -> ApiError:
    return ApiError(
        429,
        "too_many_failures",
        "Too many failed attempts to log in or use a key from here or for this account; try again later.",
        headers={"Retry-After": str(max(1, math.ceil(retry_after)))},
    )


def client_address(request) -> str:
    """The address the request came from, as the server saw it (uvicorn's
    --proxy-headers puts the client's there when it sits behind a proxy)."""
    return request.META.get("REMOTE_ADDR") or "unknown"


class LocalThrottle:
    def __init__(self) -> None:
        self._failures: defaultdict[str, deque[float]] = defaultdict(deque)

    async def refuse_if_blocked(self, *names: str) -> None:
        now = time.monotonic()
        for name in names:
            failures = self._recent(name, now)
            if len(failures) >= conf.CHATSTREAM_AUTH_FAILURES:
                raise too_many_failures(failures[0] + AUTH_WINDOW_SECONDS - now)

    async def failed(self, *names: str) -> None:
        now = time.monotonic()
        for name in names:
            self._recent(name, now).append(now)

    def _recent(self, name: str, now: float) -> deque[float]:
        failures = self._failures[name]
        while failures and failures[0] <= now - AUTH_WINDOW_SECONDS:
            failures.popleft()
        return failures


class RedisThrottle:
    """A count per name and window: one INCR per failure, one MGET per check;
    in this process while Redis cannot be reached."""

    def __init__(self) -> None:
        self._here = LocalThrottle()

    async def refuse_if_blocked(self, *names: str) -> None:
        window = self._window()
        try:
            counts = await redis_client().mget([self._key(name, window) for name in names])
        except (RedisError, OSError) as exc:
            redis_trouble("checking failed logins", exc)
            return await self._here.refuse_if_blocked(*names)
        if any(int(count or 0) >= conf.CHATSTREAM_AUTH_FAILURES for count in counts):
            raise too_many_failures((window + 1) * AUTH_WINDOW_SECONDS - time.time())

    async def failed(self, *names: str) -> None:
        window = self._window()
        try:
            async with redis_client().pipeline(transaction=False) as pipe:
                for name in names:
                    pipe.incr(self._key(name, window))
                    pipe.expire(self._key(name, window), int(AUTH_WINDOW_SECONDS))
                await pipe.execute()
        except (RedisError, OSError) as exc:
            redis_trouble("counting a failed login", exc)
            await self._here.failed(*names)

    @staticmethod
    def _window() -> int:
        return int(time.time() // AUTH_WINDOW_SECONDS)

    @staticmethod
    def _key(name: str, window: int) -> str:
        return f"chatstream:auth-failures:{name}:{window}"


@functools.cache
def throttle() -> LocalThrottle | RedisThrottle:
    return RedisThrottle() if conf.REDIS_URL else LocalThrottle()


def names_for(request, account: str) -> tuple[str, ...]:
    """What a failure counts against: the client's address and the account."""
    return (f"address:{client_address(request)}", f"account:{account}")


async def refuse_if_blocked(request, account: str) -> None:
    if conf.CHATSTREAM_AUTH_FAILURES:
        await throttle().refuse_if_blocked(*names_for(request, account))


async def failed(request, account: str) -> None:
    if conf.CHATSTREAM_AUTH_FAILURES:
        await throttle().failed(*names_for(request, account))


# For sync views (a project's login form).
refuse_if_blocked_sync = async_to_sync(refuse_if_blocked)
failed_sync = async_to_sync(failed)
