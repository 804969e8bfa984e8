"""Any OpenAI-compatible `/chat/completions` stream: OpenAI, vLLM, Ollama,
llama.cpp, LiteLLM.

The HTTP client is aiohttp, chosen by measurement (bench/clients.py): reading
the same streams, it spends 2.6x less CPU per token than httpx with httpx-sse
and about 7x less than the official SDK. Each network read is parsed once
(sse_parser.py) and its output handed on in one piece of each kind. Library errors are mapped
to chatstream's at this edge.
"""

import asyncio
import weakref
from collections.abc import AsyncGenerator
from typing import Any

import aiohttp
import orjson

from ..catalogue import ModelEntry
from ..conf import conf
from ..exceptions import (
    UpstreamError,
    UpstreamIncomplete,
    UpstreamProtocolError,
    UpstreamRateLimited,
    UpstreamStatusError,
    UpstreamUnavailable,
)
from .base import Completion, Message, Provider
from .kinds import REASONING, REFUSAL, TEXT, TOOL_CALL, Piece
from .sse_parser import SSEParser

# OpenAI's finish reasons mapped onto the turn's.
FINISH_REASONS = {
    "stop": "stop",
    "length": "length",
    "content_filter": "content_filter",
    "tool_calls": "tool_calls",
    "function_call": "tool_calls",
}
DONE = b"[DONE]"
COMPLETE_TIMEOUT_SECONDS = 120  # a whole non-streamed answer (memory updates)
MAX_SAID_CHARS = 300  # of a server's own error message, as the client is shown it

# What clients and turns are told; the library's exception goes to the log (UpstreamError.detail).
UNREACHABLE = "The model server could not be reached."
NOT_A_STREAM = "The model server did not answer with an event stream."
NO_COMPLETION = "The model server's answer could not be read."
CUT = "The model server closed the stream before the answer ended."
ENDED_EARLY = "The model server ended the stream before the answer was finished."

# One session, and so one connection pool, per event loop: a session's
# connections belong to the loop that opened them.
_sessions: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, aiohttp.ClientSession]" = weakref.WeakKeyDictionary()


def shared_session() -> aiohttp.ClientSession:
    loop = asyncio.get_running_loop()
    session = _sessions.get(loop)
    if session is None or session.closed:
        session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=0, keepalive_timeout=30),
            # Read timeouts are the relay's (first token, idle), not aiohttp's.
            timeout=aiohttp.ClientTimeout(total=None, sock_connect=10),
        )
        _sessions[loop] = session
    return session


async def close_shared_session() -> None:
    """Close this loop's session (at shutdown, and between tests' loops)."""
    session = _sessions.pop(asyncio.get_running_loop(), None)
    if session is not None:
        await session.close()


def _parse_retry_after(value: str | None) -> float | None:
    try:
        return max(0.0, float(value)) if value else None
    except ValueError:
        return None  # an HTTP date: rare from model servers, not worth parsing


async def _error_for_status(response: aiohttp.ClientResponse, api_key: str) -> UpstreamError:
    """The server's own error message, written for API clients, reaches the
    client and the turn; any other body (an HTML page, a proxy's trace)
    only the log."""
    body = (await response.content.read(2000)).decode(errors="replace").strip()
    try:
        said = str(orjson.loads(body)["error"]["message"]).strip()[:MAX_SAID_CHARS]
    except (orjson.JSONDecodeError, KeyError, TypeError):
        said = ""
    if api_key:
        # Some servers repeat the key they refused: never in the client's text, nor the log.
        said, body = said.replace(api_key, "[API key]"), body.replace(api_key, "[API key]")
    status = response.status
    message = f"The model server answered {status}: {said}" if said else f"The model server answered {status}."
    if status == 429:
        retry_after = _parse_retry_after(response.headers.get("Retry-After"))
        return UpstreamRateLimited(message, retry_after=retry_after, detail=body)
    return UpstreamStatusError(message, status=status, detail=body)


class ChunkReader:
    """Reads one call's `chat.completion.chunk` events into pieces of output,
    and what else they say into the call's Completion.

    Reasoning comes as `delta.reasoning_content` (DeepSeek, llama.cpp, vLLM
    before 0.10), `delta.reasoning` (Ollama's /v1, newer vLLM; some send
    both, with the same text) or inline in the text (think.py)."""

    __slots__ = ("completion",)

    def __init__(self, completion: Completion) -> None:
        self.completion = completion

    def pieces(self, events: list[tuple[bytes, bytes]]) -> list[Piece]:
        """The output of all events of one network read, in order, with
        consecutive pieces of one kind joined."""
        if len(events) == 1:  # most reads: one event, nothing to join
            return self._output(events[0][1])
        runs: list[tuple[str, list[str]]] = []
        for _, data in events:
            for kind, text in self._output(data):
                if runs and runs[-1][0] == kind and kind != TOOL_CALL:
                    runs[-1][1].append(text)
                else:
                    runs.append((kind, [text]))
        return [(kind, texts[0] if len(texts) == 1 else "".join(texts)) for kind, texts in runs]

    def _output(self, data: bytes) -> list[Piece]:
        if data == DONE:
            return []
        try:
            output = self._read(orjson.loads(data))
        except (orjson.JSONDecodeError, AttributeError, TypeError, IndexError):
            self.completion.malformed_chunks += 1  # skipped and counted; the stream goes on
            return []
        if output:
            self.completion.deltas += 1
        return output

    def _read(self, chunk: dict) -> list[Piece]:
        completion = self.completion
        usage = chunk.get("usage")
        if usage:
            _read_usage(usage, completion)
        choices = chunk.get("choices")
        if not choices:
            return []
        choice = choices[0]
        reason = choice.get("finish_reason")
        if reason:
            completion.finish_reason = FINISH_REASONS.get(reason, "stop")
        delta = choice.get("delta")
        if not delta:
            return []
        content = delta.get("content")
        if len(delta) == 1 and content and completion.think.answering:
            return [(TEXT, content)]  # the hot path: answer text alone
        output: list[Piece] = []
        reasoning = delta.get("reasoning_content") or delta.get("reasoning")
        if reasoning and isinstance(reasoning, str):
            output.append((REASONING, reasoning))
        if content:
            output += completion.think.feed(content)
        refusal = delta.get("refusal")
        if refusal and isinstance(refusal, str):
            output.append((REFUSAL, refusal))
        tool_calls = delta.get("tool_calls")
        if tool_calls:
            output += ((TOOL_CALL, call) for call in completion.tool_calls.feed(tool_calls))
        return output


