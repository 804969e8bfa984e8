"""Per-user limits on sending messages: answers streaming at once
(CHATSTREAM_MAX_CONCURRENT_STREAMS) and messages in any 60 seconds
(CHATSTREAM_MESSAGES_PER_MINUTE); 0 turns a limit off. A request over a
limit gets 429 with Retry-After and the JSON error, before anything is saved.

A user's API keys and browser session share one budget. With REDIS_URL set
the counts live in Redis, so they hold across processes; otherwise in this
process's memory.
"""

import asyncio
import math
import time
import uuid
from collections import defaultdict, deque
from collections.abc import Callable

from .. import state
from ..conf import conf
from ..exceptions import ApiError
from ..live.client import redis_client, redis_errors, redis_trouble
from ..stream import background

WINDOW_SECONDS = 60.0
# How soon to try again when all of a user's streams are busy: answers take
# seconds, and a client told "now" would only be refused again.
BUSY_RETRY_AFTER_SECONDS = 2
# A stream's slot in Redis is a lease: the process holding it renews it once
# per answer lease while the answer lives, so one that died without giving it
# back frees it within three (a crash used to lock its users out for an hour).
SLOT_LEASES = 3


def slot_lease_seconds() -> int:
    return math.ceil(SLOT_LEASES * conf.CHATSTREAM_ANSWER_LEASE_SECONDS)


def too_many_messages(retry_after: float) -> ApiError:
    limit = conf.CHATSTREAM_MESSAGES_PER_MINUTE
    return ApiError(
        429,
        "too_many_messages",
        f"You have sent {limit} messages in the last minute, the most allowed; try again in a moment.",
        headers={"Retry-After": str(max(1, math.ceil(retry_after)))},
    )


def too_many_streams() -> ApiError:
    limit = conf.CHATSTREAM_MAX_CONCURRENT_STREAMS
    return ApiError(
        429,
        "too_many_streams",
        f"You already have {limit} answers being written, the most allowed at once; wait for one to end.",
        headers={"Retry-After": str(BUSY_RETRY_AFTER_SECONDS)},
    )


class LocalLimits:
    def __init__(self) -> None:
        self._sent: defaultdict[int, deque[float]] = defaultdict(deque)
        self._streams: defaultdict[int, set[uuid.UUID]] = defaultdict(set)

    async def count_message(self, user_id: int) -> None:
        """Count one message, or raise 429 if the last minute holds the most."""
        limit = conf.CHATSTREAM_MESSAGES_PER_MINUTE
        if not limit:
            return
        now, sent = time.monotonic(), self._sent[user_id]
        while sent and sent[0] <= now - WINDOW_SECONDS:
            sent.popleft()
        if len(sent) >= limit:
            raise too_many_messages(sent[0] + WINDOW_SECONDS - now)
        sent.append(now)

    async def open_stream(self, user_id: int, stream_id: uuid.UUID) -> None:
        """Take one of the user's stream slots, or raise 429 if none is free."""
        limit = conf.CHATSTREAM_MAX_CONCURRENT_STREAMS
        if not limit:
            return
        streams = self._streams[user_id]
        if len(streams) >= limit:
            raise too_many_streams()
        streams.add(stream_id)

    async def close_stream(self, user_id: int, stream_id: uuid.UUID) -> None:
        self._streams[user_id].discard(stream_id)


# Sliding-window log: the times of the last minute's messages, in a sorted set.
_COUNT_MESSAGE = """
local key, now, window, limit = KEYS[1], tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
redis.call('ZREMRANGEBYSCORE', key, '-inf', now - window)
if redis.call('ZCARD', key) >= limit then
  local oldest = redis.call('ZRANGE', key, 0, 0, 'WITHSCORES')
  return tostring(tonumber(oldest[2]) + window - now)
end
redis.call('ZADD', key, now, ARGV[4])
redis.call('EXPIRE', key, math.ceil(window))
return false
"""

