"""Answers being generated, wherever they run: one interface, two
implementations, chosen by REDIS_URL.

- `LocalAnswers` (the default): this process's registry. One process needs
  nothing else: a resume, a second tab or a Stop finds the answer in memory.
- `RedisAnswers` (conversations/redis_answers.py): the same, across
  processes. Each answer's events also go to a journal in Redis Streams and
  out over the Channels layer, so any process can replay, follow or cancel an
  answer that another one is generating.

What a view gets back is a `LiveAnswer`: an AnswerRelay when the answer runs
here, a RemoteAnswer when it runs elsewhere. Both follow, release and stop
the same way.
"""

import functools
import uuid
from collections.abc import AsyncGenerator
from typing import Any, Protocol

from . import registry
from .conf import conf
from .relay import AnswerRelay


class LiveAnswer(Protocol):
    @property
    def turn_id(self) -> uuid.UUID: ...

    @property
    def owner_id(self) -> int: ...

    @property
    def trace_id(self) -> str: ...

    def follow(self, heartbeat: float | None, after: int = 0) -> AsyncGenerator[tuple[str, Any, int], None]: ...

    async def close(self) -> None:
        """The response that followed this answer has ended."""

    def release_threadsafe(self) -> None:
        """`close` from another thread, without waiting."""

    async def stop(self) -> None:
        """Cancel the model call and wait until the turn is saved."""


class LocalAnswers:
    async def publish(self, relay: AnswerRelay) -> None:
        """Make a started answer findable beyond this process (nothing to do
        here: `relay.start()` has registered it)."""

    async def find(self, turn_id: uuid.UUID) -> LiveAnswer | None:
        return registry.find(turn_id)

    async def generating_in(self, conversation_id: uuid.UUID) -> list[dict[str, Any]]:
        """The answers still being generated in a conversation, oldest first."""
        relays = sorted(registry.in_conversation(conversation_id), key=lambda relay: relay.prepared.answer_position)
        return [{"turn_id": str(relay.turn_id), "position": relay.prepared.answer_position} for relay in relays]


@functools.cache
def live_answers() -> LocalAnswers:
    if conf.REDIS_URL:
        from .redis_answers import RedisAnswers

        return RedisAnswers()
    return LocalAnswers()
