"""Tools (issue 25, its first part): @tool's schemas, ToolContext, running
calls (sync on threads of their own, async on the loop), every way a call
fails, timeouts, cancellation, the output cut, the concurrency bound,
CHATSTREAM_TOOLS, tool_names, the checks and GET api/models."""

import asyncio
import contextvars
import enum
import json
import logging
import threading
import time
import uuid
from typing import Annotated

import environ
import pytest
from django.core.checks import Error
from django.db import connection
from pydantic import BaseModel, Field

from conversations import catalogue, services
from conversations.checks import check_llm_settings
from conversations.conf import Settings
from conversations.exceptions import CatalogueError, NotATool, ToolDefinitionError, ToolImportError
from conversations.models import Conversation
from conversations.tools import ToolContext, ToolResult, registered_tools, run_call, run_calls, tool, tools_for
from conversations.tools.demo import current_time, lookup_order

from .helpers import connections_held, wait_for

HERE = __name__  # the tools below are named in CHATSTREAM_TOOLS by their dotted paths
DEMO = ["conversations.tools.demo.current_time", "conversations.tools.demo.lookup_order"]


# --- tools the tests call -------------------------------------------------------------


class Size(enum.Enum):
    SMALL = "small"
    LARGE = "large"


class Line(BaseModel):
    sku: str
    quantity: int = 1


class Address(BaseModel):
    city: str
    postcode: Annotated[str, Field(description="As the post office writes it")]


@tool
def place_order(
    lines: list[Line],
    ship_to: Address,
    context: ToolContext,
    size: Size = Size.SMALL,
    note: Annotated[str, Field(description="For the courier")] = "",
) -> dict:
    """Place an order.

    Each line names a product."""
    return {"lines": [line.quantity for line in lines], "city": ship_to.city, "size": size, "trace": context.trace_id}


@tool
def conversation_titles(context: ToolContext) -> dict:
    """The titles of the user's conversations."""
    titles = sorted(Conversation.objects.filter(owner=context.user).values_list("title", flat=True))
    return {"titles": titles, "thread": threading.current_thread().name}


@tool
async def who_asks(context: ToolContext) -> dict:
    """Who asks, from where."""
    user = await context.auser()
    return {"user": user.get_username(), "conversation": context.conversation_id, "turn": context.turn_id}


@tool
def fails(reason: str) -> str:
    """Always fails."""
    raise ValueError(reason)


@tool
def echo(text: str) -> str:
    return text


@tool(timeout=0.05)
async def sleeps(seconds: float) -> str:
    await asyncio.sleep(seconds)
    return "woke"


sync_sleeper_done = threading.Event()


@tool(timeout=0.05)
def sleeps_in_a_thread(seconds: float) -> str:
    time.sleep(seconds)
    sync_sleeper_done.set()
    return "woke"


@tool(name="place_order")
def another_place_order() -> str:
    return "a second tool of one name"


class NotValidatable:
    """pydantic can make no schema of this."""


@tool
def takes_anything(thing: NotValidatable) -> str:
    return "never"


def plain_function() -> str:
    return "not a tool"


def context(user_id: int = 0, **fields) -> ToolContext:
    return ToolContext(user_id=user_id, trace_id="trace-test", **fields)


def call(name: str, arguments: str = "{}", call_id: str = "call_1") -> dict:
    return {"id": call_id, "name": name, "arguments": arguments}


def run(tool_, arguments: str = "{}", given: ToolContext | None = None) -> ToolResult:
    return asyncio.run(run_call(tool_, call(getattr(tool_, "name", "missing"), arguments), given or context()))


# --- definition -------------------------------------------------------------------------


def test_the_schema_comes_from_the_type_hints():
    spec = place_order.spec()
    assert spec["type"] == "function" and spec["function"]["name"] == "place_order"
    assert spec["function"]["description"] == "Place an order.\n\nEach line names a product."
    schema = spec["function"]["parameters"]
    assert set(schema["properties"]) == {"lines", "ship_to", "size", "note"}  # no context
    assert schema["required"] == ["lines", "ship_to"] and schema["additionalProperties"] is False
    assert schema["properties"]["lines"]["items"] == {"$ref": "#/$defs/Line"}
    assert schema["$defs"]["Line"]["properties"]["quantity"]["default"] == 1
    assert schema["$defs"]["Address"]["properties"]["postcode"]["description"] == "As the post office writes it"
    assert schema["$defs"]["Size"]["enum"] == ["small", "large"]
    assert schema["properties"]["size"]["default"] == "small"
    assert schema["properties"]["note"] == {
        "default": "",
        "description": "For the courier",
        "title": "Note",
        "type": "string",
    }


