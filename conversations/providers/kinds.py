"""The kinds of output an answer streams. Each is also the name of the event a
client gets for it (stream/events.py takes them from here).

The model streams text, reasoning, refusals and tool calls; the tool loop
(stream/tool_loop.py) adds an `approval_request` for a call that waits for
a person's approval, a `tool_result` as each call ends and a `step` before
each model call after the first. Those four are JSON objects, each a run of
its own in the output (no event id falls inside one).
"""

TEXT, REASONING, TOOL_CALL, REFUSAL = "delta", "reasoning", "tool_call", "refusal"
TOOL_RESULT, STEP, APPROVAL = "tool_result", "step", "approval_request"
WHOLE = frozenset({TOOL_CALL, TOOL_RESULT, STEP, APPROVAL})  # JSON objects, never cut or joined
Piece = tuple[str, str]  # (kind, text); a tool call's text is its JSON (tool_calls.py)
