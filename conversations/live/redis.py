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
(a Stop served by B), a decision on a tool call B wrote to the database, and
B's readers coming and going, which the `continue`
policy's grace period counts like readers in A.

Keys, each with an expiry that only a dead process lets run out:
    chatstream:answer:<turn>      hash: owner, conversation, position, trace_id, model, channel
    chatstream:journal:<turn>     stream of {k: kind, s: first character, e: event id, d: output or JSON}
    chatstream:generating:<conv>  hash: turn id -> position, the answers still being generated
"""

import asyncio
import contextlib
import logging
import uuid
from collections import Counter
from contextlib import aclosing
from typing import Any

import orjson
import redis.asyncio as aioredis
from channels.exceptions import ChannelFull
from channels_redis.core import RedisChannelLayer
from redis.exceptions import RedisError

from .. import state
from ..conf import conf
from ..stream import background, registry
from ..stream.events import OUTPUT_EVENTS, START, FinishReason
from ..stream.relay import AnswerRelay
from . import keys
from .base import LiveAnswer
from .client import REDIS_POOL_WAIT_SECONDS, packing_in_c, redis_client, redis_trouble
from .journal_writer import JournalWriter
from .leases import Leases
from .local import LocalAnswers
from .remote import Inbox, RemoteAnswer

logger = logging.getLogger(__name__)

# Control messages a process may get twice without harm.
_IDEMPOTENT = frozenset({"answer.cancel", "answer.decided"})

# The journal outlives its answer this long, for readers that found the
# answer just before it ended; later ones replay the saved row.
KEEP_AFTER_END_SECONDS = 60


# Its pools are closed with the answers' Process, on their loops (live/__init__.py).
@state.built_from("REDIS_URL", "CHATSTREAM_REDIS_MAX_CONNECTIONS")
def channel_layer() -> RedisChannelLayer:
    """The app's own Channels layer on REDIS_URL, whatever a project's
    CHANNEL_LAYERS say (it may use Channels for something else)."""
    # A reader that falls behind by more than `capacity` messages loses some;
    # it notices the gap and reads it from the journal.
    # The layer's receive blocks on Redis for up to its brpop_timeout (5 s);
    # redis-py's socket timeout is also 5 s by default, so an idle process
    # raced the two and logged a timeout every few seconds.
    host = {"address": conf.REDIS_URL, "socket_timeout": RedisChannelLayer.brpop_timeout + 10}
    return WaitingChannelLayer(hosts=[host], prefix="chatstream", capacity=1000)


class WaitingChannelLayer(RedisChannelLayer):
    """channels_redis's layer on a pool sized like the main client's, where a
    caller waits for a connection: its own pool raises MaxConnectionsError
    past 100, and a fresh process that 250 readers joined at once (each a
    `group_add`) cut 151 of their streams."""

    def create_pool(self, index: int) -> aioredis.BlockingConnectionPool:
        host = dict(self.hosts[index])
        pool = aioredis.BlockingConnectionPool.from_url(
            host.pop("address"),
            max_connections=conf.CHATSTREAM_REDIS_MAX_CONNECTIONS,
            timeout=REDIS_POOL_WAIT_SECONDS,
            **host,
        )
        return packing_in_c(pool)


class RedisAnswers(LocalAnswers):
    def __init__(self) -> None:
        self.processes: dict[asyncio.AbstractEventLoop, Process] = {}

    async def _process(self) -> "Process":
        """This process's Redis client and channel, made on first use (one per
        event loop: their connections belong to the loop)."""
        loop = asyncio.get_running_loop()
        process = self.processes.get(loop)
        if process is None:
            process = self.processes[loop] = Process()
        await process.ready()
        return process

    async def close(self) -> None:
        """Stop this loop's channel receiver and close its connections (a
        process that swaps its settings, as the tests do)."""
        process = self.processes.pop(asyncio.get_running_loop(), None)
        if process is not None:
            await process.close()

    async def publish(self, relay: AnswerRelay) -> None:
        # Before its client reads: what a client here is given, the journal holds first.
        relay.readers.hold_until_journaled()
        try:
            process = await self._process()
            await process.announce(relay)
        except (RedisError, OSError) as exc:
            # The answer still streams to its client; only other processes
            # cannot see it.
            redis_trouble("sharing an answer", exc)
            relay.readers.journaled(None)
            return
        except BaseException:
            relay.readers.journaled(None)
            raise
        background.keep(asyncio.create_task(process.publish(relay), name=f"journal {relay.turn_id}"))

    async def find(self, turn_id: uuid.UUID) -> LiveAnswer | None:
        here = await super().find(turn_id)
        if here is not None:
            return here
        try:
            process = await self._process()
            meta: dict[str, str] = await process.redis.hgetall(keys.meta_key(str(turn_id)))  # type: ignore[assignment]
        except (RedisError, OSError) as exc:
            redis_trouble("finding an answer", exc)
            return None
        return RemoteAnswer(process, turn_id, meta) if meta else None

    async def generating_in(self, conversation_id: uuid.UUID) -> list[dict[str, Any]]:
        here = await super().generating_in(conversation_id)
        try:
            process = await self._process()
            shared: dict[str, str] = await process.redis.hgetall(keys.generating_key(str(conversation_id)))  # type: ignore[assignment]
        except (RedisError, OSError) as exc:
            redis_trouble("listing answers", exc)
            return here
        answers = {answer["turn_id"]: answer for answer in here}
        for turn_id, position in shared.items():
            answers.setdefault(turn_id, {"turn_id": turn_id, "position": int(position)})
        return sorted(answers.values(), key=lambda answer: answer["position"])


class Process:
    """This process on Redis: a client for the journal, and one channel on the
    layer that receives live events for the answers read here and control
    messages for the answers generated here."""

    def __init__(self) -> None:
        self.redis = redis_client()
        self.journal_writer = JournalWriter(self.redis)
        self.layer = channel_layer()
        self.channel = ""
        self._inboxes: dict[str, set[Inbox]] = {}
        self._remote_readers: Counter[str] = Counter()  # per answer generated here
        self._published: dict[str, AnswerRelay] = {}  # the answers generated here, while they live
        self._unlisted: set[str] = set()  # of those, the ones Redis may have lost: write them again
        self._opened: asyncio.Future | None = None
        self._receiver: asyncio.Task | None = None
        self.leases: Leases | None = None

    async def close(self) -> None:
        if self._receiver is not None:
            self._receiver.cancel()
            await asyncio.gather(self._receiver, return_exceptions=True)
        if self.leases is not None:
            await self.leases.stop()
        await self.journal_writer.close()
        await self.layer.close_pools()

    async def ready(self) -> None:
        if self._opened is None:
            self._opened = asyncio.ensure_future(self._open())
        await asyncio.shield(self._opened)

    async def _open(self) -> None:
        self.channel = await self.layer.new_channel()
        self._receiver = asyncio.create_task(self._receive(), name="chatstream channel")
        self.leases = Leases(self.redis, self.layer, self.channel, lost=self.relist)
        self.leases.start()

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
        alive = keys.alive_seconds()
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.hset(keys.meta_key(turn), mapping=meta)  # type: ignore[arg-type]
            pipe.expire(keys.meta_key(turn), alive)
            pipe.hset(keys.generating_key(conversation), turn, relay.prepared.answer_position)
            pipe.expire(keys.generating_key(conversation), alive)
            assert self.leases is not None  # ready() made them
            self.leases.take(pipe, turn, relay)
            await pipe.execute()

    async def publish(self, relay: AnswerRelay) -> None:
        """Follow the answer (without keeping it alive) into its journal, and
        out to the group while readers elsewhere follow it. While a write is
        on its way, text gathers, so a busy Redis gets fewer, longer entries
        rather than falling behind. A write that fails (Redis down) does not
        end it: the answer goes on, and is written whole again once Redis
        answers (`relist`)."""
        turn = str(relay.turn_id)
        self._published[turn] = relay
        written, refreshed_at, refresh_every = 0, 0.0, keys.alive_seconds() / 4
        try:
            async with aclosing(relay.follow(None, reader=False)) as events:
                async for kind, data, event_id in events:
                    if kind == START:
                        continue  # readers elsewhere make it from the hash
                    entry: dict[str | bytes, str | int] = {
                        "k": kind,
                        "s": written,
                        "e": event_id,
                        "d": data if kind in OUTPUT_EVENTS else _json(data),
                    }
                    written = event_id
                    refreshed_at = await self._send(turn, kind, entry, refreshed_at, refresh_every)
                    relay.readers.journaled(None if turn in self._unlisted else event_id)
        except Exception:
            logger.exception("could not journal answer trace_id=%s turn=%s", relay.trace_id, turn)
        finally:
            relay.readers.journaled(None)  # whatever ended the journal, readers here go on
            self._remote_readers.pop(turn, None)
            self._published.pop(turn, None)
            self._unlisted.discard(turn)
            await self._forget(relay)

    async def _send(self, turn: str, kind: str, entry: dict, refreshed_at: float, refresh_every: float) -> float:
        """One entry to the journal and, if anyone elsewhere reads, the group;
        the answer's keys' expiry pushed back now and then (`refresh_every`
        seconds, a quarter of their life), not at every entry."""
        try:
            if turn in self._unlisted:
                await self.relist(turn)  # the journal now holds this entry's output too
            now = asyncio.get_running_loop().time()
            refresh = now - refreshed_at >= refresh_every
            await self.journal_writer.write(turn, entry, refresh=refresh)
            refreshed_at = now if refresh else refreshed_at
            # Output goes out live only while someone elsewhere reads; the end
            # always does (a Stop elsewhere waits for it). A reader that
            # missed some takes them from the journal.
            if kind not in OUTPUT_EVENTS or self._remote_readers[turn]:
                await self.layer.group_send(keys.group(turn), {"type": "answer.event", "turn": turn, **entry})
        except Exception as exc:  # Redis's failure, or an unexpected one on the way
            # The answer goes on, written whole again at its next event: a
            # publisher that gave up would take the answer's keys out of Redis
            # while it lives, and readers elsewhere would call it lost.
            redis_trouble("journaling an answer", exc)
            self._unlisted.add(turn)
        return refreshed_at

    async def relist(self, turn: str) -> None:
        """Write an answer generated here to Redis again, whole: its hash,
        listing, lease and journal (all of its output so far, which readers'
        cursors take without repeats). Redis lost them: it restarted empty, or
        was down while the answer went on."""
        relay = self._published.get(turn)
        if relay is None:
            return  # it ended meanwhile
        self._unlisted.add(turn)
        await self.announce(relay)
        start, maxlen = 0, conf.CHATSTREAM_JOURNAL_MAX_ENTRIES
        async with self.redis.pipeline(transaction=False) as pipe:
            for kind, text, end in relay.readers.output.since(0):
                pipe.xadd(keys.journal_key(turn), {"k": kind, "s": start, "e": end, "d": text}, maxlen=maxlen)
                start = end
            pipe.expire(keys.journal_key(turn), keys.alive_seconds())
            await pipe.execute()
        self._unlisted.discard(turn)
        logger.warning("wrote answer turn=%s to Redis again (%d characters so far)", turn, start)

    async def _forget(self, relay: AnswerRelay) -> None:
        """The answer is saved: new readers go to its row."""
        turn = str(relay.turn_id)
        with contextlib.suppress(RedisError, OSError):
            async with self.redis.pipeline(transaction=False) as pipe:
                pipe.delete(keys.meta_key(turn))
                pipe.hdel(keys.generating_key(str(relay.prepared.conversation_id)), turn)
                pipe.expire(keys.journal_key(turn), KEEP_AFTER_END_SECONDS)
                if self.leases is not None:
                    self.leases.give_back(pipe, turn)
                await pipe.execute()

    # --- the reading side -----------------------------------------------------

    async def subscribe(self, turn: str) -> Inbox:
        inbox = Inbox()
        self._inboxes.setdefault(turn, set()).add(inbox)
        await self.layer.group_add(keys.group(turn), self.channel)
        return inbox

    async def rejoin(self, turn: str) -> None:
        await self.layer.group_add(keys.group(turn), self.channel)

    async def unsubscribe(self, turn: str, inbox: Inbox) -> None:
        inboxes = self._inboxes.get(turn, set())
        inboxes.discard(inbox)
        if not inboxes:
            self._inboxes.pop(turn, None)
            with contextlib.suppress(RedisError, OSError):
                await self.layer.group_discard(keys.group(turn), self.channel)

    async def journal(self, turn: str) -> list[dict[str, str]]:
        entries = await self.redis.xrange(keys.journal_key(turn))
        return [fields for _, fields in entries or ()]  # type: ignore[misc]

    async def tell(self, channel: str, kind: str, turn: str, **fields: str) -> None:
        """A control message to the process generating `turn`. A cancel or a
        decision is sent once more if the first send fails: after a Redis
        restart the layer's pool may hand out a connection Redis has closed,
        and the message would be lost (sending either twice does no harm; a
        reader's coming or going, counted, is not sent twice)."""
        message = {"type": kind, "turn": turn, **fields}
        for attempt in range(2 if kind in _IDEMPOTENT else 1):
            try:
                await self.layer.send(channel, message)
                return
            except (ChannelFull, RedisError, OSError):
                logger.exception("could not send %s turn=%s (attempt %d)", kind, turn, attempt + 1)

    # --- this process's channel -------------------------------------------------

    async def _receive(self) -> None:
        while True:
            try:
                message = await self.layer.receive(self.channel)
            except Exception as exc:
                redis_trouble("receiving on the channel layer (retried each second)", exc)
                await asyncio.sleep(1.0)
                await self._rejoin_all()
                continue
            self._dispatch(message)

    async def _rejoin_all(self) -> None:
        """Join the groups of the answers read here again: Redis may have come
        back empty, without them."""
        with contextlib.suppress(RedisError, OSError):
            for turn in list(self._inboxes):
                await self.rejoin(turn)

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
        elif kind == "answer.decided":
            relay.decision_written(message["call"])
        elif kind == "answer.follow":
            self._remote_readers[turn] += 1
            relay.attach()
        elif kind == "answer.release":
            self._remote_readers[turn] = max(0, self._remote_readers[turn] - 1)
            relay.detach()
            relay.release()


def _json(data: Any) -> str:
    return orjson.dumps(data).decode()