def test_options_and_names():
    @tool(name="lookup-2", description="Look it up.", needs_approval=True, timeout=3)
    async def lookup(key: str) -> str:
        """Not this."""
        return key

    assert (lookup.name, lookup.description) == ("lookup-2", "Look it up.")
    assert lookup.needs_approval and lookup.timeout == 3
    assert lookup.is_async and not echo.is_async and echo.description == ""
    assert echo("said") == "said"  # a tool is still its function
    assert lookup_order.needs_approval and not current_time.needs_approval
    for bad in ("a.b", "x" * 65, "ça"):
        with pytest.raises(ToolDefinitionError, match="letters, digits"):
            tool(name=bad)(plain_function)


def test_schemas_that_cannot_be_built_fail_at_first_use():
    with pytest.raises(ToolDefinitionError, match="takes_anything"):
        takes_anything.spec()

    def starred(*args: int) -> None: ...

    with pytest.raises(ToolDefinitionError, match="no \\*args"):
        tool(starred).spec()


# --- running ---------------------------------------------------------------------------


def test_arguments_are_validated_and_the_context_delivered():
    arguments = '{"lines": [{"sku": "a", "quantity": "3"}, {"sku": "b"}], "ship_to": {"city": "Lyon", "postcode": "1"}}'
    result = run(place_order, arguments, ToolContext(user_id=1, trace_id="t-42"))
    assert result.error is None and result.output == '{"lines":[3,1],"city":"Lyon","size":"small","trace":"t-42"}'
    assert result.event() == {
        "id": "call_1",
        "name": "place_order",
        "output": result.output,
        "duration_ms": result.duration_ms,
    }


@pytest.mark.django_db(transaction=True)
def test_a_sync_tool_queries_the_orm_as_the_contexts_user_off_the_loop(django_user_model):
    alice, bob = (django_user_model.objects.create_user(name) for name in ("alice", "bob"))
    services.create_conversation(owner=alice, title="Alice's trip")
    services.create_conversation(owner=bob, title="Bob's secret")
    loop_thread = threading.current_thread().name
    result = run(conversation_titles, "{}", context(alice.pk))
    output = json.loads(result.output)
    assert output["titles"] == ["Alice's trip"]  # alice's only
    # Its own pool's thread: not the loop's, not one of run_db's (chatstream-db).
    assert output["thread"].startswith("chatstream-tool") and output["thread"] != loop_thread


@pytest.mark.django_db(transaction=True)
def test_sync_tools_hold_no_database_connection_once_they_return(django_user_model):
    """The tools' pool has 32 threads: each keeping its connection would
    hold up to 32 beyond the database threads' while answers stream."""
    if connection.vendor != "postgresql":
        pytest.skip("connections are counted on PostgreSQL")
    alice = django_user_model.objects.create_user("alice")
    before = connections_held()
    calls = [call("conversation_titles", "{}", f"call_{n}") for n in range(4)]
    results = asyncio.run(run_calls(calls, [conversation_titles], context(alice.pk)))
    assert [result.error for result in results] == [None] * 4
    # Given back to the pool, which checks a returned connection on a thread of its own.
    wait_for(lambda: connections_held() == before, 2, "the tools' connections given back")


@pytest.mark.django_db(transaction=True)
def test_an_async_tool_gets_its_user_and_ids(django_user_model):
    carol = django_user_model.objects.create_user("carol")
    conversation_id, turn_id = uuid.uuid4(), uuid.uuid4()
    result = run(who_asks, "", context(carol.pk, conversation_id=conversation_id, turn_id=turn_id))
    assert result.output == f'{{"user":"carol","conversation":"{conversation_id}","turn":"{turn_id}"}}'


@pytest.mark.django_db(transaction=True)
def test_the_demo_tools(django_user_model):
    dave = django_user_model.objects.create_user("dave")
    order = run(lookup_order, '{"order_id": "A-1042"}', context(dave.pk))
    assert '"customer":"dave"' in order.output and '"order_id":"A-1042"' in order.output
    assert run(lookup_order, '{"order_id": "A-1042"}', context(dave.pk)).output == order.output  # made up, the same
    assert '"timezone":"Asia/Tokyo"' in run(current_time, '{"timezone": "Asia/Tokyo"}').output
    assert '"timezone":"UTC"' in run(current_time).output
    assert run(current_time, '{"timezone": "Mars/Olympus"}').error == (
        "'Mars/Olympus' is not an IANA time zone; try one such as Europe/Paris."
    )


