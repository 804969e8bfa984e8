"""Any OpenAI-compatible `/chat/completions` stream: OpenAI, vLLM, Ollama,
llama.cpp, LiteLLM.

httpx with httpx-sse was chosen over the official SDK by measurement
(bench/clients.py): it parses each upstream event once, with less CPU per
relayed token. Library errors are mapped to chatstream's at this edge.
"""

import asyncio
import weakref
from collections.abc import AsyncGenerator

import httpx
import orjson
from httpx_sse import EventSource, SSEError

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

# OpenAI's finish reasons mapped onto the turn's; tool calls end a text answer.
FINISH_REASONS = {
    "stop": "stop",
    "length": "length",
    "content_filter": "content_filter",
    "tool_calls": "stop",
    "function_call": "stop",
}

# One client, and so one connection pool, per event loop: a client's pooled
# connections belong to the loop that opened them.
_clients: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, httpx.AsyncClient]" = weakref.WeakKeyDictionary()


def shared_client() -> httpx.AsyncClient:
    loop = asyncio.get_running_loop()
    client = _clients.get(loop)
    if client is None:
        client = httpx.AsyncClient(
            # Read timeouts are the relay's (first token, idle), not httpx's.
            timeout=httpx.Timeout(connect=10.0, read=None, write=10.0, pool=10.0),
            limits=httpx.Limits(max_connections=None, max_keepalive_connections=200),
        )
        _clients[loop] = client
    return client


async def close_shared_client() -> None:
    """Close this loop's client (at shutdown, and between tests' loops)."""
    client = _clients.pop(asyncio.get_running_loop(), None)
    if client is not None:
        await client.aclose()


def _parse_retry_after(value: str | None) -> float | None:
    try:
        return max(0.0, float(value)) if value else None
    except ValueError:
        return None  # an HTTP date: rare from model servers, not worth parsing


async def _error_for_status(response: httpx.Response) -> UpstreamError:
    body = (await response.aread())[:2000]
    try:
        detail = orjson.loads(body)["error"]["message"]
    except (orjson.JSONDecodeError, KeyError, TypeError):
        detail = body.decode(errors="replace").strip() or response.reason_phrase
    message = f"The model server answered {response.status_code}: {detail}"
    if response.status_code == 429:
        return UpstreamRateLimited(message, retry_after=_parse_retry_after(response.headers.get("Retry-After")))
    return UpstreamStatusError(message, status=response.status_code)


def _read_chunk(data: str, completion: Completion) -> str | None:
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


class OpenAIProvider(Provider):
    name = "openai"

    def __init__(self, *, model: str, base_url: str, api_key: str) -> None:
        super().__init__(model=model)
        self.url = base_url.rstrip("/") + "/chat/completions"
        self.headers = {"Accept": "text/event-stream"}
        if api_key:
            self.headers["Authorization"] = f"Bearer {api_key}"

    @classmethod
    def from_settings(cls) -> "OpenAIProvider":
        return cls(model=conf.LLM_MODEL, base_url=conf.LLM_BASE_URL, api_key=conf.LLM_API_KEY)

    def _body(self, messages: list[Message]) -> bytes:
        return orjson.dumps(
            {
                "model": self.model,
                "messages": messages,
                "stream": True,
                "stream_options": {"include_usage": True},
            }
        )

    async def stream(self, messages: list[Message], completion: Completion) -> AsyncGenerator[str, None]:
        request = shared_client().build_request(
            "POST", self.url, content=self._body(messages), headers={**self.headers, "Content-Type": "application/json"}
        )
        try:
            response = await shared_client().send(request, stream=True)
        except httpx.HTTPError as exc:
            raise UpstreamUnavailable(f"Could not reach the model server at {self.url}: {exc!r}") from exc
        try:
            if response.is_error:
                raise await _error_for_status(response)
            async for text in self._texts(response, completion):
                yield text
        finally:
            # Closing an unfinished response drops its connection: this is
            # what tells the model server to stop generating on cancel.
            await response.aclose()
        if completion.finish_reason is None:
            raise UpstreamIncomplete("The model's stream ended before it gave a finish reason.")

    async def _texts(self, response: httpx.Response, completion: Completion) -> AsyncGenerator[str, None]:
        try:
            async for event in EventSource(response).aiter_sse():
                if event.data == "[DONE]":
                    return
                try:
                    text = _read_chunk(event.data, completion)
                except (orjson.JSONDecodeError, AttributeError, TypeError, IndexError):
                    completion.malformed_chunks += 1  # skipped and counted; the stream goes on
                    continue
                if text:
                    yield text
        except SSEError as exc:
            raise UpstreamProtocolError(f"The model server did not send an event stream: {exc}") from exc
        except httpx.HTTPError as exc:
            if completion.finish_reason is not None:
                return  # the answer was complete; only the trailer was lost
            raise UpstreamIncomplete(f"The model's stream was cut: {exc!r}") from exc
