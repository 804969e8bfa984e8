"""Models as the API's JSON."""

import json
from typing import Any

from .models import Conversation, ConversationMemory, Feedback, Prompt, QueuedMessage, StoredFile, ToolRun, Turn


def conversation_json(conversation: Conversation) -> dict[str, Any]:
    return {
        "id": str(conversation.pk),
        "title": conversation.title,
        "model": conversation.model or None,
        "tools": conversation.tools,
        "system_prompt": conversation.system_prompt,  # "": LLM_SYSTEM_PROMPT
        "parameters": conversation.parameters,
        "response_format": conversation.response_format,
        "prompt": conversation.prompt_id,  # the staff's prompt it was started from, by name
        "created_at": conversation.created_at.isoformat(),
        "updated_at": conversation.updated_at.isoformat(),
    }


PROMPT_DESCRIPTION_CHARS = 120


def prompt_json(prompt: Prompt) -> dict[str, Any]:
    """A staff's prompt as GET api/prompts lists it: its system prompt's
    first line says what it is for (the admin keeps no other description)."""
    first_line = next((line.strip() for line in prompt.system_prompt.splitlines() if line.strip()), "")
    if len(first_line) > PROMPT_DESCRIPTION_CHARS:
        first_line = first_line[: PROMPT_DESCRIPTION_CHARS - 1].rstrip() + "…"
    return {
        "name": prompt.name,
        "description": first_line,
        "parameters": prompt.parameters,
        "response_format": prompt.response_format,
    }


def queued_json(queued: QueuedMessage) -> dict[str, Any]:
    """A message waiting for the answer in progress (the 202, the conversation's `queued`)."""
    return {
        "turn_id": str(queued.pk),  # its turn's, once it is answered
        "answer_turn_id": str(queued.answer_id),  # follow GET api/turns/<it>/events
        "conversation_id": str(queued.conversation_id),
        "content": queued.content,
        "files": queued.file_ids,
        "status": "queued",
        "created_at": queued.created_at.isoformat(),
    }


def file_json(file: StoredFile) -> dict[str, Any]:
    """An upload, as the API answers with it."""
    return {
        **file_summary(file),
        "created_at": file.created_at.isoformat(),
        "conversation_id": str(file.conversation_id) if file.conversation_id else None,
    }


def file_summary(file: StoredFile) -> dict[str, Any]:
    """What a message keeps of each of its files (Turn.files), as it was when sent."""
    return {
        "id": str(file.pk),
        "name": file.name,
        "size": file.size,
        "content_type": file.content_type,
        "kind": file.kind,
        "width": file.width,
        "height": file.height,
        "text_chars": file.text_chars,  # a PDF's or a text file's characters of text (0 for an image)
    }


def feedback_json(feedback: Feedback | None) -> dict[str, Any] | None:
    if feedback is None:
        return None
    return {"rating": feedback.rating, "comment": feedback.comment, "updated_at": feedback.updated_at.isoformat()}


def pretty_json(text: str) -> str:
    """A tool call's arguments (JSON the model wrote) laid out for reading;
    as the model wrote them when they are not JSON."""
    try:
        return json.dumps(json.loads(text), ensure_ascii=False, indent=2)
    except (TypeError, ValueError):
        return text


def approval_json(run: ToolRun) -> dict[str, Any]:
    """A decision on a tool call, as POST …/approvals answers it."""
    return {
        "tool_call_id": run.call_id,
        "approved": run.approval == ToolRun.Approval.APPROVED,
        "reason": run.decision_reason,
        "decided_by": run.decided_by.get_username() if run.decided_by else None,
        "decided_at": run.decided_at.isoformat() if run.decided_at else None,
    }


def _feedback_of(turn: Turn) -> Feedback | None:
    # Read only if the query fetched it (select_related): this may run on the
    # event loop, where a query of its own is not allowed. An answer just
    # streamed has none.
    if not Turn.feedback.is_cached(turn):  # type: ignore[attr-defined]
        return None
    try:
        return turn.feedback
    except Feedback.DoesNotExist:
        return None


def turn_json(turn: Turn) -> dict[str, Any]:
    return {
        "id": str(turn.pk),
        "position": turn.position,
        "role": turn.role,
        "parent": str(turn.parent) if turn.parent else None,
        # Its versions, itself among them, oldest first (set by branches.Branches).
        "siblings": [str(pk) for pk in getattr(turn, "siblings", [turn.pk])],
        "content": turn.content,
        "files": turn.files,  # a message's: [{id, name, size, content_type, kind, width, height}]
        "file_cuts": turn.file_cuts,  # an answer's: files whose text its prompt cut
        "reasoning": turn.reasoning,
        "tool_calls": turn.tool_calls,
        "tool_results": turn.tool_results,
        "approvals": turn.approvals,
        "output_runs": turn.output_runs,  # the order of the kinds: [[kind, length], ...] (stream/output.py)
        "refusal": turn.refusal,
        "status": turn.status,
        "finish_reason": turn.finish_reason or None,
        "error_code": turn.error_code or None,
        "model": turn.model or None,
        "model_name": turn.model_name or None,
        "route": turn.route,
        "attempts": turn.attempts,
        "ttft_ms": turn.ttft_ms,
        "ttft_answer_ms": turn.ttft_answer_ms,
        "duration_ms": turn.duration_ms,
        "tokens_in": turn.tokens_in,
        "tokens_out": turn.tokens_out,
        "tokens_cached": turn.tokens_cached,
        "tokens_reasoning": turn.tokens_reasoning,
        "tokens_estimated": turn.tokens_estimated,
        "usage_source": turn.usage_source or None,
        "cost": None if turn.cost is None else str(turn.cost),
        "cancel_latency_ms": turn.cancel_latency_ms,
        "tokens_after_cancel": turn.tokens_after_cancel,
        "prompt_turns": turn.prompt_turns,
        "prompt_tokens": turn.prompt_tokens,
        "parameters": turn.parameters,  # an answer's: those its model call was made with
        "output_valid": turn.output_valid,  # with a response_format: the answer is JSON of that format
        "trace_id": turn.trace_id or None,
        "feedback": feedback_json(_feedback_of(turn)) if turn.role == Turn.Role.ASSISTANT else None,
        "created_at": turn.created_at.isoformat(),
    }


def memory_json(memory: ConversationMemory | None) -> dict[str, Any]:
    if memory is None:
        memory = ConversationMemory()  # not made yet: nothing covered
    return {
        "summary": memory.summary,
        "facts": memory.facts,
        "version": memory.version,
        "covers_turn": str(memory.covers_turn_id) if memory.covers_turn_id else None,
        "covers_position": memory.covers_position if memory.covers_position >= 0 else None,
        "status": memory.status,
        "error": memory.error or None,
        "updated_at": memory.updated_at.isoformat() if memory.updated_at else None,
    }


def conversation_detail_json(conversation: Conversation, turns: list[Turn]) -> dict[str, Any]:
    return {
        **conversation_json(conversation),
        "leaf": str(conversation.leaf) if conversation.leaf else None,
        "memory": memory_json(getattr(conversation, "memory", None)),
        "turns": [turn_json(turn) for turn in turns],
    }
