"""Running a model's tool calls.

A call's arguments are validated against its tool's schema, then the tool
runs under its timeout: an async tool on the event loop, a sync tool on a
thread of the tools' own pool (never on the loop, and never on the database
threads, whose few connections the answers' saves need). Whatever goes wrong
(an unknown tool, arguments that are not JSON or fail the schema, an
exception, the timeout) becomes an error result the model reads and can
act on; the traceback is logged with the trace id, never sent. A tool that
raises ToolCallFailed (an MCP tool's own error, its server down) has its
message sent as it is, and nothing logged here.

Cancelling the caller cancels an async tool. A sync tool cannot be stopped:
it is left to finish on its thread and its result is dropped.
"""

import asyncio
import contextvars
import functools
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

import orjson
from django.db import connections

from .. import state
from ..conf import conf
from ..exceptions import ToolCallFailed
from .context import ToolContext
from .definition import Tool
from .results import ToolResult, cut, output_text

if TYPE_CHECKING:
    import pydantic

logger = logging.getLogger(__name__)

# Sync tools' threads. Per answer, CHATSTREAM_TOOL_CONCURRENCY bounds the
# calls at once; this bounds the process, so sync tools that hang (their
# threads held past their timeouts) queue the next ones rather than starting
# threads without end.
TOOL_THREADS = 32


JSON_TYPES = {list: "an array", str: "a string", int: "a number", float: "a number", bool: "a boolean"}
JSON_TYPES[type(None)] = "null"


class CallError(Exception):
    """What the model got wrong in a call: its message is the whole story, no traceback to log."""


@functools.cache
def _threads() -> ThreadPoolExecutor:
    return ThreadPoolExecutor(max_workers=TOOL_THREADS, thread_name_prefix="chatstream-tool")


@state.forgotten_when()
def forget_threads() -> None:
    """A new pool at the next sync call; the old one's threads end when their tools return."""
    if _threads.cache_info().currsize:
        old = _threads()
        _threads.cache_clear()
        old.shutdown(wait=False)


async def run_call(tool: Tool | None, call: Mapping[str, Any], context: ToolContext) -> ToolResult:
    """Run one call, `{"id", "name", "arguments"}` (arguments a JSON string, as
    providers/tool_calls.py assembles them), of `tool` (None: no tool of
    that name is available). Never raises, but CancelledError."""
    started = time.monotonic()
    name = str(call.get("name", ""))
    output = error = None
    try:
        output = await _run(tool, call, context)
    except (CallError, ToolCallFailed) as exc:
        error = str(exc)
    except Exception as exc:
        logger.exception("tool %s failed, call %s trace_id=%s", name, call.get("id"), context.trace_id)
        error = str(exc) or type(exc).__name__
    limit = conf.CHATSTREAM_TOOL_OUTPUT_CHARS
    return ToolResult(
        id=str(call.get("id", "")),
        name=name,
        output=None if output is None else cut(output, limit),
        error=None if error is None else cut(error, limit),
        duration_ms=round((time.monotonic() - started) * 1000),
    )


Claim = Callable[[Mapping[str, Any]], Awaitable[ToolResult | None]]


async def run_calls(
    calls: Iterable[Mapping[str, Any]],
    tools: Iterable[Tool],
    context: ToolContext,
    *,
    limit: int | None = None,
    claim: Claim | None = None,
    on_result: Callable[[ToolResult], Awaitable[None]] | None = None,
) -> list[ToolResult]:
    """Run `calls` of `tools`, at most `limit` (CHATSTREAM_TOOL_CONCURRENCY) at
    once; the results in the calls' order. Cancelling it cancels them all.

    `claim(call)`, if given, is awaited before a call runs: None lets it
    run, a result stands for it (a call already run is never run again).
    `on_result(result)` is awaited as each call ends, in the order they end."""
    by_name = {tool.name: tool for tool in tools}
    slots = asyncio.Semaphore(limit or conf.CHATSTREAM_TOOL_CONCURRENCY)

    async def run_one(call: Mapping[str, Any]) -> ToolResult:
        async with slots:
            result = await claim(call) if claim is not None else None
            if result is None:
                result = await run_call(by_name.get(str(call.get("name"))), call, context)
            if on_result is not None:
                await on_result(result)
            return result

    calls = list(calls)
    if len(calls) == 1:  # most steps: run here, with no task to start and wait on (two turns of the loop)
        return [await run_one(calls[0])]
    # run_call never raises, so one call never cancels the others (a claim or
    # on_result that raises does: the loop's own failure, not the tool's,
    # raised as it is, such as an approval that never came).
    try:
        async with asyncio.TaskGroup() as group:
            tasks = [group.create_task(run_one(call)) for call in calls]
    except BaseExceptionGroup as failed:
        raise failed.exceptions[0] from None
    return [task.result() for task in tasks]


async def _run(tool: Tool | None, call: Mapping[str, Any], context: ToolContext) -> str:
    if tool is None:
        raise CallError(f"There is no tool named {call.get('name')!r}.")
    import pydantic  # imported already: the tool's arguments model is pydantic's

    try:
        arguments = tool.keyword_arguments(_parsed(call.get("arguments")), context)
    except pydantic.ValidationError as exc:
        raise CallError(f"Invalid arguments: {_summary(exc)}") from None
    limit = tool.timeout if tool.timeout is not None else conf.CHATSTREAM_TOOL_TIMEOUT_SECONDS
    try:
        async with asyncio.timeout(limit) as scope:
            value = await _invoke(tool, arguments)
    except TimeoutError:
        if not scope.expired():
            raise  # the tool's own TimeoutError, an exception like any other
        raise CallError(f"The tool did not finish within {limit:g} s.") from None
    return output_text(value)


async def _invoke(tool: Tool, arguments: dict[str, Any]) -> Any:
    if tool.is_async:
        return await tool.func(**arguments)
    loop = asyncio.get_running_loop()
    # The caller's context variables go along (a trace's span, as
    # asyncio.to_thread does). Cancelled (the timeout, the answer stopped),
    # this await ends at once; the thread goes on to the tool's end and its
    # result goes nowhere.
    in_context = functools.partial(contextvars.copy_context().run, _in_thread, tool.func, arguments)
    return await loop.run_in_executor(_threads(), in_context)


def _in_thread(func: Callable[..., Any], arguments: dict[str, Any]) -> Any:
    # A tool's queries use this thread's own connections, closed when it
    # returns: tool calls are few, and a pool of 32 threads keeping theirs
    # open would hold connections while answers stream.
    try:
        return func(**arguments)
    finally:
        connections.close_all()


def _parsed(arguments: object) -> dict[str, Any]:
    if isinstance(arguments, dict):  # some proxies send an object (providers/tool_calls.py keeps it as JSON)
        return arguments
    text = arguments.strip() if isinstance(arguments, str) else ""
    if not text:  # a call of a tool without parameters may come with no arguments at all
        return {}
    try:
        parsed = orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        raise CallError(f"The arguments are not JSON: {exc}.") from None
    if not isinstance(parsed, dict):
        raise CallError(f"The arguments must be a JSON object, not {JSON_TYPES.get(type(parsed), 'that')}.")
    return parsed


def _summary(exc: "pydantic.ValidationError") -> str:
    """Each problem as `where: what`, e.g. `items.0.quantity: Input should be a valid integer`."""
    problems = (f"{'.'.join(map(str, error['loc'])) or 'arguments'}: {error['msg']}" for error in exc.errors())
    return "; ".join(problems)
