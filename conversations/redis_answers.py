"""Answers shared between processes through Redis (REDIS_URL set).

The process generating an answer (A) runs it as a single process would, with
one more follower beside its client: the publisher, which writes each event
to the answer's journal and, while a reader elsewhere follows the answer,
sends it to the answer's group on the Channels layer (the end always).

    A: AnswerRelay ──follow()──▶ publisher ──XADD──────▶ journal:<turn> (a Redis Stream)
                                           └─group_send─▶ group answer.<turn>
    B: RemoteAnswer ◀── the group's messages (live), XRANGE of the journal (catch-up, repair)

Another process (B) finds the answer by its hash, replays the journal after
the client's last id and follows the group. Every entry says which characters
it covers, so a message lost on the way (a full channel) shows as a gap that
is read back from the journal: a reader never skips or repeats text.

Control goes the other way, to the generating process's own channel: a cancel
(a Stop served by B), and B's readers coming and going, which the `continue`
policy's grace period counts like readers in A.

Keys, each with an expiry that only a dead process lets run out:
    chatstream:answer:<turn>      hash: owner, conversation, position, trace_id, model, channel
    chatstream:journal:<turn>     stream of {k: kind, s: first character, e: event id, d: text or JSON}
    chatstream:generating:<conv>  hash: turn id -> position, the answers still being generated
"""

import asyncio
import contextlib
import logging
import sys
import uuid
from collections import Counter
from collections.abc import AsyncGenerator
from contextlib import aclosing
from typing import Any

import orjson
from channels.exceptions import ChannelFull
from channels.layers import get_channel_layer
from redis.exceptions import RedisError

from . import background, registry
from .conf import conf
from .db import run_db
from .live import LiveAnswer, LocalAnswers
from .models import Turn
from .redis_client import redis_client
from .relay import DELTA, DONE, ERROR, HEARTBEAT, START, AnswerRelay, FinishReason, saved_rest

logger = logging.getLogger(__name__)

# Live events queued for one remote reader. A reader that falls further
# behind loses the newest and reads them back from the journal.
INBOX_SIZE = 256
# The journal outlives its answer this long, for readers that found the
# answer just before it ended; later ones replay the saved row.
KEEP_AFTER_END_SECONDS = 60
# How long a Stop served by another process waits for the turn to be saved.
STOP_WAIT_SECONDS = 10.0
# Heartbeat of a wait with no client to send heartbeats to: how often it looks
# at the journal for an end it may have missed.
CHECK_SECONDS = 1.0


def _meta_key(turn_id: str) -> str:
    return f"chatstream:answer:{turn_id}"


def _journal_key(turn_id: str) -> str:
    return f"chatstream:journal:{turn_id}"


def _generating_key(conversation_id: str) -> str:
    return f"chatstream:generating:{conversation_id}"


def _group(turn_id: str) -> str:
    return f"answer.{turn_id}"


def _alive_seconds() -> int:
    """How long an answer's keys live without a write: longer than any
    silence the model is allowed, so they expire only if their process died."""
    return int(2 * max(conf.LLM_FIRST_TOKEN_TIMEOUT, conf.LLM_IDLE_TIMEOUT)) + 60


class RedisAnswers(LocalAnswers):
    def __init__(self) -> None:
        self._processes: dict[asyncio.AbstractEventLoop, _Process] = {}

    async def _process(self) -> "_Process":
        """This process's Redis client and channel, made on first use (one per
        event loop: their connections belong to the loop)."""
        loop = asyncio.get_running_loop()
        process = self._processes.get(loop)
        if process is None:
            process = self._processes[loop] = _Process()
        await process.ready()
        return process

    async def publish(self, relay: AnswerRelay) -> None:
        try:
            process = await self._process()
            await process.announce(relay)
        except (RedisError, OSError):
            # The answer still streams to its client; only other processes
            # cannot see it.
            logger.exception("could not share answer trace_id=%s turn=%s", relay.trace_id, relay.turn_id)
            return
        background.keep(asyncio.create_task(process.publish(relay), name=f"journal {relay.turn_id}"))

    async def find(self, turn_id: uuid.UUID) -> LiveAnswer | None:
        relay = registry.find(turn_id)
        if relay is not None:
            return relay
        try:
            process = await self._process()
            meta: dict[str, str] = await process.redis.hgetall(_meta_key(str(turn_id)))  # type: ignore[assignment]
        except (RedisError, OSError):
            logger.exception("could not look up answer turn=%s", turn_id)
            return None
        return RemoteAnswer(process, turn_id, meta) if meta else None

    async def generating_in(self, conversation_id: uuid.UUID) -> list[dict[str, Any]]:
        here = await super().generating_in(conversation_id)
        try:
            process = await self._process()
            shared: dict[str, str] = await process.redis.hgetall(_generating_key(str(conversation_id)))  # type: ignore[assignment]
        except (RedisError, OSError):
            logger.exception("could not list answers conversation=%s", conversation_id)
            return here
        answers = {answer["turn_id"]: answer for answer in here}
        for turn_id, position in shared.items():
            answers.setdefault(turn_id, {"turn_id": turn_id, "position": int(position)})
        return sorted(answers.values(), key=lambda answer: answer["position"])


