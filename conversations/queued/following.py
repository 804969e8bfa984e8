"""A queued message's answer followed from before it starts
(GET api/turns/<answer id>/events): the stream opens at once and gets
heartbeats while the message waits, then the answer's events from its
`start`, as any reader of it would. A message cancelled while its client
waits ends the stream with an `error` event, `message_cancelled`."""

import asyncio
import time
import uuid
from collections.abc import AsyncGenerator
from contextlib import aclosing

from django.contrib.auth.base_user import AbstractBaseUser

from .. import selectors
from ..live import LiveAnswer
from ..models import QueuedMessage, Turn
from ..storage.threads import run_db
from ..stream.events import ERROR, HEARTBEAT, Event, FinishReason, saved_events
from . import rows, starting

# How often a waiting reader looks for its answer, and how often it also
# tries to start it (an end it missed: a restart, a process gone).
LOOK_SECONDS, START_SECONDS = 0.2, 2.0
CANCELLED = {
    "code": "message_cancelled",
    "message": "The queued message was cancelled before its answer started.",
    "finish_reason": FinishReason.ERROR,
}


class QueuedAnswer:
    """A LiveAnswer for a message still queued: follows it through the wait,
    then behaves as the answer it becomes."""

    def __init__(self, *, owner: AbstractBaseUser, queued: QueuedMessage) -> None:
        self._owner = owner
        self.turn_id: uuid.UUID = queued.answer_id
        self.owner_id: int = owner.pk
        self.trace_id: str = queued.trace_id
        self._conversation_id = queued.conversation_id
        self._answer: LiveAnswer | None = None

    async def follow(self, heartbeat: float | None, after: int = 0) -> AsyncGenerator[Event, None]:
        beat_at = started_at = time.monotonic()
        while (answer := await selectors.find_answer(owner=self._owner, turn_id=self.turn_id)) is None:
            if not await run_db(self._still_asked):
                yield ERROR, CANCELLED, after
                return
            await asyncio.sleep(LOOK_SECONDS)
            now = time.monotonic()
            if now - started_at >= START_SECONDS:
                started_at = now
                starting.start_next_soon(self._conversation_id)
            if heartbeat is not None and now - beat_at >= heartbeat:
                beat_at = now
                yield HEARTBEAT, None, after
        if isinstance(answer, Turn):  # it started and ended between two looks
            for event in saved_events(answer, after):
                yield event
            return
        self._answer = answer
        async with aclosing(answer.follow(heartbeat, after)) as events:
            async for event in events:
                yield event

    def _still_asked(self) -> bool:
        """Queued still, or started: its question waits for the answer (which a moment later can be found)."""
        return rows.waiting(owner=self._owner, answer_id=self.turn_id) is not None or selectors.answer_awaited(
            owner=self._owner, turn_id=self.turn_id
        )

    async def close(self) -> None:
        if self._answer is not None:
            await self._answer.close()

    def release_threadsafe(self) -> None:
        if self._answer is not None:
            self._answer.release_threadsafe()

    async def stop(self) -> None:
        if self._answer is not None:
            await self._answer.stop()

    async def decided(self, call_id: str) -> None:
        if self._answer is not None:
            await self._answer.decided(call_id)
