"""An answer's output as it grows: its text, reasoning, refusal and tool
calls in the order the model produced them, held as one sequence of
characters, appended a piece at a time and read from any character offset.

Event ids count these characters (a tool call, a request for approval, a
tool's result and a step count the characters of their JSON), so an id names one place in the output
whatever its kind, live or saved: the saved turn keeps each kind in its own
column and the order as runs of (kind, length), and `saved_output` puts them
back together (a step's JSON is its number, counted from 2 in the runs).
"""

from bisect import bisect_right
from dataclasses import dataclass
from typing import Any

import orjson

from ..providers.kinds import APPROVAL, REASONING, REFUSAL, STEP, TEXT, TOOL_CALL, TOOL_RESULT, WHOLE
from ..providers.tool_calls import call_text

# Pieces are merged in runs of this many, so a long answer costs about its
# characters in memory rather than a string object per token (10,000 short
# tokens: ~60 KB instead of ~540 KB), at the price of one join per run. 16
# rather than 64: an open stream's loose tokens were ~2 KB of its memory.
MERGE_RUN = 16

Segment = tuple[str, str, int]  # (kind, text, offset after it): an output event


@dataclass(frozen=True)
class Parts:
    """The output taken apart, as a turn saves it."""

    content: str
    reasoning: str
    refusal: str
    tool_calls: list[dict[str, str]]
    tool_results: list[dict[str, Any]]  # the tool loop's: ToolResult.event() of each call run
    approvals: list[dict[str, Any]]  # the tool loop's requests for approval: {"id", "name", "arguments"}
    output_runs: list[list[Any]]  # [[kind, length], ...]; empty when it is all text


class Output:
    __slots__ = ("_pieces", "_loose", "length", "_starts", "_kinds")

    def __init__(self) -> None:
        self._pieces: list[str] = []
        self._loose = 0  # pieces at the end not merged yet
        self.length = 0
        self._starts: list[int] = []  # where each run of one kind begins
        self._kinds: list[str] = []  # and its kind; each tool call is a run of its own

    def append(self, text: str, kind: str = TEXT) -> None:
        if not text:
            return
        if not self._kinds or kind != self._kinds[-1] or kind in WHOLE:
            self._starts.append(self.length)
            self._kinds.append(kind)
        self._pieces.append(text)
        self.length += len(text)
        self._loose += 1
        if self._loose == MERGE_RUN:
            self._pieces[-MERGE_RUN:] = ["".join(self._pieces[-MERGE_RUN:])]
            self._loose = 0

    def since(self, offset: int) -> list[Segment]:
        """The output after the first `offset` characters, a segment per run.
        An offset inside a tool call, result or step (no event id falls
        there) gives the whole of it."""
        if len(self._kinds) == 1:  # nearly every answer: one kind of output
            return [(self._kinds[0], self._tail(offset), self.length)] if offset < self.length else []
        first = max(0, bisect_right(self._starts, offset) - 1)
        if self._kinds and self._kinds[first] in WHOLE and offset < self._end(first):
            offset = min(offset, self._starts[first])
        tail, segments = self._tail(offset), []
        for run in range(first, len(self._kinds)):
            end = self._end(run)
            if end > offset:
                segments.append((self._kinds[run], tail[max(self._starts[run], offset) - offset : end - offset], end))
        return segments

    def _end(self, run: int) -> int:
        return self._starts[run + 1] if run + 1 < len(self._starts) else self.length

    def parts(self) -> Parts:
        taken: dict[str, list[str]] = {kind: [] for kind in (TEXT, REASONING, REFUSAL, *WHOLE)}
        runs = []
        for kind, text, _ in self.since(0):
            taken[kind].append(text)
            runs.append([kind, len(text)])
        return Parts(
            content="".join(taken[TEXT]),
            reasoning="".join(taken[REASONING]),
            refusal="".join(taken[REFUSAL]),
            tool_calls=[orjson.loads(call) for call in taken[TOOL_CALL]],
            tool_results=[orjson.loads(result) for result in taken[TOOL_RESULT]],
            approvals=[orjson.loads(request) for request in taken[APPROVAL]],
            output_runs=[] if all(kind == TEXT for kind, _ in runs) else runs,
        )

    def _tail(self, offset: int) -> str:
        """The characters after `offset`. Walks back from the end, so reading
        the newest output touches only the newest pieces."""
        tail: list[str] = []
        end = self.length
        for piece in reversed(self._pieces):
            if end <= offset:
                break
            start = end - len(piece)
            tail.append(piece[max(0, offset - start) :])
            end = start
        return "".join(reversed(tail))

    def __str__(self) -> str:
        return "".join(self._pieces)


def saved_output(turn: Any) -> Output:
    """A saved turn's output, in the order it streamed (a Turn, or anything
    with its content, reasoning, refusal, tool_calls and output_runs)."""
    output = Output()
    runs = turn.output_runs or [[TEXT, len(turn.content)]]
    sources = {TEXT: turn.content or "", REASONING: turn.reasoning or "", REFUSAL: turn.refusal or ""}
    taken = dict.fromkeys(sources, 0)
    calls = iter(turn.tool_calls or ())
    results = iter(getattr(turn, "tool_results", None) or ())
    approvals = iter(getattr(turn, "approvals", None) or ())
    steps = 1
    for kind, length in runs:
        if kind == TOOL_CALL:
            call = next(calls, None)
            if call is not None:
                output.append(call_text(call["id"], call["name"], call["arguments"]), TOOL_CALL)
        elif kind == TOOL_RESULT:
            result = next(results, None)
            if result is not None:
                output.append(result_text(result), TOOL_RESULT)
        elif kind == APPROVAL:
            request = next(approvals, None)
            if request is not None:
                output.append(approval_text(request), APPROVAL)
        elif kind == STEP:
            steps += 1
            output.append(step_text(steps), STEP)
        elif kind in sources and length:
            output.append(sources[kind][taken[kind] : taken[kind] + length], kind)
            taken[kind] += length
    return output


def result_text(event: dict[str, Any]) -> str:
    """A `tool_result` event's text (ToolResult.event()), built field by field
    as call_text is, so a result read back from jsonb has the same length."""
    outcome = {"error": event["error"]} if event.get("error") is not None else {"output": event.get("output")}
    return orjson.dumps(
        {"id": event["id"], "name": event["name"], **outcome, "duration_ms": event["duration_ms"]}
    ).decode()


def approval_text(request: dict[str, Any]) -> str:
    """An `approval_request` event's text, from its fields alone (a saved
    request also holds its decision, which the event never carried)."""
    return orjson.dumps({"id": request["id"], "name": request["name"], "arguments": request["arguments"]}).decode()


def step_text(n: int) -> str:
    """A `step` event's text: the number of the model call it comes before."""
    return f'{{"n":{n}}}'
