"""MCP servers' tools (issue 25, its MCP part): a real MCP server made with the
`mcp` SDK, on streamable HTTP in a thread, listed, named, called through a
whole answer with the fake upstream, filtered, timed out, down at listing
and at call time, and the checks of CHATSTREAM_MCP_SERVERS."""

import asyncio
import logging
import os
import socket
import subprocess
import sys

import environ
import httpx
import mcp
import pytest
from django.core.checks import Error
from mcp.server.mcpserver import Context, MCPServer

from conversations import catalogue
from conversations.checks import check_llm_settings
from conversations.conf import Settings
from conversations.tools import ToolContext, atools_for, run_call, tools_for
from conversations.tools.mcp import McpServer
from conversations.tools.mcp import tools as mcp_tools
from conversations.tools.mcp.client import result_text
from conversations.tools.mcp.tools import RELIST_AFTER_SECONDS, McpTool, _listings, list_servers
from harness.fake_upstream import Behaviour, tool_calls_behaviour
from harness.servers import ServerThread, free_port

from .helpers import read_events, stream, wait_for_answer

calc = MCPServer("calc")


@calc.tool()
def add(a: int, b: int) -> int:
    """Add two numbers."""
    return a + b


@calc.tool()
def broken() -> str:
    """Always fails."""
    raise ValueError("out of stock")


@calc.tool()
async def slow() -> str:
    """Takes a long time."""
    await asyncio.sleep(30)
    return "late"


@calc.tool(name="read.file")
def read_file(path: str) -> dict:
    """A name a function cannot have as it is."""
    return {"path": path, "text": "hello"}


@calc.tool()
def authorization(ctx: Context) -> str:
    """The Authorization header the call came with."""
    return (ctx.headers or {}).get("authorization", "none")


NAMES = ["calc__add", "calc__broken", "calc__slow", "calc__read_file", "calc__authorization"]


@pytest.fixture(scope="module")
def calc_server():
    with ServerThread(calc.streamable_http_app(), lifespan="on") as server:
        yield server


def down_url() -> str:
    return f"http://127.0.0.1:{free_port()}/mcp"  # nothing listens there


@pytest.fixture
def servers(settings, calc_server):
    """The calc server, and one that is down; the one model has their tools."""
    settings.CHATSTREAM_MCP_SERVERS = {"calc": {"url": f"{calc_server.url}/mcp"}, "gone": {"url": down_url()}}
    return settings.CHATSTREAM_MCP_SERVERS


def listed_names(entry=None) -> list[str]:
    return [tool.name for tool in asyncio.run(atools_for(entry or catalogue.default_entry()))]


def context() -> ToolContext:
    return ToolContext(user_id=1, trace_id="t")


def call(name: str, arguments: str = "{}") -> dict:
    return {"id": "c1", "name": name, "arguments": arguments}


def run(tool, arguments: str = "{}"):
    return asyncio.run(run_call(tool, call(tool.name, arguments), context()))


def by_name(name: str):
    return {tool.name: tool for tool in tools_for(catalogue.default_entry())}[name]


# --- listing and naming ------------------------------------------------------------------


def test_the_tools_are_listed_at_first_use_and_named_server__tool(servers, caplog):
    assert tools_for(catalogue.default_entry()) == []  # nothing listed until an answer (or api/models) asks
    with caplog.at_level(logging.WARNING):
        assert listed_names() == NAMES  # "read.file" made a function's name; the server down has none
    assert "MCP server gone: its tools could not be listed" in caplog.text

    spec = by_name("calc__add").spec()["function"]
    assert spec["description"] == "Add two numbers."
    assert spec["parameters"]["properties"] == {
        "a": {"title": "A", "type": "integer"},
        "b": {"title": "B", "type": "integer"},
    }
    assert spec["parameters"]["required"] == ["a", "b"]  # the server's inputSchema, as it gave it


