"""The benchmarks' tools (bench/tool_loop.py), imported by the app only."""

from conversations.tools import tool


@tool
def instant() -> str:
    """Answers at once: the benchmark measures the loop, not the tool."""
    return "ok"
