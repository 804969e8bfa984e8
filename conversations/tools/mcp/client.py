"""The edge with the official `mcp` SDK: listing a server's tools and calling
one, over streamable HTTP. The SDK's errors stop here: what goes on is a
result's text, or McpUnreachable / ToolCallFailed with a plain message.

Each listing and each call opens its own session (`mcp.Client`: the
handshake, the request, the session closed), a few milliseconds on a
nearby server. A session kept open would belong to one event loop and
need reconnecting after a server restart; tool calls are few.
"""

import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any

import httpx2
import mcp
import orjson
from mcp.client.streamable_http import streamable_http_client

from ...exceptions import McpUnreachable, ToolCallFailed
from .servers import McpServer

logger = logging.getLogger(__name__)

LIST_PAGES = 20  # a listing follows this many pages at most
CONNECT_SECONDS = 10.0  # the HTTP client's own bounds; the caller's timeout is usually shorter
READ_SECONDS = 300.0


async def list_tools(server: McpServer) -> list[mcp.types.Tool]:
    """Every tool the server lists (all its pages)."""
    tools: list[mcp.types.Tool] = []
    async with _session(server) as client:
        cursor = None
        for _ in range(LIST_PAGES):
            page = await client.list_tools(cursor=cursor)
            tools.extend(page.tools)
            cursor = page.next_cursor
            if cursor is None:
                break
    return tools


async def call_tool(server: McpServer, remote: str, arguments: dict[str, Any]) -> str:
    """The text of the call's result; ToolCallFailed for the tool's own error
    (`isError`), McpUnreachable when the server could not be asked."""
    async with _session(server) as client:
        result = await client.call_tool(remote, arguments)
    text = result_text(result)
    if result.is_error:
        raise ToolCallFailed(text or f"The MCP tool {remote!r} failed.")
    return text


def result_text(result: mcp.types.CallToolResult) -> str:
    """What the model reads: the text blocks joined; the structured content as
    JSON when there is no text (servers usually send both, the text being
    its JSON); a note for each block that is not text."""
    texts = [block.text for block in result.content if isinstance(block, mcp.types.TextContent)]
    if texts:
        return "\n".join(texts)
    if result.structured_content is not None:
        return orjson.dumps(result.structured_content).decode()
    return "\n".join(f"[{block.type} content, not shown]" for block in result.content)


@contextlib.asynccontextmanager
async def _session(server: McpServer) -> AsyncIterator[mcp.Client]:
    try:
        async with (
            _http_client(server) as http,
            mcp.Client(streamable_http_client(server.url, http_client=http), cache=None) as client,
        ):
            yield client
    except Exception as exc:
        raise _mapped(server, exc) from None


def _http_client(server: McpServer) -> httpx2.AsyncClient:
    # The SDK's own client would be made without the server's headers.
    return httpx2.AsyncClient(headers=server.headers(), timeout=httpx2.Timeout(CONNECT_SECONDS, read=READ_SECONDS))


def _mapped(server: McpServer, exc: Exception) -> ToolCallFailed:
    """The SDK's error (often inside its exception groups) as the model is told it."""
    cause = _first(exc)
    if isinstance(cause, mcp.MCPError):  # the server answered, with a JSON-RPC error
        return ToolCallFailed(f"The MCP server {server.name!r} refused the request: {cause.error.message}")
    # Refused, reset, DNS, an HTTP error status, something that is not MCP, headers that cannot be read.
    logger.warning("MCP server %s (%s) could not be reached: %s", server.name, server.url, cause)
    if isinstance(cause, McpUnreachable):
        return cause
    return McpUnreachable(f"The MCP server {server.name!r} could not be reached.")


def _first(exc: BaseException) -> BaseException:
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    return exc