def _read_usage(usage: dict, completion: Completion) -> None:
    """The usage chunk, whole: cached and reasoning tokens decide the bill.
    DeepSeek names its cache hits `prompt_cache_hit_tokens`."""
    completion.usage_reported = True
    completion.tokens_in = usage.get("prompt_tokens")
    completion.tokens_out = usage.get("completion_tokens")
    cached = (usage.get("prompt_tokens_details") or {}).get("cached_tokens")
    completion.tokens_cached = cached if cached is not None else usage.get("prompt_cache_hit_tokens")
    completion.tokens_reasoning = (usage.get("completion_tokens_details") or {}).get("reasoning_tokens")


class OpenAIProvider(Provider):
    name = "openai"

    def __init__(self, *, model: str, base_url: str, api_key: str) -> None:
        super().__init__(model=model)
        self.url = base_url.rstrip("/") + "/chat/completions"
        self.api_key = api_key
        self.headers = {"Accept": "text/event-stream", "Content-Type": "application/json"}
        if api_key:
            self.headers["Authorization"] = f"Bearer {api_key}"

    @classmethod
    def from_settings(cls) -> "OpenAIProvider":
        return cls(model=conf.LLM_MODEL, base_url=conf.LLM_BASE_URL, api_key=conf.LLM_API_KEY)

    @classmethod
    def from_entry(cls, entry: ModelEntry) -> "OpenAIProvider":
        return cls(model=entry.model, base_url=entry.base_url, api_key=entry.api_key)

    def _body(self, messages: list[Message], model: str) -> bytes:
        return orjson.dumps(
            {
                **self.request_options,
                "model": model,
                "messages": messages,
                "stream": True,
                "stream_options": {"include_usage": True},
            }
        )

    async def stream(self, messages: list[Message], completion: Completion) -> AsyncGenerator[list[Piece], None]:
        try:
            response = await shared_session().post(
                self.url, data=self._body(messages, completion.model), headers=self.headers
            )
        except aiohttp.ClientError as exc:
            raise UpstreamUnavailable(UNREACHABLE, detail=f"{self.url}: {exc!r}") from exc
        try:
            if response.status >= 400:
                raise await _error_for_status(response, self.api_key)
            if response.content_type != "text/event-stream":
                raise UpstreamProtocolError(NOT_A_STREAM, detail=f"Content-Type: {response.content_type!r}")
            completion.responded = True
            async for pieces in self._pieces(response, completion):
                yield pieces
        finally:
            # A response read to its end goes back to the pool. Closing an
            # unfinished one drops its connection: on cancel, that is what
            # tells the model server to stop generating.
            if response.content.at_eof():
                response.release()
            else:
                response.close()
        if completion.finish_reason is None:
            skipped = completion.malformed_chunks
            raise UpstreamIncomplete(
                ENDED_EARLY, detail=f"the stream ended without a finish_reason ({skipped} unreadable chunks skipped)"
            )

    async def complete(
        self, messages: list[Message], *, model: str, completion: Completion | None = None, max_tokens: int = 0
    ) -> str:
        """A non-streamed answer, for background work (the memory, the
        router). Its own session: the worker calls it from a short-lived
        event loop."""
        completion = completion or Completion(model=model)
        request: dict[str, Any] = {"model": model, "messages": messages, "stream": False}
        if max_tokens:
            request["max_tokens"] = max_tokens
        body = orjson.dumps(request)
        headers = {**self.headers, "Accept": "application/json"}
        timeout = aiohttp.ClientTimeout(total=COMPLETE_TIMEOUT_SECONDS, sock_connect=10)
        try:
            async with (
                aiohttp.ClientSession(timeout=timeout) as session,
                session.post(self.url, data=body, headers=headers) as response,
            ):
                if response.status >= 400:
                    raise await _error_for_status(response, self.api_key)
                completion.responded = True
                payload = await response.read()
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise UpstreamUnavailable(UNREACHABLE, detail=f"{self.url}: {exc!r}") from exc
        try:
            data = orjson.loads(payload)
            if isinstance(data.get("usage"), dict):
                _read_usage(data["usage"], completion)
            return data["choices"][0]["message"]["content"] or ""
        except (orjson.JSONDecodeError, KeyError, IndexError, TypeError, AttributeError) as exc:
            raise UpstreamProtocolError(NO_COMPLETION, detail=f"not a chat completion: {payload[:200]!r}") from exc

    async def _pieces(
        self, response: aiohttp.ClientResponse, completion: Completion
    ) -> AsyncGenerator[list[Piece], None]:
        parser, reader = SSEParser(max_event_bytes=conf.LLM_MAX_EVENT_BYTES), ChunkReader(completion)
        try:
            async for chunk in response.content.iter_any():
                yield reader.pieces(parser.feed(chunk))
        except aiohttp.ClientError as exc:
            if completion.finish_reason is None:
                raise UpstreamIncomplete(CUT, detail=repr(exc)) from exc
            # The answer was complete; only the trailer was lost.
