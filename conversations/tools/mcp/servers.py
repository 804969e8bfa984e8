"""CHATSTREAM_MCP_SERVERS read into McpServer values, and the names their
tools take.

    {"files": {"url": "http://127.0.0.1:8808/mcp", "headers_env": "FILES_MCP_HEADERS", "tool_names": ["read"]}}

A server's tool `read` is `files__read` to the model. Parsed at first use,
kept until the setting changes; `manage.py check` reports what is wrong.
"""

import os
import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import orjson

from ... import state
from ...conf import conf
from ...exceptions import McpServersError, McpUnreachable

SERVER_NAME = re.compile(r"[A-Za-z0-9_-]{1,32}")  # leaves room for the tool's name within 64
SERVER_FIELDS = frozenset({"url", "headers_env", "tool_names"})
SEPARATOR = "__"
TOOL_NAME_CHARS = 64  # what OpenAI allows a function's name (definition.NAME)
NOT_A_NAME_CHARACTER = re.compile(r"[^A-Za-z0-9_-]")


@dataclass(frozen=True)
class McpServer:
    name: str
    url: str
    headers_env: str = ""  # an environment variable holding a JSON object of headers (a token stays out of settings)
    tool_names: tuple[str, ...] | None = None  # only these of the server's tools; None: all

    @property
    def prefix(self) -> str:
        return f"{self.name}{SEPARATOR}"

    def tool_name(self, remote: str) -> str:
        """`<server>__<tool>` as a function name may be: other characters made
        `_`, cut at 64."""
        return NOT_A_NAME_CHARACTER.sub("_", f"{self.prefix}{remote}")[:TOOL_NAME_CHARS]

    def offers(self, remote: str) -> bool:
        return self.tool_names is None or remote in self.tool_names

    def headers(self) -> dict[str, str]:
        """The headers `headers_env` holds, read at each connection (a token
        may be rotated); McpUnreachable when they cannot be read."""
        if not self.headers_env:
            return {}
        try:
            return headers_from(os.environ.get(self.headers_env, ""))
        except ValueError as exc:
            raise McpUnreachable(f"The MCP server {self.name!r} could not be reached: its headers {exc}.") from None


def headers_from(text: str) -> dict[str, str]:
    """`{"Authorization": "Bearer …"}` as a dict; ValueError saying what is wrong."""
    if not text:
        raise ValueError("are not set")
    try:
        headers = orjson.loads(text)
    except orjson.JSONDecodeError:
        raise ValueError("are not JSON") from None
    if not isinstance(headers, dict) or not all(isinstance(value, str) for value in headers.values()):
        raise ValueError('are not a JSON object of strings, such as {"Authorization": "Bearer …"}')
    return headers


def mcp_servers() -> tuple[McpServer, ...]:
    """The servers of CHATSTREAM_MCP_SERVERS, in its order; McpServersError if it cannot be used."""
    return _parsed()


@state.built_from("CHATSTREAM_MCP_SERVERS")
def _parsed() -> tuple[McpServer, ...]:
    try:
        given = conf.CHATSTREAM_MCP_SERVERS
    except (TypeError, ValueError):  # what conf could not make a dict of
        raise McpServersError('CHATSTREAM_MCP_SERVERS must be an object: {"name": {"url": "http://…/mcp"}}.') from None
    return tuple(_server(name, fields) for name, fields in given.items())


def _server(name: str, given: Any) -> McpServer:
    where = f"CHATSTREAM_MCP_SERVERS[{name!r}]"
    if not SERVER_NAME.fullmatch(name):
        raise McpServersError(f"{where}: a server's name is at most 32 letters, digits, '_' and '-'.")
    if not isinstance(given, dict):
        raise McpServersError(f'{where} must be an object such as {{"url": "http://127.0.0.1:8808/mcp"}}.')
    unknown = given.keys() - SERVER_FIELDS
    if unknown:
        raise McpServersError(f"{where} has unknown fields {sorted(unknown)}; use {sorted(SERVER_FIELDS)}.")
    url = given.get("url")
    if not isinstance(url, str) or urlsplit(url).scheme not in ("http", "https") or not urlsplit(url).netloc:
        raise McpServersError(f'{where} needs "url": the server\'s streamable HTTP endpoint, e.g. http://…/mcp.')
    headers_env = given.get("headers_env", "")
    if not isinstance(headers_env, str):
        raise McpServersError(f'{where}["headers_env"] must be the name of an environment variable.')
    return McpServer(name=name, url=url, headers_env=headers_env, tool_names=_tool_names(where, given))


def _tool_names(where: str, given: dict[str, Any]) -> tuple[str, ...] | None:
    names = given.get("tool_names")
    if names is None:
        return None
    if not isinstance(names, list) or not all(isinstance(name, str) for name in names):
        raise McpServersError(f'{where}["tool_names"] must be a list of the server\'s tool names.')
    return tuple(names)
