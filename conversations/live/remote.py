"""Reading an answer that another process is generating: its journal for
what came before (and for any gap), its Channels group for what comes live.

Every journal entry says which characters it covers, so a message lost on
the way (a full channel, a full inbox) shows as a gap that is read back from
the journal: a reader never skips or repeats text.
"""

import asyncio
import contextlib
import sys
import uuid
from collections.abc import AsyncGenerator
from contextlib import aclosing
from typing import TYPE_CHECKING, Any, Protocol

import orjson

from ..conf import conf
from ..models import Turn
from ..providers.kinds import WHOLE
from ..storage.threads import run_db
from ..stream import background
from ..stream.events import (
    DONE,
    ERROR,
    HEARTBEAT,
    OUTPUT_EVENTS,
    Event,
    FinishReason,
    saved_rest,
    start_event,
)
from . import keys
from .client import redis_errors, redis_trouble

if TYPE_CHECKING:  # redis-py is imported only with REDIS_URL set (client.py)
    from redis.asyncio import Redis

# Live events queued for one remote reader. A reader that falls further
# behind loses the newest and reads them back from the journal.
INBOX_SIZE = 256
# How long a Stop served by another process waits for the turn to be saved.
STOP_WAIT_SECONDS = 10.0
# Heartbeat of a wait with no client to send heartbeats to: how often it looks
# at the journal for an end it may have missed.
CHECK_SECONDS = 1.0


class Link(Protocol):
    """What a remote reader needs of this process's link to Redis
    (redis.Process): the journal, the answer's group, and control messages."""

    redis: "Redis"

    async def subscribe(self, turn: str) -> "Inbox": ...

    async def rejoin(self, turn: str) -> None: ...

    async def unsubscribe(self, turn: str, inbox: "Inbox") -> None: ...

    async def journal(self, turn: str) -> list[dict[str, str]]: ...

    async def tell(self, channel: str, kind: str, turn: str, **fields: str) -> None: ...


class Inbox:
    """Live events for one remote reader, bounded."""

    def __init__(self) -> None:
        self.queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(INBOX_SIZE)
        self.overflowed = False  # some were dropped: read the journal

    def put(self, message: dict[str, Any]) -> None:
        try:
            self.queue.put_nowait(message)
        except asyncio.QueueFull:
            self.overflowed = True

    def take_all(self, first: dict[str, Any]) -> list[dict[str, Any]]:
        entries = [first]
        while not self.queue.empty():
            entries.append(self.queue.get_nowait())
        return entries


class Cursor:
    """Where a reader is in an answer. Takes journal entries, from the journal
    or the live group, in any mix and with repeats, and gives out the output
    the reader has not had, never with a gap."""

    def __init__(self, after: int) -> None:
        self.sent = after
        self.final: Event | None = None
        self.gap = False  # an entry came before the output it follows
        self.text_lost = False  # the journal no longer holds output the reader needs

    def take(self, entries: list[dict[str, Any]]) -> list[Event]:
        """The output events these entries hold for the reader, consecutive
        ones of a kind joined (a tool call stays whole)."""
        events: list[Event] = []
        for entry in entries:
            kind, start, end = entry["k"], int(entry["s"]), int(entry["e"])
            if kind not in OUTPUT_EVENTS:
                if self.sent >= end or self.text_lost:
                    self.final = (kind, orjson.loads(entry["d"]), end)
                else:
                    self.gap = True
            elif end > self.sent and not self.text_lost:
                if start > self.sent:
                    self.gap = True
                    continue
                # A tool call, result or step is never cut (no event id falls inside one).
                text = entry["d"] if kind in WHOLE else entry["d"][self.sent - start :]
                if events and events[-1][0] == kind and kind not in WHOLE:
                    events[-1] = (kind, events[-1][1] + text, end)
                else:
                    events.append((kind, text, end))
                self.sent = end
        return events


class Watch:
    """A remote reader's watch on Redis while the answer is quiet. Redis may
    be down, or back empty after a restart (no persistence): the answer goes
    on in its process, which writes its keys again once it notices, so a
    reader waits through that rather than calling the answer lost. It looks
    at the saved row meanwhile, and calls the answer lost only when neither
    the keys nor the row have come back, nor the journal grown, within a
    lease (CHATSTREAM_ANSWER_LEASE_SECONDS)."""

    def __init__(self, process: Link, turn: str) -> None:
        self._process, self._turn = process, turn
        self.troubled = False  # Redis failed while this reader followed: the end may be missing
        self._gone_since: float | None = None
        self._journal_end: tuple[int, str] = (0, "")  # entries and last event id, at the last look
        self._journal_end_seen = self._journal_end  # ... at the last look for an end

    async def journal(self) -> list[dict[str, str]]:
        """The journal's entries; none while Redis is down."""
        try:
            entries = await self._process.journal(self._turn)
        except redis_errors() as exc:
            self._trouble(exc)
            return []
        if entries:
            self._journal_end = (len(entries), entries[-1]["e"])
        return entries

    async def ended(self, turn_id: uuid.UUID) -> bool:
        """Whether to end from the saved row (or as lost): the row is there,
        or Redis has answered without the answer for a lease. While Redis
        does not answer at all, nothing is known: only the row can end it.
        A journal that grew since the last look was written by the answer's
        process, alive, which has yet to write the rest of its keys again:
        the lease is counted from then."""
        listed, now = await self._listed(), asyncio.get_running_loop().time()
        written, self._journal_end_seen = self._journal_end != self._journal_end_seen, self._journal_end
        if listed:
            self._gone_since = None
            if not self.troubled:
                return False
        elif listed is False and (self._gone_since is None or written):
            self._gone_since = now
        if await run_db(Turn.objects.filter(pk=turn_id).exists):
            return True
        return self._gone_since is not None and now - self._gone_since >= conf.CHATSTREAM_ANSWER_LEASE_SECONDS

    async def _listed(self) -> bool | None:
        """Whether Redis still has the answer (None: Redis did not answer).
        Joins its group again when Redis has lost it: a restart empties the
        group too."""
        try:
            if await self._process.redis.exists(keys.meta_key(self._turn)):
                return True
            await self._process.rejoin(self._turn)
            return False
        except redis_errors() as exc:
            self._trouble(exc)
            return None

    def _trouble(self, exc: BaseException) -> None:
        self.troubled = True
        redis_trouble("following an answer", exc)


