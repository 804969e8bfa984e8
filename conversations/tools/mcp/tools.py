"""MCP servers' tools as Tools the loop runs like any other, listed at first
use and kept.

A server is listed the first time an answer (or GET api/models) needs its
tools, and its tools are kept until CHATSTREAM_MCP_SERVERS changes. A server
that cannot be listed (down, too slow, not MCP) has no tools for now, with a
warning in the log, and is asked again no sooner than RELIST_AFTER_SECONDS
later: an answer never waits on a server that was down a moment ago.
"""

import asyncio
import logging
import time
from dataclasses import dataclass, field
from typing import Any

import mcp

from ... import state
from ...exceptions import ToolCallFailed
from ..context import ToolContext
from ..definition import Tool
from .client import call_tool, list_tools
from .servers import McpServer, mcp_servers

logger = logging.getLogger(__name__)

LIST_TIMEOUT_SECONDS = 5.0  # an answer waits this long at most for a listing
RELIST_AFTER_SECONDS = 30.0  # after a listing failed


class McpTool(Tool):
    """One of an MCP server's tools, named `<server>__<tool>`. Its schema is
    the server's `inputSchema`, as given; the arguments go to the server as
    the model wrote them (the server validates them), and the call's result
    comes back as text."""

    def __init__(self, server: McpServer, listed: mcp.types.Tool) -> None:
        self.server = server
        self.remote_name = listed.name
        self.input_schema = listed.input_schema

        # Arguments by any name, even one a Python parameter could not have.
        async def call(**arguments: Any) -> str:
            return await call_tool(server, listed.name, arguments)

        super().__init__(call, name=server.tool_name(listed.name), description=listed.description or "")

    @property
    def parameters(self) -> dict[str, Any]:  # given by the server, not built
        return self.input_schema

    def keyword_arguments(self, arguments: dict[str, Any], context: ToolContext) -> dict[str, Any]:
        return arguments


@dataclass
class Listing:
    """A server's tools as last listed, and when it may be listed again."""

    tools: list[McpTool] = field(default_factory=list)
    listed: bool = False
    retry_at: float = 0.0  # after a failure: time.monotonic() from which it is asked again
    pending: asyncio.Future | None = None  # the listing under way, which answers starting with it await


@state.built_from("CHATSTREAM_MCP_SERVERS")
def _listings() -> dict[str, Listing]:
    return {}


def listed_tools() -> dict[str, McpTool]:
    """The MCP tools listed so far, by name, in the servers' order; none is
    listed here (no network): `list_servers()` does that."""
    tools: dict[str, McpTool] = {}
    listings = _listings()
    for server in mcp_servers():
        for tool in listings.get(server.name, Listing()).tools:
            tools.setdefault(tool.name, tool)
    return tools


async def list_servers(names: set[str] | None = None) -> None:
    """List the servers (those named, or all) not listed yet, at once; a
    server that failed is skipped until its retry time."""
    listings, now = _listings(), time.monotonic()
    due = []
    for server in mcp_servers():
        listing = listings.setdefault(server.name, Listing())
        if (names is None or server.name in names) and not listing.listed and listing.retry_at <= now:
            due.append(_listed(server, listing))
    if due:
        await asyncio.gather(*due)


async def _listed(server: McpServer, listing: Listing) -> None:
    """One listing at a time per server: answers that start together await
    the same. Shielded: the answer that started it may be cancelled, the
    others still want it (a listing on another event loop, a test's, is not
    shared)."""
    pending = listing.pending
    if pending is None or pending.done() or pending.get_loop() is not asyncio.get_running_loop():
        pending = listing.pending = asyncio.ensure_future(_list(server, listing))
    await asyncio.shield(pending)


async def _list(server: McpServer, listing: Listing) -> None:
    try:
        async with asyncio.timeout(LIST_TIMEOUT_SECONDS):
            found = await list_tools(server)
    except (ToolCallFailed, TimeoutError) as exc:
        listing.retry_at = time.monotonic() + RELIST_AFTER_SECONDS
        logger.warning(
            "MCP server %s: its tools could not be listed (%s); trying again in %g s",
            server.name,
            str(exc) or f"no answer within {LIST_TIMEOUT_SECONDS:g} s",
            RELIST_AFTER_SECONDS,
        )
        return
    listing.tools = _named(server, found)
    listing.listed = True


def _named(server: McpServer, found: list[mcp.types.Tool]) -> list[McpTool]:
    """The server's tools it offers (its `tool_names`), one per name: two
    whose names become one once made a function's name keep the first."""
    tools: dict[str, McpTool] = {}
    for listed in found:
        if not server.offers(listed.name):
            continue
        tool = McpTool(server, listed)
        if tool.name in tools:
            logger.warning(
                "MCP server %s: tools %r and %r are both %s; the first is kept",
                server.name,
                tools[tool.name].remote_name,
                listed.name,
                tool.name,
            )
            continue
        tools[tool.name] = tool
    return list(tools.values())
