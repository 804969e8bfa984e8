"""This process's writes to its answers' journals, all answers together.

Each answer's publisher (redis.py) hands its next entry here and waits until
Redis has it. What every publisher hands over while a write is on its way
goes together in the next one: one pipeline, one round trip and one
connection for all of them, instead of a command, a round trip and a turn
of the connection pool per entry. Under load the batches grow by themselves
(the publishers' own text gathers while they wait), so a busy Redis gets
fewer, larger writes rather than falling behind.

py-spy on the process at 100 streams of 200 tokens (bench.scale): one XADD
awaited per entry per answer was about 40 % of its samples, in redis-py (its
pool, its timeouts, a reply read per command).
"""

import asyncio
import itertools
from dataclasses import dataclass, field

import redis.asyncio as aioredis

from ..conf import conf
from ..stream import background
from . import keys


@dataclass(slots=True)
class Entry:
    turn: str
    fields: dict
    refresh: bool  # push the answer's keys' expiry back too
    written: asyncio.Future = field(default_factory=lambda: asyncio.get_running_loop().create_future())


class JournalWriter:
    def __init__(self, redis: aioredis.Redis) -> None:
        self.redis = redis
        self._waiting: list[Entry] = []
        self._task: asyncio.Task | None = None

    async def write(self, turn: str, fields: dict, *, refresh: bool = False) -> None:
        """Append `fields` to the turn's journal; RedisError or OSError if
        Redis refused it or could not be reached."""
        entry = Entry(turn, fields, refresh)
        self._waiting.append(entry)
        if self._task is None:
            self._task = asyncio.create_task(self._write_all(), name="chatstream journal")
            background.keep(self._task)
        await asyncio.shield(entry.written)  # a cancelled publisher's entry is written all the same

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def _write_all(self) -> None:
        try:
            while self._waiting:
                batch, self._waiting = self._waiting, []
                await self._write(batch)
        finally:
            self._task = None
            for entry in _unsettled(self._waiting):  # cancelled (the loop is closing): nobody waits in vain
                entry.written.cancel()
            self._waiting = []

    async def _write(self, batch: list[Entry]) -> None:
        maxlen, alive = conf.CHATSTREAM_JOURNAL_MAX_ENTRIES, keys.alive_seconds()
        try:
            async with self.redis.pipeline(transaction=False) as pipe:
                for entry in batch:
                    journal = keys.journal_key(entry.turn)
                    pipe.xadd(journal, entry.fields, maxlen=maxlen, approximate=True)
                    if entry.refresh:
                        pipe.expire(journal, alive)
                        pipe.expire(keys.meta_key(entry.turn), alive)
                replies = iter(await pipe.execute(raise_on_error=False))
        except Exception as exc:  # Redis unreachable: every entry failed
            for entry in _unsettled(batch):
                entry.written.set_exception(exc)
        except BaseException:  # cancelled: the loop is closing
            for entry in _unsettled(batch):
                entry.written.cancel()
            raise
        else:  # each entry by its own commands' replies: one answer's failure is not another's
            for entry in batch:
                own = itertools.islice(replies, 3 if entry.refresh else 1)
                failed = [reply for reply in own if isinstance(reply, Exception)]
                if entry.written.done():
                    continue
                if failed:
                    entry.written.set_exception(failed[0])
                else:
                    entry.written.set_result(None)


def _unsettled(batch: list[Entry]) -> list[Entry]:
    return [entry for entry in batch if not entry.written.done()]
