"""MCP servers' tools (CHATSTREAM_MCP_SERVERS), called through the official
`mcp` SDK over streamable HTTP.

`servers.py` reads the setting (each server's URL, headers, tools kept) and
names a server's tool `<server>__<tool>`; `client.py` is the edge with the
SDK (a listing, a call, the SDK's errors made plain messages); `tools.py`
makes each listed tool a Tool (`McpTool`) the loop runs like any other, and
keeps the listings. `registry.tools_for` puts them beside CHATSTREAM_TOOLS'.

The SDK takes about a second to import, so only `servers.py` is imported
here: `tools.py` and `client.py` (and the SDK) are imported by a process
that has MCP servers, at their first use.
"""

from .servers import McpServer, mcp_servers

__all__ = ["McpServer", "mcp_servers"]
