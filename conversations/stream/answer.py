"""What an answer starts from and how it ended: the two records that cross
between the stream and the database."""

import uuid
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from ..providers.base import Message


@dataclass(frozen=True)
class PreparedTurn:
    """Everything the stream needs, read before it starts so that no database
    connection is held while tokens flow."""

    conversation_id: uuid.UUID
    owner_id: int
    user_turn_id: uuid.UUID
    answer_turn_id: uuid.UUID
    answer_position: int
    messages: list[Message]
    prompt_turns: int = 0
    prompt_tokens: int = 0
    api_key_id: int | None = None  # the key that sent the message, if one did
    model_name: str = ""  # the catalogue's model asked (conversations/catalogue.py)
    route: dict[str, str] | None = None  # for "auto": the model the router chose and why (routing.py)
    request_options: dict[str, Any] = field(default_factory=dict)  # the OpenAI door's tools, temperature…
    parent_id: uuid.UUID | None = None  # the answer's question (Turn.parent)
    # Continue: the stopped answer's output, which the new version starts
    # with (already sent and saved once: not model output of this call).
    prefix: list[tuple[str, str]] = field(default_factory=list)
    server_tools: bool = False  # the model's tools may be run (the conversation has not turned them off)
    file_cuts: list[dict[str, Any]] = field(default_factory=list)  # documents the prompt could not carry whole
    response_format: dict[str, Any] | None = None  # the JSON the answer must be (instructions.py)
    parameters: dict[str, Any] = field(default_factory=dict)  # the conversation's and message's, the model's fixed
    # Output tokens of the first model call reserved against the budgets
    # (spend/reservations.py); 0: no budget applied, nothing reserved.
    reserved_out: int = 0


@dataclass(frozen=True)
class Answer:
    """How an answer's stream ended, as it is saved."""

    content: str
    finish_reason: str
    model: str
    provider: str
    trace_id: str
    ttft_ms: int | None  # to the first output of any kind
    duration_ms: int
    tokens_in: int | None
    tokens_out: int | None
    tokens_estimated: bool
    usage_source: str = "none"  # reported, estimated or none
    tokens_cached: int | None = None
    tokens_reasoning: int | None = None
    ttft_answer_ms: int | None = None  # to the first of the answer's text
    reasoning: str = ""
    refusal: str = ""
    tool_calls: list[dict[str, str]] = field(default_factory=list)
    tool_results: list[dict[str, Any]] = field(default_factory=list)  # the tool loop's (stream/output.py)
    approvals: list[dict[str, Any]] = field(default_factory=list)  # requests for approval, decisions added when saved
    output_runs: list[list[Any]] = field(default_factory=list)  # the order of the kinds (stream/output.py)
    cost: Decimal | None = None  # priced when saved
    malformed_chunks: int = 0
    redactions: int = 0  # masked as they streamed (CHATSTREAM_REDACT)
    cancel_latency_ms: float | None = None
    tokens_after_cancel: int | None = None
    error_code: str = ""
    error_detail: str = ""
    attempts: list[dict[str, str]] = field(default_factory=list)  # failed model calls before this answer
    token_gaps: bytes = b""  # ms waited for each piece of text, as unsigned 16-bit numbers
    output_valid: bool | None = None  # with a response_format: the text is JSON of that format