def test_a_listing_is_kept_and_a_failed_one_waits_before_the_next(servers, caplog):
    listed_names()
    first = by_name("calc__add")
    retry_at = _listings()["gone"].retry_at
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        assert listed_names() == NAMES and by_name("calc__add") is first
    assert caplog.text == ""  # neither server asked again: calc is listed, gone waits
    assert retry_at > 0 and _listings()["gone"].retry_at == retry_at
    _listings()["gone"].retry_at -= RELIST_AFTER_SECONDS  # the wait is over
    with caplog.at_level(logging.WARNING):
        asyncio.run(list_servers())
    assert "MCP server gone" in caplog.text


def test_tool_names_keeps_only_those_of_a_server(settings, calc_server):
    settings.CHATSTREAM_MCP_SERVERS = {"calc": {"url": f"{calc_server.url}/mcp", "tool_names": ["add", "read.file"]}}
    assert listed_names() == ["calc__add", "calc__read_file"]


def test_a_model_names_mcp_tools_in_its_tool_names_and_only_their_servers_are_listed(servers, settings, caplog):
    settings.LLM_MODELS = {"m": {"model": "m", "tool_names": ["calc__add"]}, "plain": {"model": "m"}}
    with caplog.at_level(logging.WARNING):
        assert listed_names(catalogue.entry_named("m")) == ["calc__add"]
        assert listed_names(catalogue.entry_named("plain")) == []
    assert "gone" not in caplog.text  # never asked: the model names none of its tools


def test_a_long_name_is_cut_to_64_characters():
    server = McpServer(name="s" * 32, url="http://127.0.0.1:1/mcp")
    tool = McpTool(server, mcp.types.Tool(name="x" * 60, input_schema={"type": "object"}))
    assert tool.name == f"{'s' * 32}__{'x' * 30}" and len(tool.name) == 64


def test_two_tools_of_one_function_name_keep_the_first(caplog):
    server = McpServer(name="s", url="http://127.0.0.1:1/mcp")
    listed = [mcp.types.Tool(name=name, input_schema={"type": "object"}) for name in ("a.b", "a_b", "c")]
    with caplog.at_level(logging.WARNING):
        tools = mcp_tools._named(server, listed)
    assert [(tool.name, tool.remote_name) for tool in tools] == [("s__a_b", "a.b"), ("s__c", "c")]
    assert "the first is kept" in caplog.text


# --- calls ---------------------------------------------------------------------------


def test_a_result_without_text_is_its_structured_content_or_a_note():
    structured = mcp.types.CallToolResult(content=[], structured_content={"n": 1})
    image = mcp.types.CallToolResult(content=[mcp.types.ImageContent(data="AA==", mime_type="image/png")])
    assert result_text(structured) == '{"n":1}'
    assert result_text(image) == "[image content, not shown]"


def test_a_call_returns_the_text_and_structured_content_as_json(servers, monkeypatch):
    listed_names()
    assert run(by_name("calc__add"), '{"a": 2, "b": 3}').output == "5"
    assert run(by_name("calc__read_file"), '{"path": "a.txt"}').output == '{\n  "path": "a.txt",\n  "text": "hello"\n}'


def test_the_tools_error_and_bad_arguments_are_error_results(servers):
    listed_names()
    assert run(by_name("calc__broken")).error == "Error executing tool broken"  # the server's isError text
    bad = run(by_name("calc__add"), '{"a": "two"}')
    assert bad.output is None and "validation error" in bad.error  # the server validates the arguments


def test_a_call_is_held_to_the_tool_timeout(servers, settings):
    listed_names()
    settings.CHATSTREAM_TOOL_TIMEOUT_SECONDS = 0.5
    assert run(by_name("calc__slow")).error == "The tool did not finish within 0.5 s."


