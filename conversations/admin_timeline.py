"""A tool-using answer as the admin shows it: one entry per model call, with
what it cost, what it said, and each tool call it made with its approval
and its result. Plain data, put together from the saved turn (its output in
stream order), its AnswerStep rows (what each call but the last cost) and
its ToolRun rows (who decided, when, how long a call took); the template
turn/steps.html lays it out.

Only the model calls that ended in tool calls have rows of their own: the
turn's usage is the sum of every call, so the last call's is that sum less
the earlier calls', shown as worked out rather than measured.
"""

from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

import orjson
from django.template.loader import render_to_string
from django.utils.dateparse import parse_datetime
from django.utils.safestring import SafeString

from .models import AnswerStep, ToolRun, Turn
from .providers.kinds import APPROVAL, STEP, TOOL_CALL, TOOL_RESULT
from .serializers import pretty_json
from .stream.output import saved_output

LONG_TEXT = 600  # a text or an output longer than this is folded
PREVIEW = 160  # the characters of a folded text shown
STEPS_FIELDSET = ("Steps", {"fields": ("steps",)})  # the admin pages' section, shown when uses_tools
STEPS_CSS = {"all": ["conversations/admin/steps.css"]}  # a file: the CSP refuses inline styles


@dataclass
class Usage:
    tokens_in: int | None
    tokens_out: int | None
    cost: Decimal | None
    measured: bool  # False: the turn's total less the earlier calls'
    estimated: bool = False


@dataclass
class Decision:
    state: str  # approved, denied, undecided (nobody decided before the answer ended)
    decided_by: str | None = None
    decided_at: datetime | None = None
    reason: str = ""


@dataclass
class ToolCall:
    kind = TOOL_CALL  # not a field: tells the template a call from a Text
    id: str
    name: str
    arguments: str  # laid out when it is JSON
    decision: Decision | None = None  # None: the tool needs no approval
    output: str | None = None
    error: str | None = None
    duration_ms: int | None = None

    @property
    def ended(self) -> bool:
        return self.output is not None or self.error is not None

    @property
    def long_output(self) -> bool:
        return len(self.output or "") > LONG_TEXT


@dataclass
class Text:
    kind: str  # delta, reasoning or refusal
    text: str

    @property
    def long(self) -> bool:
        return len(self.text) > LONG_TEXT

    @property
    def preview(self) -> str:
        return self.text[:PREVIEW]


@dataclass
class ModelCall:
    n: int
    model: str
    usage: Usage | None
    entries: list[Text | ToolCall] = field(default_factory=list)  # in the order they streamed


def uses_tools(turn: Turn) -> bool:
    return bool(turn.tool_calls)


def render_steps(turn: Turn) -> SafeString:
    """The timeline as HTML, every text in it escaped by the template."""
    return render_to_string("admin/conversations/turn/steps.html", {"calls": timeline(turn)})


def timeline(turn: Turn) -> list[ModelCall]:
    """The answer's model calls in order; empty for an answer without tools."""
    if not uses_tools(turn):
        return []
    steps = {step.n: step for step in AnswerStep.objects.filter(turn_id=turn.pk)}
    runs = {run.call_id: run for run in ToolRun.objects.filter(turn_id=turn.pk).select_related("decided_by")}
    calls = _split_by_model_call(turn)
    for call in calls:
        call.model = steps[call.n].model if call.n in steps else turn.model
        call.usage = _usage(call.n, turn, steps, last=call.n == len(calls))
        for entry in call.entries:
            if isinstance(entry, ToolCall):
                _add_run(entry, runs.get(entry.id))
    return calls


def _split_by_model_call(turn: Turn) -> list[ModelCall]:
    """The saved output walked in stream order, a new model call at each step."""
    model_calls = [ModelCall(n=1, model="", usage=None)]
    tool_calls: dict[str, ToolCall] = {}
    for kind, text, _ in saved_output(turn).since(0):
        if kind == STEP:
            model_calls.append(ModelCall(n=orjson.loads(text)["n"], model="", usage=None))
        elif kind == TOOL_CALL:
            _add_call(model_calls[-1], tool_calls, orjson.loads(text))
        elif kind not in (APPROVAL, TOOL_RESULT):  # those two: matched to their call from the saved fields
            _add_text(model_calls[-1], kind, text)
    for saved in turn.tool_calls:  # a turn saved without output_runs: its calls come after its text
        if saved.get("id", "") not in tool_calls:
            _add_call(model_calls[-1], tool_calls, saved)
    _add_saved_outcomes(turn, tool_calls)
    return model_calls


def _add_call(model_call: ModelCall, tool_calls: dict[str, ToolCall], saved: dict[str, Any]) -> None:
    call = ToolCall(
        id=saved.get("id", ""), name=saved.get("name", ""), arguments=pretty_json(saved.get("arguments", ""))
    )
    tool_calls[call.id] = call
    model_call.entries.append(call)


def _add_text(call: ModelCall, kind: str, text: str) -> None:
    last = call.entries[-1] if call.entries else None
    if isinstance(last, Text) and last.kind == kind:
        last.text += text
    else:
        call.entries.append(Text(kind=kind, text=text))


def _add_saved_outcomes(turn: Turn, by_id: dict[str, ToolCall]) -> None:
    for result in turn.tool_results or ():
        if (call := by_id.get(result.get("id", ""))) is not None:
            call.output, call.error = result.get("output"), result.get("error")
            call.duration_ms = result.get("duration_ms")
    for request in turn.approvals or ():
        if (call := by_id.get(request.get("id", ""))) is not None:
            call.decision = _saved_decision(request)


def _saved_decision(request: dict[str, Any]) -> Decision:
    approved = request.get("approved")
    state = "undecided" if approved is None else "approved" if approved else "denied"
    when = parse_datetime(request["decided_at"]) if request.get("decided_at") else None
    return Decision(state, request.get("decided_by"), when, request.get("reason") or "")


def _add_run(call: ToolCall, run: ToolRun | None) -> None:
    """What the call's row knows that the turn may not: a result the turn
    missed (it ended while the call ran), and the decision's details."""
    if run is None:
        return
    if not call.ended:
        call.output, call.error, call.duration_ms = run.output, run.error, run.duration_ms
    if run.approval in (ToolRun.Approval.APPROVED, ToolRun.Approval.DENIED):
        who = run.decided_by.get_username() if run.decided_by else None
        call.decision = Decision(run.approval, who, run.decided_at, run.decision_reason)
    elif run.approval and call.decision is None:
        call.decision = Decision("undecided")


def _usage(n: int, turn: Turn, steps: dict[int, AnswerStep], *, last: bool) -> Usage | None:
    if n in steps:
        step = steps[n]
        return Usage(step.tokens_in, step.tokens_out, step.cost, measured=True, estimated=step.tokens_estimated)
    if not last or len(steps) != n - 1:
        return None  # an earlier call's row is missing: nothing to subtract from
    earlier = steps.values()
    return Usage(
        _less(turn.tokens_in, [step.tokens_in for step in earlier]),
        _less(turn.tokens_out, [step.tokens_out for step in earlier]),
        _less(turn.cost, [step.cost for step in earlier]),
        measured=not steps,  # the only call: the turn's own counts
        estimated=turn.tokens_estimated,
    )


def _less(total: Any, parts: list[Any]) -> Any:
    """The total less its parts; None when any of them is not known."""
    if total is None or any(part is None for part in parts):
        return None
    rest = total - sum(parts)
    return rest if rest >= 0 else None