@pytest.mark.parametrize(
    ("tool_", "arguments", "error"),
    [
        (None, "{}", "There is no tool named 'missing'."),
        (echo, '{"text": ', "The arguments are not JSON: unexpected end of data: line 1 column 9 (char 8)."),
        (echo, '["hi"]', "The arguments must be a JSON object, not an array."),
        (echo, "{}", "Invalid arguments: text: Field required"),
        (echo, '{"text": "hi", "loud": true}', "Invalid arguments: loud: Extra inputs are not permitted"),
        (
            place_order,
            '{"lines": [{"quantity": "many"}], "ship_to": {"city": "Lyon", "postcode": "1"}}',
            "Invalid arguments: lines.0.sku: Field required; lines.0.quantity: Input should be a valid integer, "
            "unable to parse string as an integer",
        ),
        (fails, '{"reason": "the warehouse is closed"}', "the warehouse is closed"),
    ],
)
def test_every_failure_is_an_error_result(tool_, arguments, error, caplog):
    result = run(tool_, arguments)
    assert (result.output, result.error) == (None, error)
    assert result.content == ToolResult(id="x", name="x", error=error).content  # {"error": "..."} for the model
    assert "Traceback" not in result.content


def test_an_exception_is_logged_with_its_traceback_and_trace_id(caplog):
    with caplog.at_level(logging.ERROR, logger="conversations.tools.running"):
        result = run(fails, '{"reason": "no"}')
    assert result.content == '{"error":"no"}'
    [record] = caplog.records
    assert "trace_id=trace-test" in record.getMessage() and record.exc_info[0] is ValueError


def test_an_async_tool_past_its_timeout():
    started = time.monotonic()
    result = run(sleeps, '{"seconds": 5}')
    assert result.error == "The tool did not finish within 0.05 s." and time.monotonic() - started < 1


def test_a_sync_tool_past_its_timeout_is_left_to_finish_and_its_result_dropped():
    sync_sleeper_done.clear()
    started = time.monotonic()
    result = run(sleeps_in_a_thread, '{"seconds": 0.4}')
    assert result.error == "The tool did not finish within 0.05 s." and time.monotonic() - started < 0.3
    assert not sync_sleeper_done.is_set()  # still running, on its own thread
    assert sync_sleeper_done.wait(2)


def test_a_sync_tool_sees_the_callers_context_variables():
    request_id = contextvars.ContextVar("request_id", default="none")

    @tool
    def reads_it() -> str:
        return request_id.get()

    async def scenario() -> ToolResult:
        request_id.set("r-7")
        return await run_call(reads_it, call("reads_it"), context())

    assert asyncio.run(scenario()).output == "r-7"


def test_the_default_timeout_is_the_setting(settings):
    settings.CHATSTREAM_TOOL_TIMEOUT_SECONDS = 0.05
    result = asyncio.run(run_call(tool(sleeps.func), call("sleeps", '{"seconds": 5}'), context()))
    assert result.error == "The tool did not finish within 0.05 s."


def test_a_tools_own_timeout_error_is_an_exception_like_any_other():
    @tool
    async def times_out() -> str:
        raise TimeoutError("the warehouse did not answer")

    assert run(times_out).error == "the warehouse did not answer"


def test_cancelling_a_call_cancels_an_async_tool():
    started, cancelled = asyncio.Event(), []

    @tool
    async def waits() -> str:
        started.set()
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            cancelled.append(True)
            raise
        return "never"

    async def scenario() -> None:
        task = asyncio.create_task(run_call(waits, call("waits"), context()))
        await started.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(scenario())
    assert cancelled == [True]


def test_output_is_json_or_the_string_and_long_output_is_cut(settings):
    assert run(echo, '{"text": "plain text"}').output == "plain text"
    assert run(tool(name="a_model")(lambda: Line(sku="a"))).output == '{"sku":"a","quantity":1}'
    assert run(tool(name="an_object")(lambda: object())).error == "Type is not JSON serializable: object"
    settings.CHATSTREAM_TOOL_OUTPUT_CHARS = 10
    cut = run(echo, '{"text": "' + "x" * 50 + '"}').output
    assert cut == "x" * 10 + "\n[chatstream cut this output at 10 of its 50 characters]"
    assert run(fails, '{"reason": "' + "y" * 50 + '"}').error.startswith("y" * 10 + "\n[chatstream cut")


def test_calls_run_at_most_the_concurrency_at_once_and_come_back_in_order(settings):
    settings.CHATSTREAM_TOOL_CONCURRENCY = 3
    running, most = 0, 0

    @tool
    async def counted(n: int) -> int:
        nonlocal running, most
        running += 1
        most = max(most, running)
        await asyncio.sleep(0.01 * (10 - n))  # the later calls end first
        running -= 1
        return n

    calls = [call("counted", f'{{"n": {n}}}', f"call_{n}") for n in range(10)]
    results = asyncio.run(run_calls([*calls, call("nope")], [counted], context()))
    assert [result.output for result in results] == [str(n) for n in range(10)] + [None]
    assert [result.id for result in results[:2]] == ["call_0", "call_1"] and results[-1].error
    assert most == 3


