"""The answer's output and everyone reading it.

The generation task appends output; each reader (the request that started
the answer, a resume, a second tab, the Redis journal's publisher) follows
from its own place and gets everything produced since its last event in one
event of each kind (one delta, say, or some reasoning then a delta).
A reader that falls behind makes the task wait: past MAX_BACKLOG_CHARS of
text not yet taken, the task stops reading the upstream, so TCP pushes back
on the model server and a stalled client cannot make the process buffer
without bound.

Readers hear of new output at most once a frame (CHATSTREAM_FRAME_SECONDS):
output that comes within a frame of the last news waits for the frame's end
and goes out with whatever else came meanwhile. No screen redraws faster, and
a model that streams 1,000 tokens a second would otherwise cost an event, an
encode and a write per token per reader. The first output, and output slower
than a frame, go out at once.

With Redis, the readers in this process are given only what the answer's
journal holds (`hold_until_journaled`, then `journaled` after each write):
killed with -9, the process leaves in Redis everything its own clients saw,
and the process that saves the answer saves at least that. A write that
fails lifts the hold (the answer goes on without Redis, as before).
"""

import asyncio
import time
from collections.abc import AsyncGenerator, Callable

from ..providers.kinds import TEXT
from .events import HEARTBEAT, Event
from .output import Output, Segment
from .watchdog import Watchdog

# Text the model produced that no reader has taken yet, before the task waits.
MAX_BACKLOG_CHARS = 256 * 1024
# Output held for the frame's end goes out at once past this much: a burst
# held whole would make events as large as the backlog allows.
MAX_FRAME_CHARS = 64 * 1024


