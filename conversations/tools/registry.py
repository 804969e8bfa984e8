"""The tools this process has (CHATSTREAM_TOOLS), and which of them each
model of the catalogue gets.

The paths are imported at first use, not at import (no setting is read
then), kept, and forgotten when CHATSTREAM_TOOLS changes.
"""

from collections.abc import Iterable
from typing import TYPE_CHECKING

from django.utils.module_loading import import_string

from .. import state
from ..conf import conf
from ..exceptions import NotATool, ToolImportError, ToolsError
from .definition import Tool

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
    then all of CHATSTREAM_TOOLS, or those its `tool_names` lists. A name
    no tool has is skipped here (`manage.py check` reports it)."""
    if not entry.tools:
        return []
    tools = registered_tools()
    if entry.tool_names is None:
        return list(tools.values())
    return [tools[name] for name in entry.tool_names if name in tools]
