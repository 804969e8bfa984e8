"""What the relay's tool loop needs beyond the model call (relay.py runs it):
the tools and how each call is recorded, the messages that carry a step's
calls and results to the next model call, and the answer's usage summed
over its model calls.

    model call ─ tool calls ─▶ run_calls ─ tool_result per call ─▶ step {"n"} ─▶ model call …

The relay never touches the ORM: the Toolbox it is handed records each call
before it runs (`claim`, which gives back a result for a call id already
recorded, so no call runs twice), reads the decision on a call that needs
approval, saves each step with its calls' results once its tools have run,
and says whether the budgets allow another model call, through the
ToolRecords answering.py makes (tool_runs.py, on the database threads).
"""

from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any, Protocol

import orjson

from ..providers import STEP, TEXT, TOOL_CALL, TOOL_RESULT, Completion, Message
from ..providers.estimates import prompt_tokens
from ..tools import Tool, ToolResult
from .approvals import Decision
from .output import Output, saved_output

Ask = Callable[[Mapping[str, Any]], Awaitable[Decision]]  # asks the user about a call, waits for the decision


class ToolRecords(Protocol):
    """How an answer's tool calls are kept (answering.py's, on the database
    threads): each call recorded before it runs, so no call id runs twice;
    a decision on a call that needs approval; each step, with its calls'
    results, when its tools have run; and the budgets between steps."""

    async def claim(self, call: Mapping[str, Any], *, approval: bool) -> ToolResult | None:
        """Record a call before it runs (`approval`: as waiting for one).
        None lets it run; a result stands for a call already recorded."""

    async def decision(self, call_id: str) -> Decision | None:
        """The decision on a call waiting for approval; None while pending."""

    async def save_step(self, step: "Step", results: list[ToolResult]) -> None:
        """A step whose tools have run, with their results."""

    async def within_budget(self, steps: list["Step"]) -> bool:
        """May another model call be made, counting these steps (not in the ledger yet)?"""


@dataclass(frozen=True)
class Step:
    """One model call of the loop and what it streamed, as it is saved when its tools have run."""

    n: int
    model: str
    output: list[list[str]]  # [kind, text] pairs, in order
    usage: dict[str, Any]  # call_usage's


@dataclass(frozen=True)
class Toolbox:
    """An answer's tools, and how their calls are recorded."""

    tools: list[Tool]
    records: ToolRecords

    def specs(self) -> list[dict[str, Any]]:
        return [tool.spec() for tool in self.tools]

    def needs_approval(self, name: str) -> bool:
        return any(tool.name == name and tool.needs_approval for tool in self.tools)

    async def admit(self, call: Mapping[str, Any], ask: Ask) -> ToolResult | None:
        """Before a call runs (run_calls' `claim`): None lets it run. A call
        recorded already is not run again. A tool that needs approval is
        asked about (`ask`), and runs only if approved; denied, the model is
        told so, with the reason."""
        call_id, name = str(call.get("id", "")), str(call.get("name", ""))
        approval = self.needs_approval(name)
        saved = await self.records.claim(call, approval=approval)
        if saved is not None:
            return saved
        if approval and not (decision := await ask(call)).approved:
            return ToolResult(id=call_id, name=name, error=declined(decision.reason))
        return None


def declined(reason: str) -> str:
    said = f" Their reason: {reason}" if reason else ""
    return f"The user declined to run this tool.{said}"


def step_output(output: Output, start: int) -> tuple[str, list[dict[str, str]]]:
    """One model call's text and tool calls: the output after `start`."""
    text, calls = [], []
    for kind, piece, _ in output.since(start):
        if kind == TEXT:
            text.append(piece)
        elif kind == TOOL_CALL:
            calls.append(orjson.loads(piece))
    return "".join(text), calls


def step_messages(text: str, calls: list[dict[str, str]], results: list[ToolResult]) -> list[Message]:
    """The assistant's message of a step's text and calls (OpenAI's shape),
    then a `tool` message for each result."""
    return [assistant_message(text, calls), *(tool_message(result.id, result.content) for result in results)]


def assistant_message(text: str, calls: list[dict[str, Any]]) -> Message:
    tool_calls = [
        {"id": call["id"], "type": "function", "function": {"name": call["name"], "arguments": call["arguments"]}}
        for call in calls
    ]
    return {"role": "assistant", "content": text, "tool_calls": tool_calls}


def tool_message(call_id: str, content: str) -> Message:
    return {"role": "tool", "tool_call_id": call_id, "content": content}