class Readers:
    __slots__ = (
        "output",
        "followers",
        "_here",
        "_start",
        "_on_attach",
        "_final",
        "_delivered",
        "_waiting",
        "_publisher_waiting",
        "_producer_waiter",
        "_frame",
        "_news_at",
        "_news_due",
        "_news_length",
        "_journaled",
    )

    def __init__(self, *, start: Event, on_attach: Callable[[], None], frame: float = 0.0) -> None:
        self.output = Output()
        self.followers = 0  # readers that keep the answer alive
        self._here = 0  # those of them in this process (the rest read through Redis)
        self._start = start
        self._on_attach = on_attach  # a reader came (or came back)
        self._final: Event | None = None  # set once the turn is saved
        self._delivered = 0  # characters the furthest reader has taken
        self._waiting: list[asyncio.Future] = []  # readers waiting for news
        self._publisher_waiting: list[asyncio.Future] = []  # the journal's publisher (a follower, not a reader)
        self._producer_waiter: asyncio.Future | None = None
        self._frame = frame
        self._news_at = float("-inf")  # when the readers last heard of output
        self._news_due: asyncio.TimerHandle | None = None  # the frame's end, when output waits for it
        self._news_length = 0  # the output's length the readers last heard of
        self._journaled: int | None = None  # with a journal: the output it holds, all readers here may have

    @property
    def length(self) -> int:
        """Characters produced so far: the event ids."""
        return self.output.length

    @property
    def ended(self) -> bool:
        return self._final is not None

    @property
    def producer_waiting(self) -> bool:
        """Is the generation task waiting for a reader to catch up?"""
        return self._producer_waiter is not None

    # --- the producer's side ----------------------------------------------------

    def append(self, text: str, kind: str = TEXT) -> None:
        self.output.append(text, kind)
        if self.output.length - self._news_length >= MAX_FRAME_CHARS:
            self._news_now()
        elif self._news_due is not None:
            return  # goes out at the frame's end with the rest
        elif (now := time.monotonic()) - self._news_at >= self._frame:
            self._news_now(now)
        else:
            self._news_due = asyncio.get_running_loop().call_later(self._news_at + self._frame - now, self._news_now)

    def _news_now(self, now: float | None = None) -> None:
        if self._news_due is not None:
            self._news_due.cancel()
            self._news_due = None
        self._news_at, self._news_length = now or time.monotonic(), self.output.length
        if self._journaled is None:
            self.wake()
        else:  # readers here see it once journaled (then `journaled` wakes them): one wake per event, not two
            self._wake(self._publisher_waiting)
            self._publisher_waiting = []

    def behind(self) -> bool:
        return self.length - self._delivered > MAX_BACKLOG_CHARS

    async def wait_for_reader(self) -> None:
        self._producer_waiter = asyncio.get_running_loop().create_future()
        try:
            await self._producer_waiter
        finally:
            self._producer_waiter = None

    def hold_until_journaled(self) -> None:
        """From now on, readers here get only what the journal holds."""
        self._journaled = 0

    def journaled(self, length: int | None) -> None:
        """The journal holds the first `length` characters (None: the hold
        is lifted, the journal cannot be written)."""
        self._journaled = None if length is None else max(length, self._journaled or 0)
        self.wake()

    def _visible(self, reader: bool) -> int:
        """How far a follower may read: a client's reader, as far as the journal holds."""
        if not reader or self._journaled is None or self._final is not None:
            return self.length
        return min(self.length, self._journaled)

    def end(self, final: Event) -> None:
        """The turn is saved: every reader gets the rest, then `final`."""
        self._final = final
        # Nothing is left to tell the relay, and so its answer is freed by
        # reference counting when it goes, not by the cycle collector later.
        self._on_attach = _nothing
        if self._news_due is not None:  # the rest goes out now, with the final event
            self._news_due.cancel()
            self._news_due = None
        self.wake()

    def wake(self) -> None:
        waiting, self._waiting = self._waiting, []
        self._wake(waiting)
        self._wake(self._publisher_waiting)
        self._publisher_waiting = []

    @staticmethod
    def _wake(waiting: list[asyncio.Future]) -> None:
        for waiter in waiting:
            if not waiter.done():  # a cancelled reader's
                waiter.set_result(None)

    # --- the readers' side --------------------------------------------------------

    def attach(self) -> None:
        """One more reader (here, or in another process through Redis)."""
        self.followers += 1
        self._on_attach()

    def detach(self) -> None:
        """A reader in another process has gone."""
        self.followers = max(0, self.followers - 1)

    async def follow(
        self, heartbeat: float | None, after: int = 0, *, reader: bool = True
    ) -> AsyncGenerator[Event, None]:
        """`start` (for a reader from the beginning), then output events that
        carry everything produced since the last ones (or since character `after`,
        for a reader resuming), heartbeats after `heartbeat` seconds of
        silence (none if None), and `done` or `error` once saved. A follower
        that is not a client's `reader` (the Redis journal's publisher) does
        not keep the answer alive."""
        if not after:
            yield self._start
        beat_due = False

        def beat() -> None:
            nonlocal beat_due
            beat_due = True
            self.wake()

        quiet = Watchdog(heartbeat, beat) if heartbeat is not None else None
        sent = min(after, self.length)
        if reader:
            self._here += 1
            self.attach()
        try:
            while True:
                if sent < (visible := self._visible(reader)):
                    segments = self.output.since(sent)
                    if visible < self.length:
                        segments = _up_to(segments, visible)
                    sent = visible
                    # The journal's publisher (not a reader) takes everything
                    # at once: it paces the model only while it stands for
                    # readers in other processes, so a stalled client here
                    # still holds the model back (and is given up on).
                    if reader or self.followers > self._here:
                        self._delivered = max(self._delivered, sent)
                        self._wake_producer()
                    if quiet is not None:
                        quiet.touch()
                    for segment in segments:
                        yield segment
                elif self._final is not None:
                    yield self._final
                    return
                elif beat_due:
                    beat_due = False
                    yield HEARTBEAT, None, self.length
                else:
                    await self._wait_for_news(reader)
        finally:
            if reader:
                self.followers -= 1
                self._here -= 1
            if quiet is not None:
                quiet.cancel()

    async def _wait_for_news(self, reader: bool = True) -> None:
        """Wait for text, the end, or a heartbeat that is due. Each reader
        waits on a future of its own, so cancelling one touches no other."""
        waiter = asyncio.get_running_loop().create_future()
        (self._waiting if reader else self._publisher_waiting).append(waiter)
        await waiter

    def _wake_producer(self) -> None:
        if self._producer_waiter is not None and not self._producer_waiter.done():
            self._producer_waiter.set_result(None)


def _up_to(segments: list[Segment], length: int) -> list[Segment]:
    """The segments cut at character `length` (the journal's entries end
    where segments ended, so a tool call or a result is never cut)."""
    kept: list[Segment] = []
    for kind, text, end in segments:
        start = end - len(text)
        if start >= length:
            break
        kept.append((kind, text[: length - start], min(end, length)))
    return kept


def _nothing() -> None:
    pass