def test_the_headers_come_from_the_variable_headers_env_names(settings, calc_server, monkeypatch):
    monkeypatch.setenv("CALC_HEADERS", '{"Authorization": "Bearer t0k"}')
    settings.CHATSTREAM_MCP_SERVERS = {"calc": {"url": f"{calc_server.url}/mcp", "headers_env": "CALC_HEADERS"}}
    listed_names()
    assert run(by_name("calc__authorization")).output == "Bearer t0k"
    monkeypatch.setenv("CALC_HEADERS", "Bearer t0k")  # not JSON: the model is told, nothing more
    assert (
        run(by_name("calc__authorization")).error
        == "The MCP server 'calc' could not be reached: its headers are not JSON."
    )


def test_a_server_down_at_call_time_is_an_error_result(caplog):
    server = McpServer(name="gone", url=down_url())
    tool = McpTool(server, mcp.types.Tool(name="add", input_schema={"type": "object"}))
    with caplog.at_level(logging.WARNING):
        result = run(tool)
    assert result.error == "The MCP server 'gone' could not be reached." and result.output is None
    assert "MCP server gone" in caplog.text and "Traceback" not in caplog.text


# --- through an answer ---------------------------------------------------------------------


def loop_answer(alice) -> list[dict]:
    with stream(alice, alice.new_conversation(), "Go") as response:
        response.read()
    return read_events(response)


def results_of(events: list[dict]) -> list[dict]:
    return [event["data"] for event in events if event["event"] == "tool_result"]


def test_an_answer_calls_an_mcp_tool_and_gives_the_model_its_result(alice, upstream, servers):
    upstream.next_calls.extend([tool_calls_behaviour(("c1", "calc__add", {"a": 2, "b": 3})), Behaviour(text="Five.")])
    events = loop_answer(alice)
    assert [(r["name"], r["output"]) for r in results_of(events)] == [("calc__add", "5")]
    assert events[-1]["event"] == "done" and events[-1]["data"]["finish_reason"] == "stop"
    first, second = (c.body for c in upstream.calls)
    assert [spec["function"]["name"] for spec in first["tools"]] == NAMES
    assert second["messages"][-1] == {"role": "tool", "tool_call_id": "c1", "content": "5"}


def test_a_server_gone_after_listing_gives_an_error_result_and_the_answer_ends(alice, upstream, settings):
    with ServerThread(calc.streamable_http_app(), lifespan="on") as short_lived:
        settings.CHATSTREAM_MCP_SERVERS = {"brief": {"url": f"{short_lived.url}/mcp"}}
        listed_names()
    upstream.next_calls.extend(
        [tool_calls_behaviour(("c1", "brief__add", {"a": 2, "b": 3})), Behaviour(text="It is down.")]
    )
    events = loop_answer(alice)
    assert results_of(events)[0]["error"] == "The MCP server 'brief' could not be reached."
    assert events[-1]["event"] == "done" and events[-1]["data"]["finish_reason"] == "stop"


def test_the_models_list_names_mcp_tools(alice, servers, settings):
    settings.LLM_MODELS = {
        "calc": {"provider": "demo", "model": "demo-1", "tool_names": ["calc__add"]},
        "all": {"provider": "demo", "model": "demo-1", "tools": True},
    }
    listed = alice.client.get("/api/models").json()["models"]
    assert {m["name"]: m["tool_names"] for m in listed} == {"calc": ["calc__add"], "all": NAMES}


@pytest.fixture
def silent(settings, monkeypatch):
    """A server that takes connections and never answers, the answers' wait
    for a listing cut to `LIST_TIMEOUT_SECONDS`."""
    with socket.socket() as listening:
        listening.bind(("127.0.0.1", 0))
        listening.listen(8)  # connections wait in the backlog, never accepted
        host, port = listening.getsockname()
        settings.CHATSTREAM_MCP_SERVERS = {"silent": {"url": f"http://{host}:{port}/mcp"}}
        monkeypatch.setattr(mcp_tools, "LIST_TIMEOUT_SECONDS", 1.0)
        yield


def test_an_answer_waits_for_a_silent_server_only_so_long_then_goes_on_without_it(alice, upstream, silent):
    upstream.next_calls.append(Behaviour(text="No tools today."))
    events = loop_answer(alice)
    assert events[-1]["event"] == "done" and events[-1]["data"]["finish_reason"] == "stop"
    assert "tools" not in upstream.calls[0].body


