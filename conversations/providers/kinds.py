"""The kinds of output a model streams. Each is also the name of the event a
client gets for it (stream/events.py takes them from here)."""

TEXT, REASONING, TOOL_CALL, REFUSAL = "delta", "reasoning", "tool_call", "refusal"
Piece = tuple[str, str]  # (kind, text); a tool call's text is its JSON (tool_calls.py)