def answer_messages(
    content: str, *, tool_calls: list[dict], tool_results: list[dict], output_runs: list[list[Any]]
) -> list[Message]:
    """A saved answer whose tools ran, as the messages a later prompt carries
    (output_messages)."""
    saved = SimpleNamespace(
        content=content,
        reasoning="",
        refusal="",
        tool_calls=tool_calls,
        tool_results=tool_results,
        output_runs=output_runs,
    )
    return output_messages((kind, piece) for kind, piece, _ in saved_output(saved).since(0))


def output_messages(pieces: Iterable[tuple[str, str]]) -> list[Message]:
    """An answer's output, (kind, text) in order, as the messages a prompt
    carries: each step's assistant message (text and calls) and its `tool`
    messages, then the last step's text. A call without a result (the
    answer stopped while it ran) is left out: OpenAI refuses a call that no
    `tool` message answers."""
    messages: list[Message] = []
    text: list[str] = []
    calls: list[dict] = []
    results: dict[str, str] = {}

    def flush() -> None:
        answered = [call for call in calls if call["id"] in results]
        said = "".join(text)
        if answered:
            messages.append(assistant_message(said, answered))
            messages.extend(tool_message(call["id"], results[call["id"]]) for call in answered)
        elif said:
            messages.append({"role": "assistant", "content": said})
        text.clear()
        calls.clear()
        results.clear()

    for kind, piece in pieces:
        if kind == TEXT:
            text.append(piece)
        elif kind == TOOL_CALL:
            calls.append(orjson.loads(piece))
        elif kind == TOOL_RESULT:
            result = orjson.loads(piece)
            results[result["id"]] = ToolResult(**result).content
        elif kind == STEP:
            flush()
    flush()
    return messages


def transcript_text(content: str, tool_results: list[dict]) -> str:
    """An answer's text as a transcript shows it (the memory worker's): what
    its tools returned, then its text."""
    if not tool_results:
        return content
    notes = (
        f"[{r['name']} failed: {r['error']}]" if r.get("error") is not None else f"[{r['name']} returned {r['output']}]"
        for r in tool_results
    )
    return "\n".join([*notes, content])


# --- usage ---------------------------------------------------------------------------

NO_USAGE: dict[str, Any] = {"tokens_in": None, "tokens_out": None, "tokens_estimated": False, "usage_source": "none"}
COUNTS = ("tokens_in", "tokens_out", "tokens_cached", "tokens_reasoning")


def call_usage(completion: Completion, messages: list[Message], *, produced: bool) -> dict[str, Any]:
    """One model call's counts and where they came from: `reported` by the
    server, `estimated` when the stream ended before its usage chunk (cancel,
    disconnect, error: the server may still bill what it produced), or
    `none` when the call was never accepted."""
    if completion.usage_reported:
        source = "reported"
    elif completion.responded or produced:
        source = "estimated"
    else:
        return NO_USAGE
    # A count the server did not give is estimated from what was sent and
    # what the call wrote (providers/estimates.py), tool calls and reasoning included.
    tokens_in = completion.tokens_in if completion.tokens_in is not None else prompt_tokens(messages)
    tokens_out = completion.tokens_out if completion.tokens_out is not None else completion.output.tokens()
    reasoning = completion.tokens_reasoning
    if source == "estimated":  # part of the output, never more (a provider's own count included)
        reasoning = completion.output.reasoning_tokens() if reasoning is None else min(reasoning, tokens_out)
    return {
        "tokens_in": tokens_in,
        "tokens_out": tokens_out,
        "tokens_cached": completion.tokens_cached,
        "tokens_reasoning": reasoning,
        "tokens_estimated": source == "estimated" or completion.tokens_out is None or completion.tokens_in is None,
        "usage_source": source,
    }


def summed(usages: list[dict[str, Any]]) -> dict[str, Any]:
    """The answer's usage: its model calls' counts added up (a count none of
    them has stays None); `reported` only if every counted call's was."""
    counted = [usage for usage in usages if usage["usage_source"] != "none"]
    if len(counted) <= 1:
        return counted[0] if counted else NO_USAGE
    total: dict[str, Any] = {}
    for name in COUNTS:
        values = [usage[name] for usage in counted if usage.get(name) is not None]
        total[name] = sum(values) if values else None
    all_reported = all(usage["usage_source"] == "reported" for usage in counted)
    total["tokens_estimated"] = any(usage["tokens_estimated"] for usage in counted)
    total["usage_source"] = "reported" if all_reported else "estimated"
    return total
