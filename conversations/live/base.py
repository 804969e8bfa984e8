"""The interface views and services use to find an answer being generated.

What a lookup gives back is a `LiveAnswer`: an AnswerRelay when the answer
runs in this process, a RemoteAnswer (remote.py) when it runs in another.
Both follow, release and stop the same way.
"""

import uuid
from collections.abc import AsyncGenerator
from typing import TYPE_CHECKING, Any, Protocol

from ..stream.events import Event

if TYPE_CHECKING:
    from ..stream.relay import AnswerRelay


class LiveAnswer(Protocol):
    @property
    def turn_id(self) -> uuid.UUID: ...

    @property
    def owner_id(self) -> int: ...

    @property
    def trace_id(self) -> str: ...

    def follow(self, heartbeat: float | None, after: int = 0) -> AsyncGenerator[Event, None]: ...

    async def close(self) -> None:
        """The response that followed this answer has ended."""

    def release_threadsafe(self) -> None:
        """`close` from another thread, without waiting."""

    async def stop(self) -> None:
        """Cancel the model call and wait until the turn is saved."""

    async def decided(self, call_id: str) -> None:
        """A decision on one of its tool calls is in the database: wake its wait."""


class LiveAnswers(Protocol):
    async def publish(self, relay: "AnswerRelay") -> None:
        """Make a started answer findable beyond this process."""

    async def find(self, turn_id: uuid.UUID) -> LiveAnswer | None: ...

    async def generating_in(self, conversation_id: uuid.UUID) -> list[dict[str, Any]]:
        """The answers still being generated in a conversation, oldest first:
        {"turn_id", "position"} each."""
        ...
