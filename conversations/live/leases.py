"""Answers whose process died, found and saved by another (REDIS_URL).

Every answer being generated is listed in `chatstream:live` with what its
turn's row needs, and holds a lease its process renews a few times per
CHATSTREAM_ANSWER_LEASE_SECONDS. Each process also looks, as often, for
answers whose lease has lapsed: its process was killed (a clean stop saves
its answers first). The first process to claim one rebuilds the output from
the answer's journal (every character a client could have read is there),
saves the turn as `error` / `process_lost` with it, and ends the answer for
its readers everywhere with that error, through the journal and the group.

A lease that is gone when its own process renews it was not lapsed (that
process is alive): Redis lost it, restarting without persistence. The
process then writes the answer to Redis again (`lost`), so that others can
find, follow and stop it.
"""

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import orjson

from ..conf import conf
from ..stream.events import ERROR, FinishReason
from ..stream.output import Output, Parts
from ..stream.relay import AnswerRelay
from . import keys
from .client import redis_errors, redis_trouble
from .remote import Cursor

if TYPE_CHECKING:  # services imports this module: no Channels import for a process without Redis
    from channels_redis.core import RedisChannelLayer
    from redis.asyncio import Redis

logger = logging.getLogger(__name__)

PROCESS_LOST = "process_lost"
LOST_MESSAGE = "The server generating this answer stopped; what it had written is saved. Regenerate or continue it."
# How many times per lease a process renews its own and looks for lapsed ones.
CHECKS_PER_LEASE = 3

# Saves a lost answer's turn: (turn id, what `lease` recorded, its output) ->
# whether it saved one (False: the row was there already). Set by services.
LostAnswerSaver = Callable[[str, dict[str, Any], Parts], Awaitable[bool]]
_saver: LostAnswerSaver | None = None


def when_an_answer_is_lost(saver: LostAnswerSaver) -> None:
    global _saver
    _saver = saver


def row_of(relay: AnswerRelay) -> dict[str, Any]:
    """What the answer's row needs if its process dies."""
    prepared = relay.prepared
    return {
        "conversation": str(prepared.conversation_id),
        "position": prepared.answer_position,
        "parent": str(prepared.parent_id) if prepared.parent_id else None,
        "model": relay.provider.model,
        "model_name": prepared.model_name,
        "provider": relay.provider.name,
        "trace_id": relay.trace_id,
        "api_key_id": prepared.api_key_id,
        "owner_id": prepared.owner_id,
    }


class Leases:
    """This process's leases on the answers it generates, and its watch on
    everyone else's."""

    def __init__(
        self, redis: "Redis", layer: "RedisChannelLayer", channel: str, *, lost: Callable[[str], Awaitable[None]]
    ) -> None:
        self.redis, self.layer, self.channel = redis, layer, channel
        self._lost = lost  # writes an answer generated here to Redis again
        self.held: set[str] = set()
        self._task: asyncio.Task | None = None

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._keep(), name="chatstream answer leases")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    def take(self, pipe, turn: str, relay: AnswerRelay) -> None:
        """Add the answer's listing and lease to a pipeline (its announcement)."""
        self.held.add(turn)
        pipe.hset(keys.LIVE, turn, orjson.dumps(row_of(relay)).decode())
        pipe.set(keys.lease_key(turn), self.channel, px=_lease_ms())

    def give_back(self, pipe, turn: str) -> None:
        """The answer is saved: add the end of its listing and lease to a pipeline."""
        self.held.discard(turn)
        pipe.hdel(keys.LIVE, turn)
        pipe.delete(keys.lease_key(turn))

    async def _keep(self) -> None:
        while True:
            await asyncio.sleep(conf.CHATSTREAM_ANSWER_LEASE_SECONDS / CHECKS_PER_LEASE)
            try:
                await self._renew()
                await self._look_for_lapsed()
            except redis_errors() as exc:
                redis_trouble("renewing answer leases", exc)
            except Exception:
                logger.exception("could not look for answers lost with their process")

    async def _renew(self) -> None:
        if not self.held:
            return
        held = list(self.held)
        async with self.redis.pipeline(transaction=False) as pipe:
            for turn in held:
                pipe.set(keys.lease_key(turn), self.channel, px=_lease_ms(), xx=True)
            renewed = await pipe.execute()
        for turn, lease in zip(held, renewed, strict=True):
            if not lease and turn in self.held and not await self.redis.exists(keys.reaping_key(turn)):
                await self._lost(turn)

    async def _look_for_lapsed(self) -> None:
        listed: dict[str, str] = await self.redis.hgetall(keys.LIVE)  # type: ignore[misc,assignment]
        others = [turn for turn in listed if turn not in self.held]
        if not others:
            return
        async with self.redis.pipeline(transaction=False) as pipe:
            for turn in others:
                pipe.exists(keys.lease_key(turn))
            alive = await pipe.execute()
        for turn, lease in zip(others, alive, strict=True):
            if not lease and await self.redis.set(keys.reaping_key(turn), self.channel, nx=True, ex=60):
                await self._save_lost(turn, orjson.loads(listed[turn]))

    async def _save_lost(self, turn: str, row: dict[str, Any]) -> None:
        entries: list[Any] = await self.redis.xrange(keys.journal_key(turn)) or []
        output = _output_of(entries)
        saved = _saver is not None and await _saver(turn, row, output.parts())
        if saved:
            logger.warning("saved answer turn=%s trace_id=%s as %s", turn, row["trace_id"], PROCESS_LOST)
            error = {"code": PROCESS_LOST, "message": LOST_MESSAGE, "finish_reason": FinishReason.ERROR}
            end = {"k": ERROR, "s": output.length, "e": output.length, "d": orjson.dumps(error).decode()}
            await self.redis.xadd(keys.journal_key(turn), end)  # type: ignore[arg-type]
            await self.layer.group_send(keys.group(turn), {"type": "answer.event", "turn": turn, **end})
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.hdel(keys.LIVE, turn)
            pipe.hdel(keys.generating_key(row["conversation"]), turn)
            pipe.delete(keys.meta_key(turn))
            await pipe.execute()


def _output_of(entries: list[Any]) -> Output:
    """The output a journal holds, each character once, in order: what a
    remote reader's cursor gives from the start."""
    output = Output()
    for kind, text, _ in Cursor(after=0).take([entry for _, entry in entries]):
        output.append(text, kind)
    return output


def _lease_ms() -> int:
    return int(conf.CHATSTREAM_ANSWER_LEASE_SECONDS * 1000)
