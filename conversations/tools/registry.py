"""The tools this process has (CHATSTREAM_TOOLS, and the MCP servers' of
CHATSTREAM_MCP_SERVERS), and which of them each model of the catalogue gets.

The paths are imported at first use, not at import (no setting is read
then), kept, and forgotten when CHATSTREAM_TOOLS changes. MCP servers are
listed at first use too, by `atools_for` (mcp/tools.py keeps the listings).
"""

from collections.abc import Iterable
from typing import TYPE_CHECKING

from django.utils.module_loading import import_string

from .. import state
from ..conf import conf
from ..exceptions import NotATool, ToolImportError, ToolsError
from .definition import Tool
from .mcp import mcp_servers

if TYPE_CHECKING:  # the catalogue is read by the providers, below tools; only its type is needed here
    from ..catalogue import ModelEntry


def registered_tools() -> dict[str, Tool]:
    """Every tool CHATSTREAM_TOOLS names, by name, in its order; ToolsError
    if one cannot be used (`manage.py check` says which, and why)."""
    return _registered(tuple(conf.CHATSTREAM_TOOLS))


@state.built_from("CHATSTREAM_TOOLS")
def _registered(paths: tuple[str, ...]) -> dict[str, Tool]:
    return by_name(load_tool(path) for path in paths)


def load_tool(path: str) -> Tool:
    """The tool a dotted path names."""
    try:
        found = import_string(path.strip())
    except ImportError as exc:
        raise ToolImportError(f"CHATSTREAM_TOOLS names {path!r}, which does not import: {exc}") from exc
    if not isinstance(found, Tool):
        raise NotATool(
            f"CHATSTREAM_TOOLS names {path!r}, which is not a tool: decorate it with @tool from conversations.tools."
        )
    return found


def by_name(tools: Iterable[Tool]) -> dict[str, Tool]:
    """Tools by name; ToolsError for two of one name, which the model could not tell apart."""
    named: dict[str, Tool] = {}
    for tool in tools:
        if tool.name in named:
            raise ToolsError(
                f"Two tools in CHATSTREAM_TOOLS are named {tool.name!r}; give one another name with @tool(name=...)."
            )
        named[tool.name] = tool
    return named


def tools_for(entry: "ModelEntry") -> list[Tool]:
    """The tools a model of the catalogue gets: none unless its `tools` is on;
    then all of CHATSTREAM_TOOLS and the MCP tools listed so far, or those
    its `tool_names` lists. A name no tool has is skipped here (`manage.py
    check` reports it). Nothing is listed here: `atools_for` lists first."""
    if not entry.tools:
        return []
    tools: dict[str, Tool] = dict(registered_tools())
    for name, mcp_tool in _listed_mcp_tools().items():
        tools.setdefault(name, mcp_tool)  # CHATSTREAM_TOOLS' own tool keeps its name
    if entry.tool_names is None:
        return list(tools.values())
    return [tools[name] for name in entry.tool_names if name in tools]


async def atools_for(entry: "ModelEntry") -> list[Tool]:
    """tools_for, once the MCP servers the model may use are listed (at
    first use; a server that is down has no tools until a later listing)."""
    if entry.tools and mcp_servers():
        from .mcp.tools import list_servers  # the SDK, imported only where there are servers (mcp/__init__.py)

        await list_servers(_servers_named(entry))
    return tools_for(entry)


def _listed_mcp_tools() -> dict[str, Tool]:
    if not mcp_servers():
        return {}
    from .mcp.tools import listed_tools  # the SDK, imported only where there are servers (mcp/__init__.py)

    return dict(listed_tools())


def _servers_named(entry: "ModelEntry") -> set[str] | None:
    """The servers whose tools the entry's `tool_names` names (None: all)."""
    if entry.tool_names is None:
        return None
    return {server.name for server in mcp_servers() if any(n.startswith(server.prefix) for n in entry.tool_names)}
