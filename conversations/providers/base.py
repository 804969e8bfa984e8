from collections.abc import AsyncGenerator
from dataclasses import dataclass, field
from typing import Any, NotRequired, TypedDict

from ..catalogue import ModelEntry
from ..conf import conf
from .estimates import OutputCount, prompt_tokens, text_tokens
from .kinds import TOOL_CALL, Piece
from .think import ThinkSplitter
from .tool_calls import ToolCalls

# A conversation's memory, however it is kept (a memory model's reply, or a
# provider's own `remember`): at most this many facts, a summary this long.
MAX_FACTS = 20
MAX_SUMMARY_CHARS = 4000


class Message(TypedDict):
    role: str
    # "" for an assistant message of tool calls alone; a list of content
    # parts (text, image_url) for a message that sends files or images
    content: str | list[dict[str, Any]]
    tool_calls: NotRequired[list[dict[str, Any]]]  # an assistant's, in OpenAI's shape
    tool_call_id: NotRequired[str]  # a `tool` message: the call it answers


@dataclass
class Completion:
    """What a provider learns about a call besides its text, filled in as the
    stream goes, so the relay can read it however the stream ended."""

    model: str
    finish_reason: str | None = None
    tokens_in: int | None = None
    tokens_out: int | None = None
    tokens_cached: int | None = None  # of tokens_in, read from the server's prompt cache
    tokens_reasoning: int | None = None  # of tokens_out, spent thinking
    usage_reported: bool = False  # the server sent its usage
    responded: bool = False  # the server accepted the call (so it may bill for it)
    malformed_chunks: int = 0
    deltas: int = 0  # chunks with output: about one token each in OpenAI-style streams
    output: OutputCount = field(default_factory=OutputCount)  # what it wrote, for estimates (the relay counts)
    tool_calls: ToolCalls = field(default_factory=ToolCalls)  # fragments being assembled
    think: ThinkSplitter = field(default_factory=ThinkSplitter)  # reasoning inline in the text

    def settle(self, messages: list[Message], reply: str) -> None:
        """A whole call's counts where its server reported none: estimated
        from the text sent and received (a call never accepted has none)."""
        if self.responded and not self.usage_reported:
            self.tokens_in = prompt_tokens(messages)
            self.tokens_out = text_tokens(reply)

    def rest(self) -> list[Piece]:
        """At the stream's end, however it ended: text held back waiting for
        a tag, and tool calls whose arguments never closed."""
        return [*self.think.finish(), *((TOOL_CALL, call) for call in self.tool_calls.rest())]


class Provider:
    """Streams one answer, and keeps a conversation's memory. Subclasses
    implement `stream()` and `complete()`."""

    name = "base"

    def __init__(self, *, model: str) -> None:
        self.model = model
        # More of the request body, given by a client of the OpenAI door
        # (tools, temperature, max_tokens…), for providers that pass it on.
        self.request_options: dict[str, object] = {}

    @classmethod
    def from_settings(cls) -> "Provider":
        raise NotImplementedError

    @classmethod
    def from_entry(cls, entry: ModelEntry) -> "Provider":
        """The provider for one entry of the model catalogue. A provider that
        knows only its settings serves the entry's model from them."""
        provider = cls.from_settings()
        provider.model = entry.model
        return provider

    def stream(self, messages: list[Message], completion: Completion) -> AsyncGenerator[list[Piece], None]:
        """Yield what `completion.model` (the provider's model, or a
        fallback) produces as it is produced, one list of pieces per network
        read (an empty list: the model said something that is not output yet,
        such as a role chunk or part of a tool call, and so is alive), and
        record the finish reason and usage on `completion`. Raise an UpstreamError subclass on
        failure. Closing the iterator (or cancelling the task reading it) must
        release the upstream request at once."""
        raise NotImplementedError

    async def complete(
        self, messages: list[Message], *, model: str, completion: Completion | None = None, max_tokens: int = 0
    ) -> str:
        """One whole (not streamed) answer from `model`, at most `max_tokens`
        long if given; its usage goes on `completion` (what it costs is
        recorded by the caller). Raise an UpstreamError subclass on failure."""
        raise NotImplementedError

    @property
    def memory_model(self) -> str:
        return conf.LLM_MEMORY_MODEL

    async def remember(self, summary: str, facts: list[str], turns: list[Message]) -> tuple[str, list[str]] | None:
        """The memory updated with `turns`, for a provider that keeps it
        without asking a model (the demo). None, the default: the memory
        model is asked through `complete()` (conversations/memory/request.py)."""
        return None