# The user's open streams, each scored by when its slot lapses.
_OPEN_STREAM = """
local key, now, ttl, limit = KEYS[1], tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
redis.call('ZREMRANGEBYSCORE', key, '-inf', now)
if redis.call('ZCARD', key) >= limit then return 0 end
redis.call('ZADD', key, now + ttl, ARGV[4])
redis.call('EXPIRE', key, ttl)
return 1
"""


class RedisLimits:
    """The counts in Redis; while Redis cannot be reached, in this process
    (each process then holds a user to the limits on its own)."""

    def __init__(self) -> None:
        self._here = LocalLimits()
        self._held: dict[uuid.UUID, int] = {}  # this process's slots in Redis, and their users
        self._renewer: asyncio.Task | None = None

    async def count_message(self, user_id: int) -> None:
        limit = conf.CHATSTREAM_MESSAGES_PER_MINUTE
        if not limit:
            return
        script = redis_client().register_script(_COUNT_MESSAGE)
        args: list[float | str] = [time.time(), WINDOW_SECONDS, limit, uuid.uuid4().hex]
        try:
            retry_after = await script(keys=[f"chatstream:messages:{user_id}"], args=args)
        except redis_errors() as exc:
            redis_trouble("counting messages", exc)
            return await self._here.count_message(user_id)
        if retry_after is not None:
            raise too_many_messages(float(retry_after))

    async def open_stream(self, user_id: int, stream_id: uuid.UUID) -> None:
        limit = conf.CHATSTREAM_MAX_CONCURRENT_STREAMS
        if not limit:
            return
        script = redis_client().register_script(_OPEN_STREAM)
        args: list[float | str] = [time.time(), slot_lease_seconds(), limit, str(stream_id)]  # lapses unless renewed
        try:
            opened = await script(keys=[f"chatstream:streams:{user_id}"], args=args)
        except redis_errors() as exc:
            redis_trouble("taking a stream slot", exc)
            return await self._here.open_stream(user_id, stream_id)
        if not opened:
            raise too_many_streams()
        self._held[stream_id] = user_id
        if self._renewer is None or self._renewer.done():
            self._renewer = asyncio.create_task(self._renew(), name="chatstream stream slots")

    async def _renew(self) -> None:
        """Push back the lapse of every slot this process holds, while it holds any."""
        while True:
            await asyncio.sleep(conf.CHATSTREAM_ANSWER_LEASE_SECONDS)
            held = list(self._held.items())
            if not held:
                return  # the next slot taken starts another
            lapse = time.time() + slot_lease_seconds()
            try:
                async with redis_client().pipeline(transaction=False) as pipe:
                    for stream_id, user_id in held:
                        key = f"chatstream:streams:{user_id}"
                        pipe.zadd(key, {str(stream_id): lapse}, xx=True)
                        pipe.expire(key, slot_lease_seconds())
                    await pipe.execute()
            except redis_errors() as exc:
                redis_trouble("renewing stream slots", exc)

    async def close_stream(self, user_id: int, stream_id: uuid.UUID) -> None:
        self._held.pop(stream_id, None)
        await self._here.close_stream(user_id, stream_id)  # taken here while Redis was away, if at all
        try:
            await redis_client().zrem(f"chatstream:streams:{user_id}", str(stream_id))
        except redis_errors() as exc:
            redis_trouble("giving a stream slot back", exc)


# Forgotten with REDIS_URL: this process's counts and slots start afresh (a slot still held lapses in Redis).
@state.built_from("REDIS_URL")
def limits() -> LocalLimits | RedisLimits:
    return RedisLimits() if conf.REDIS_URL else LocalLimits()


def close_stream_later(user_id: int, stream_id: uuid.UUID, then: Callable[[], None] | None = None) -> None:
    """Give a slot back from a callback (an answer's task has ended); then
    call `then` (the queue's next message, which may want that slot)."""

    async def close() -> None:
        try:
            await limits().close_stream(user_id, stream_id)
        finally:
            if then is not None:
                then()

    background.keep(asyncio.ensure_future(close()))