# --- turning tools on -------------------------------------------------------------------


def test_chatstream_tools_from_the_settings_resolved_once_and_forgotten_when_changed(settings):
    settings.CHATSTREAM_TOOLS = DEMO
    first = registered_tools()
    assert list(first) == ["current_time", "lookup_order"] and registered_tools() is first
    settings.CHATSTREAM_TOOLS = [f"{HERE}.echo"]
    assert list(registered_tools()) == ["echo"]
    settings.CHATSTREAM_TOOLS = [f"{HERE}.plain_function"]
    with pytest.raises(NotATool):
        registered_tools()
    settings.CHATSTREAM_TOOLS = [f"{HERE}.nothing_here"]
    with pytest.raises(ToolImportError):
        registered_tools()


def test_chatstream_tools_from_the_environment_comma_separated(settings, monkeypatch):
    monkeypatch.setenv("CHATSTREAM_TOOLS", ",".join(DEMO))
    settings.CHATSTREAM_TOOLS = Settings.CHATSTREAM_TOOLS.from_env(environ.Env())  # as chatstream/settings.py reads it
    assert settings.CHATSTREAM_TOOLS == DEMO and list(registered_tools()) == ["current_time", "lookup_order"]


def test_each_model_gets_all_its_named_or_no_tools(settings):
    settings.CHATSTREAM_TOOLS = [*DEMO, f"{HERE}.echo"]
    settings.LLM_MODELS = {
        "all": {"model": "m", "tools": True},
        "some": {"model": "m", "tool_names": ["echo", "current_time", "gone"]},
        "off": {"model": "m", "tools": False, "tool_names": ["echo"]},
        "plain": {"model": "m"},
    }
    names = {entry.name: [t.name for t in tools_for(entry)] for entry in catalogue.catalogue().values()}
    assert names == {
        "all": ["current_time", "lookup_order", "echo"],
        "some": ["echo", "current_time"],  # "gone" is no tool: skipped (the checks name it)
        "off": [],
        "plain": [],
    }
    settings.LLM_MODELS = {}  # one model: it has them all
    assert [t.name for t in tools_for(catalogue.default_entry())] == ["current_time", "lookup_order", "echo"]
    settings.LLM_MODELS = {"a": {"model": "m", "tool_names": "echo"}}
    with pytest.raises(CatalogueError, match="tool_names"):
        catalogue.catalogue()


def test_the_models_list_says_which_tools_each_has(alice, settings):
    settings.CHATSTREAM_TOOLS = DEMO
    settings.LLM_MODELS = {
        "helper": {"provider": "demo", "model": "demo-1", "tools": True},
        "clock": {"provider": "demo", "model": "demo-1", "tool_names": ["current_time"]},
        "plain": {"provider": "demo", "model": "demo-1"},
    }
    listed = alice.client.get("/api/models").json()["models"]  # checked against openapi.yaml by the client
    assert {m["name"]: (m["tools"], m["tool_names"]) for m in listed} == {
        "helper": (True, ["current_time", "lookup_order"]),
        "clock": (True, ["current_time"]),
        "plain": (False, []),
    }


# --- checks -----------------------------------------------------------------------------


def tool_check_ids(settings, paths: list[str], models: dict | None = None) -> list[str]:
    settings.CHATSTREAM_TOOLS = paths
    settings.LLM_MODELS = models or {}
    errors = check_llm_settings(None)
    assert all(isinstance(error, Error) and error.msg for error in errors)
    return [error.id for error in errors]


def test_the_demo_tools_pass_the_checks(settings):
    assert tool_check_ids(settings, DEMO, {"a": {"model": "m", "tool_names": ["current_time"]}}) == []


@pytest.mark.parametrize(
    ("paths", "models", "expected"),
    [
        ([f"{HERE}.nothing_here", "no_such_module.tool"], None, ["conversations.E016", "conversations.E016"]),
        ([f"{HERE}.plain_function"], None, ["conversations.E017"]),
        ([f"{HERE}.takes_anything"], None, ["conversations.E018"]),
        ([f"{HERE}.place_order", f"{HERE}.another_place_order"], None, ["conversations.E019"]),
        (DEMO, {"a": {"model": "m", "tool_names": ["current_time", "weather"]}}, ["conversations.E020"]),
    ],
)
def test_checks_name_each_tool_misconfiguration(settings, paths, models, expected):
    assert tool_check_ids(settings, paths, models) == expected


def test_the_new_numbers_must_be_positive(settings):
    settings.CHATSTREAM_TOOL_TIMEOUT_SECONDS, settings.CHATSTREAM_TOOL_CONCURRENCY = 0, 0
    assert tool_check_ids(settings, []) == ["conversations.E004", "conversations.E005"]