class _Inbox:
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


class _Process:
    """This process on Redis: a client for the journal, and one channel on the
    layer that receives live events for the answers read here and control
    messages for the answers generated here."""

    def __init__(self) -> None:
        self.redis = redis_client()
        self.layer = get_channel_layer()
        self.channel = ""
        self._inboxes: dict[str, set[_Inbox]] = {}
        self._remote_readers: Counter[str] = Counter()  # per answer generated here
        self._opened: asyncio.Future | None = None
        self._receiver: asyncio.Task | None = None

    async def ready(self) -> None:
        if self._opened is None:
            self._opened = asyncio.ensure_future(self._open())
        await asyncio.shield(self._opened)

    async def _open(self) -> None:
        self.channel = await self.layer.new_channel()
        self._receiver = asyncio.create_task(self._receive(), name="chatstream channel")

    # --- the generating side ------------------------------------------------

    async def announce(self, relay: AnswerRelay) -> None:
        turn, conversation = str(relay.turn_id), str(relay.prepared.conversation_id)
        meta: dict[str | bytes, str | int] = {
            "owner": relay.owner_id,
            "conversation": conversation,
            "position": relay.prepared.answer_position,
            "trace_id": relay.trace_id,
            "model": relay.provider.model,
            "channel": self.channel,
        }
        alive = _alive_seconds()
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.hset(_meta_key(turn), mapping=meta)  # type: ignore[arg-type]
            pipe.expire(_meta_key(turn), alive)
            pipe.hset(_generating_key(conversation), turn, relay.prepared.answer_position)
            pipe.expire(_generating_key(conversation), alive)
            await pipe.execute()

    async def publish(self, relay: AnswerRelay) -> None:
        """Follow the answer (without keeping it alive) into its journal, and
        out to the group while readers elsewhere follow it. While a write is
        on its way, text gathers, so a busy Redis gets fewer, longer entries
        rather than falling behind."""
        turn = str(relay.turn_id)
        written, refreshed_at = 0, 0.0
        try:
            async with aclosing(relay.follow(None, reader=False)) as events:
                async for kind, data, event_id in events:
                    if kind == START:
                        continue  # readers elsewhere make it from the hash
                    entry: dict[str | bytes, str | int] = {
                        "k": kind,
                        "s": written,
                        "e": event_id,
                        "d": data if kind == DELTA else _json(data),
                    }
                    written = event_id
                    refreshed_at = await self._write_journal(turn, entry, refreshed_at)
                    # Deltas go out live only while someone elsewhere reads; the
                    # end always does (a Stop elsewhere waits for it). A reader
                    # that missed some takes them from the journal.
                    if kind != DELTA or self._remote_readers[turn]:
                        await self.layer.group_send(_group(turn), {"type": "answer.event", "turn": turn, **entry})
        except Exception:
            logger.exception("could not journal answer trace_id=%s turn=%s", relay.trace_id, turn)
        finally:
            self._remote_readers.pop(turn, None)
            await self._forget(relay)

    async def _write_journal(self, turn: str, entry: dict, refreshed_at: float) -> float:
        """Append one entry; push the keys' expiry back now and then (a
        quarter of their life), not at every entry."""
        loop_time, alive = asyncio.get_running_loop().time(), _alive_seconds()
        journal = _journal_key(turn)
        maxlen = conf.CHATSTREAM_JOURNAL_MAX_ENTRIES
        if loop_time - refreshed_at < alive / 4:
            await self.redis.xadd(journal, entry, maxlen=maxlen, approximate=True)
            return refreshed_at
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.xadd(journal, entry, maxlen=maxlen, approximate=True)
            pipe.expire(journal, alive)
            pipe.expire(_meta_key(turn), alive)
            await pipe.execute()
        return loop_time

    async def _forget(self, relay: AnswerRelay) -> None:
        """The answer is saved: new readers go to its row."""
        turn = str(relay.turn_id)
        with contextlib.suppress(RedisError, OSError):
            async with self.redis.pipeline(transaction=False) as pipe:
                pipe.delete(_meta_key(turn))
                pipe.hdel(_generating_key(str(relay.prepared.conversation_id)), turn)
                pipe.expire(_journal_key(turn), KEEP_AFTER_END_SECONDS)
                await pipe.execute()

    # --- the reading side -----------------------------------------------------

    async def subscribe(self, turn: str) -> _Inbox:
        inbox = _Inbox()
        self._inboxes.setdefault(turn, set()).add(inbox)
        await self.layer.group_add(_group(turn), self.channel)
        return inbox

    async def unsubscribe(self, turn: str, inbox: _Inbox) -> None:
        inboxes = self._inboxes.get(turn, set())
        inboxes.discard(inbox)
        if not inboxes:
            self._inboxes.pop(turn, None)
            with contextlib.suppress(RedisError, OSError):
                await self.layer.group_discard(_group(turn), self.channel)

    async def journal(self, turn: str) -> list[dict[str, str]]:
        entries = await self.redis.xrange(_journal_key(turn))
        return [fields for _, fields in entries or ()]  # type: ignore[misc]

    async def tell(self, channel: str, kind: str, turn: str) -> None:
        """A control message to the process generating `turn`."""
        try:
            await self.layer.send(channel, {"type": kind, "turn": turn})
        except (ChannelFull, RedisError, OSError):
            logger.exception("could not send %s turn=%s", kind, turn)

    # --- this process's channel -------------------------------------------------

    async def _receive(self) -> None:
        while True:
            try:
                message = await self.layer.receive(self.channel)
            except Exception:
                logger.exception("channel layer receive failed; retrying in 1 s")
                await asyncio.sleep(1.0)
                continue
            self._dispatch(message)

    def _dispatch(self, message: dict[str, Any]) -> None:
        kind, turn = message["type"], message["turn"]
        if kind == "answer.event":
            for inbox in self._inboxes.get(turn, ()):
                inbox.put(message)
            return
        relay = registry.find(uuid.UUID(turn))
        if relay is None:
            return  # ended meanwhile
        if kind == "answer.cancel":
            relay.cancel(FinishReason.CANCELLED)
        elif kind == "answer.follow":
            self._remote_readers[turn] += 1
            relay.attach()
        elif kind == "answer.release":
            self._remote_readers[turn] = max(0, self._remote_readers[turn] - 1)
            relay.detach()
            relay.release()


