"""Tools: Python functions a model may call, and how one call of them runs.

    from conversations.tools import tool, ToolContext

    @tool(needs_approval=True)
    def cancel_order(order_id: str, context: ToolContext) -> dict:
        "Cancel one of the user's orders."
        ...

`definition.py` makes a Tool of a function (its name, description and JSON
schema), `context.py` is what a tool learns about the call, `running.py`
runs calls (validated, timed out, their failures made results), `results.py`
is a call's result as the model reads it, `mcp/` makes MCP servers' tools
(CHATSTREAM_MCP_SERVERS) Tools, and `registry.py` says which tools there
are and which models get them. The loop that
sends the tools to a model and calls it again with their results is the
relay's (stream/tool_loop.py).
"""

from .context import ToolContext
from .definition import Tool, tool
from .registry import atools_for, registered_tools, tools_for
from .results import ToolResult
from .running import run_call, run_calls

__all__ = [
    "Tool",
    "ToolContext",
    "ToolResult",
    "atools_for",
    "registered_tools",
    "run_call",
    "run_calls",
    "tool",
    "tools_for",
]