class RemoteAnswer:
    """An answer another process is generating, read through Redis."""

    def __init__(self, process: Link, turn_id: uuid.UUID, meta: dict[str, str]) -> None:
        self._process = process
        self.turn_id = turn_id
        self.owner_id = int(meta["owner"])
        self.trace_id = meta["trace_id"]
        self._meta = meta
        self._turn = str(turn_id)
        self._loop = asyncio.get_running_loop()
        self._attached = False  # the generating process counts this reader

    def start(self) -> Event:
        meta = self._meta
        return start_event(
            turn_id=self._turn, conversation_id=meta["conversation"], trace_id=meta["trace_id"], model=meta["model"]
        )

    async def follow(
        self, heartbeat: float | None, after: int = 0, *, reader: bool = True
    ) -> AsyncGenerator[Event, None]:
        """The same events AnswerRelay.follow gives, from the journal and the
        live group: `start` (from the beginning), deltas, heartbeats, the end."""
        inbox = await self._process.subscribe(self._turn)
        try:
            if reader:
                self._attached = True
                await self._process.tell(self._meta["channel"], "answer.follow", self._turn)
            if not after:
                yield self.start()
            async for event in self._events(inbox, Cursor(after), heartbeat):
                yield event
        finally:
            await self._process.unsubscribe(self._turn, inbox)

    async def _events(self, inbox: Inbox, cursor: Cursor, heartbeat: float | None) -> AsyncGenerator[Event, None]:
        watch = Watch(self._process, self._turn)
        entries, from_journal = await watch.journal(), True
        while True:
            for event in cursor.take(entries):
                yield event
            if cursor.final is not None:
                if cursor.text_lost:
                    async for event in self._saved_events(cursor.sent):
                        yield event
                else:
                    yield cursor.final
                return
            if cursor.gap or inbox.overflowed:
                # The journal holds what the group's messages missed; if it
                # has lost it too (trimmed), the saved row will have it.
                cursor.text_lost = cursor.text_lost or (cursor.gap and from_journal)
                cursor.gap = inbox.overflowed = False
                entries, from_journal = await watch.journal(), True
                continue
            try:
                async with asyncio.timeout(heartbeat or CHECK_SECONDS):
                    entries, from_journal = inbox.take_all(await inbox.queue.get()), False
                continue
            except TimeoutError:
                pass
            if heartbeat is not None:
                yield HEARTBEAT, None, cursor.sent
            # A quiet spell: look for an end the group's messages missed, and
            # for an answer Redis lost (a restart) or whose process died.
            entries, from_journal = await watch.journal(), True
            if (not entries or watch.troubled) and await watch.ended(self.turn_id):
                async for event in self._saved_events(cursor.sent):
                    yield event
                return

    async def _saved_events(self, sent: int) -> AsyncGenerator[Event, None]:
        """The rest of the answer from its saved row."""
        turn = await run_db(Turn.objects.filter(pk=self.turn_id).first)
        if turn is None:
            message = "The process generating this answer stopped before saving it."
            yield ERROR, {"code": "answer_lost", "message": message, "finish_reason": FinishReason.ERROR}, sent
            return
        for event in saved_rest(turn, sent):
            yield event

    async def close(self) -> None:
        if self._attached:
            self._attached = False
            await self._process.tell(self._meta["channel"], "answer.release", self._turn)

    def release_threadsafe(self) -> None:
        self._loop.call_soon_threadsafe(lambda: background.keep(asyncio.ensure_future(self.close())))

    async def decided(self, call_id: str) -> None:
        # Lost on the way, the decision is still read: the wait looks at the row now and then.
        await self._process.tell(self._meta["channel"], "answer.decided", self._turn, call=call_id)

    async def stop(self) -> None:
        await self._process.tell(self._meta["channel"], "answer.cancel", self._turn)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(STOP_WAIT_SECONDS):
                async with aclosing(self.follow(None, after=sys.maxsize, reader=False)) as events:
                    async for kind, _, _ in events:
                        if kind in (DONE, ERROR):
                            return