def _json(data: Any) -> str:
    return orjson.dumps(data).decode()


class _Cursor:
    """Where a reader is in an answer. Takes journal entries, from the journal
    or the live group, in any mix and with repeats, and gives out the text
    the reader has not had, never with a gap."""

    def __init__(self, after: int) -> None:
        self.sent = after
        self.final: tuple[str, Any, int] | None = None
        self.gap = False  # an entry came before the text it follows
        self.text_lost = False  # the journal no longer holds text the reader needs

    def take(self, entries: list[dict[str, Any]]) -> str:
        pieces = []
        for entry in entries:
            kind, start, end = entry["k"], int(entry["s"]), int(entry["e"])
            if kind != DELTA:
                if self.sent >= end or self.text_lost:
                    self.final = (kind, orjson.loads(entry["d"]), end)
                else:
                    self.gap = True
            elif end > self.sent and not self.text_lost:
                if start > self.sent:
                    self.gap = True
                    continue
                pieces.append(entry["d"][self.sent - start :])
                self.sent = end
        return "".join(pieces)


class RemoteAnswer:
    """An answer another process is generating, read through Redis."""

    def __init__(self, process: _Process, turn_id: uuid.UUID, meta: dict[str, str]) -> None:
        self._process = process
        self.turn_id = turn_id
        self.owner_id = int(meta["owner"])
        self.trace_id = meta["trace_id"]
        self._meta = meta
        self._turn = str(turn_id)
        self._loop = asyncio.get_running_loop()
        self._attached = False  # the generating process counts this reader

    def start_data(self) -> dict[str, Any]:
        meta = self._meta
        return {
            "turn_id": self._turn,
            "conversation_id": meta["conversation"],
            "trace_id": meta["trace_id"],
            "model": meta["model"],
        }

    async def follow(
        self, heartbeat: float | None, after: int = 0, *, reader: bool = True
    ) -> AsyncGenerator[tuple[str, Any, int], None]:
        """The same events AnswerRelay.follow gives, from the journal and the
        live group: `start` (from the beginning), deltas, heartbeats, the end."""
        inbox = await self._process.subscribe(self._turn)
        try:
            if reader:
                self._attached = True
                await self._process.tell(self._meta["channel"], "answer.follow", self._turn)
            if not after:
                yield START, self.start_data(), 0
            async for event in self._events(inbox, _Cursor(after), heartbeat):
                yield event
        finally:
            await self._process.unsubscribe(self._turn, inbox)

    async def _events(
        self, inbox: _Inbox, cursor: _Cursor, heartbeat: float | None
    ) -> AsyncGenerator[tuple[str, Any, int], None]:
        entries, from_journal = await self._process.journal(self._turn), True
        while True:
            text = cursor.take(entries)
            if text:
                yield DELTA, text, cursor.sent
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
                entries, from_journal = await self._process.journal(self._turn), True
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
            # for a generating process that died (its keys expired unsaved).
            entries, from_journal = await self._process.journal(self._turn), True
            if not entries and not await self._process.redis.exists(_meta_key(self._turn)):
                async for event in self._saved_events(cursor.sent):
                    yield event
                return

    async def _saved_events(self, sent: int) -> AsyncGenerator[tuple[str, Any, int], None]:
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

    async def stop(self) -> None:
        await self._process.tell(self._meta["channel"], "answer.cancel", self._turn)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(STOP_WAIT_SECONDS):
                async with aclosing(self.follow(None, after=sys.maxsize, reader=False)) as events:
                    async for kind, _, _ in events:
                        if kind in (DONE, ERROR):
                            return