def test_a_client_gone_while_a_server_is_listed_has_its_answer_saved(alice, upstream, silent):
    conversation_id = alice.new_conversation()
    with pytest.raises(httpx.ReadTimeout), stream(alice, conversation_id, timeout=0.3) as response:
        response.read()
    turn = wait_for_answer(conversation_id)
    assert turn.finish_reason == "client_disconnected" and upstream.calls == []


# --- settings and checks ---------------------------------------------------------------


def mcp_check_ids(settings, servers, models: dict | None = None) -> list[str]:
    settings.CHATSTREAM_MCP_SERVERS = servers
    settings.LLM_MODELS = models or {}
    errors = check_llm_settings(None)
    assert all(isinstance(error, Error) and error.msg for error in errors)
    return [error.id for error in errors]


def test_well_formed_servers_pass_the_checks_and_their_tools_may_be_named(settings, monkeypatch):
    monkeypatch.setenv("CALC_HEADERS", '{"Authorization": "Bearer t"}')
    servers = {"calc": {"url": "http://127.0.0.1:1/mcp", "headers_env": "CALC_HEADERS", "tool_names": ["add"]}}
    models = {"a": {"model": "m", "tool_names": ["calc__add"]}}
    assert mcp_check_ids(settings, servers, models) == []  # calc__add is taken on trust: no network in a check


@pytest.mark.parametrize(
    ("servers", "expected"),
    [
        (["http://127.0.0.1:1/mcp"], "conversations.E021"),
        ({"calc": {"headers_env": "X"}}, "conversations.E021"),
        ({"calc": {"url": "127.0.0.1:1/mcp"}}, "conversations.E021"),
        ({"my server": {"url": "http://127.0.0.1:1/mcp"}}, "conversations.E021"),
        ({"calc": {"url": "http://127.0.0.1:1/mcp", "token": "t"}}, "conversations.E021"),
        ({"calc": {"url": "http://127.0.0.1:1/mcp", "tool_names": "add"}}, "conversations.E021"),
        (
            {"calc": {"url": "http://127.0.0.1:1/mcp", "headers_env": "CHATSTREAM_NO_SUCH_VARIABLE"}},
            "conversations.E022",
        ),
    ],
)
def test_checks_name_each_mcp_misconfiguration(settings, servers, expected):
    assert mcp_check_ids(settings, servers) == [expected]


def test_a_name_of_no_configured_server_is_still_an_unknown_tool(settings):
    servers = {"calc": {"url": "http://127.0.0.1:1/mcp"}}
    assert mcp_check_ids(settings, servers, {"a": {"model": "m", "tool_names": ["other__add"]}}) == [
        "conversations.E020"
    ]


def test_the_servers_from_the_environment_as_json(settings, monkeypatch):
    monkeypatch.setenv("CHATSTREAM_MCP_SERVERS", '{"calc": {"url": "http://127.0.0.1:1/mcp"}}')
    settings.CHATSTREAM_MCP_SERVERS = Settings.CHATSTREAM_MCP_SERVERS.from_env(environ.Env())
    assert settings.CHATSTREAM_MCP_SERVERS == {"calc": {"url": "http://127.0.0.1:1/mcp"}}
    assert mcp_check_ids(settings, settings.CHATSTREAM_MCP_SERVERS) == []


def test_a_process_without_mcp_servers_never_imports_the_sdk():
    # It takes about a second: every process (a manage.py command, a worker) would pay it.
    script = (
        "import sys, django; django.setup(); "
        "import conversations.answering, conversations.checks, conversations.views.api; "
        "assert 'mcp' not in sys.modules, 'mcp imported'"
    )
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "tests.settings"}
    env.pop("CHATSTREAM_MCP_SERVERS", None)
    subprocess.run([sys.executable, "-c", script], env=env, check=True, timeout=60)
