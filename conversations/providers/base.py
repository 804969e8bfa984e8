from collections.abc import AsyncGenerator
from dataclasses import dataclass
from typing import TypedDict

from ..conf import conf


class Message(TypedDict):
    role: str
    content: str


@dataclass
class Completion:
    """What a provider learns about a call besides its text, filled in as the
    stream goes, so the relay can read it however the stream ended."""

    model: str
    finish_reason: str | None = None
    tokens_in: int | None = None
    tokens_out: int | None = None
    malformed_chunks: int = 0
    deltas: int = 0  # pieces of text received: about one token each in OpenAI-style streams


def estimate_tokens(text: str) -> int:
    """About four characters a token for English text: used only where the
    upstream reports no usage, and the turn is then marked as estimated."""
    return max(1, round(len(text) / 4)) if text else 0


class Provider:
    """Streams one answer, and keeps a conversation's memory. Subclasses
    implement `stream()` and `complete()`."""

    name = "base"

    def __init__(self, *, model: str) -> None:
        self.model = model

    @classmethod
    def from_settings(cls) -> "Provider":
        raise NotImplementedError

    def stream(self, messages: list[Message], completion: Completion) -> AsyncGenerator[str, None]:
        """Yield the answer's text from `completion.model` (the provider's
        model, or a fallback) as it is produced and record the finish
        reason and usage on `completion`. Raise an UpstreamError subclass on
        failure. Closing the iterator (or cancelling the task reading it) must
        release the upstream request at once."""
        raise NotImplementedError

    async def complete(self, messages: list[Message], *, model: str) -> str:
        """One whole (not streamed) answer from `model`. Raise an
        UpstreamError subclass on failure."""
        raise NotImplementedError

    @property
    def memory_model(self) -> str:
        return conf.LLM_MEMORY_MODEL

    async def remember(self, summary: str, facts: list[str], turns: list[Message]) -> tuple[str, list[str]] | None:
        """The memory updated with `turns`, for a provider that keeps it
        without asking a model (the demo). None, the default: the memory
        model is asked through `complete()` (conversations/memory/request.py)."""
        return None
