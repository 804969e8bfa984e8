"""Any OpenAI-compatible `/chat/completions` stream: OpenAI, vLLM, Ollama,
llama.cpp, LiteLLM.

The HTTP client is aiohttp, chosen by measurement (bench/clients.py): reading
the same streams, it spends 2.6x less CPU per token than httpx with httpx-sse
and about 7x less than the official SDK. Each network read is parsed once
(sse_parser.py) and its text handed on in one piece. Library errors are mapped
to chatstream's at this edge.
"""

import asyncio
import weakref
from collections.abc import AsyncGenerator

import aiohttp
import orjson

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
from .sse_parser import SSEParser

# OpenAI's finish reasons mapped onto the turn's; tool calls end a text answer.
FINISH_REASONS = {
    "stop": "stop",
    "length": "length",
    "content_filter": "content_filter",
    "tool_calls": "stop",
    "function_call": "stop",
}
DONE = b"[DONE]"
COMPLETE_TIMEOUT_SECONDS = 120  # a whole non-streamed answer (memory updates)

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
    body = await response.content.read(2000)
    try:
        detail = str(orjson.loads(body)["error"]["message"])
    except (orjson.JSONDecodeError, KeyError, TypeError):
        detail = body.decode(errors="replace").strip() or response.reason or ""
    if api_key:
        # Some servers repeat the key they refused; this text reaches the
        # client, the turn and the logs.
        detail = detail.replace(api_key, "[API key]")
    message = f"The model server answered {response.status}: {detail}"
    if response.status == 429:
        return UpstreamRateLimited(message, retry_after=_parse_retry_after(response.headers.get("Retry-After")))
    return UpstreamStatusError(message, status=response.status)


def _read_chunk(data: bytes, completion: Completion) -> str | None:
    """The text of one `chat.completion.chunk`; records finish reason and usage."""
    chunk = orjson.loads(data)
    usage = chunk.get("usage")
    if usage:
        completion.tokens_in = usage.get("prompt_tokens")
        completion.tokens_out = usage.get("completion_tokens")
    choices = chunk.get("choices")
    if not choices:
        return None
    choice = choices[0]
    reason = choice.get("finish_reason")
    if reason:
        completion.finish_reason = FINISH_REASONS.get(reason, "stop")
    return (choice.get("delta") or {}).get("content")


def _texts_of(events: list[tuple[bytes, bytes]], completion: Completion) -> str:
    """The text of all events of one network read, joined."""
    texts = []
    for _, data in events:
        if data == DONE:
            continue
        try:
            text = _read_chunk(data, completion)
        except (orjson.JSONDecodeError, AttributeError, TypeError, IndexError):
            completion.malformed_chunks += 1  # skipped and counted; the stream goes on
            continue
        if text:
            completion.deltas += 1
            texts.append(text)
    return "".join(texts)


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

    def _body(self, messages: list[Message], model: str) -> bytes:
        return orjson.dumps(
            {"model": model, "messages": messages, "stream": True, "stream_options": {"include_usage": True}}
        )

    async def stream(self, messages: list[Message], completion: Completion) -> AsyncGenerator[str, None]:
        try:
            response = await shared_session().post(
                self.url, data=self._body(messages, completion.model), headers=self.headers
            )
        except aiohttp.ClientError as exc:
            raise UpstreamUnavailable(f"Could not reach the model server at {self.url}: {exc!r}") from exc
        try:
            if response.status >= 400:
                raise await _error_for_status(response, self.api_key)
            if response.content_type != "text/event-stream":
                raise UpstreamProtocolError(f"The model server sent {response.content_type!r}, not an event stream.")
            async for text in self._texts(response, completion):
                yield text
        finally:
            # A response read to its end goes back to the pool. Closing an
            # unfinished one drops its connection: on cancel, that is what
            # tells the model server to stop generating.
            if response.content.at_eof():
                response.release()
            else:
                response.close()
        if completion.finish_reason is None:
            raise UpstreamIncomplete("The model's stream ended before it gave a finish reason.")

    async def complete(self, messages: list[Message], *, model: str) -> str:
        """A non-streamed answer, for background work (the memory). Its own
        session: the worker calls it from a short-lived event loop."""
        body = orjson.dumps({"model": model, "messages": messages, "stream": False})
        headers = {**self.headers, "Accept": "application/json"}
        timeout = aiohttp.ClientTimeout(total=COMPLETE_TIMEOUT_SECONDS, sock_connect=10)
        try:
            async with (
                aiohttp.ClientSession(timeout=timeout) as session,
                session.post(self.url, data=body, headers=headers) as response,
            ):
                if response.status >= 400:
                    raise await _error_for_status(response, self.api_key)
                payload = await response.read()
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise UpstreamUnavailable(f"Could not get an answer from {self.url}: {exc!r}") from exc
        try:
            return orjson.loads(payload)["choices"][0]["message"]["content"] or ""
        except (orjson.JSONDecodeError, KeyError, IndexError, TypeError) as exc:
            raise UpstreamProtocolError(f"The model server sent no chat completion: {payload[:200]!r}") from exc

    async def _texts(self, response: aiohttp.ClientResponse, completion: Completion) -> AsyncGenerator[str, None]:
        parser = SSEParser()
        try:
            async for chunk in response.content.iter_any():
                text = _texts_of(parser.feed(chunk), completion)
                if text:
                    yield text
        except aiohttp.ClientError as exc:
            if completion.finish_reason is not None:
                return  # the answer was complete; only the trailer was lost
            raise UpstreamIncomplete(f"The model's stream was cut: {exc!r}") from exc
