"""Models as the API's JSON."""

from typing import Any

from .models import Conversation, ConversationMemory, Turn


def conversation_json(conversation: Conversation) -> dict[str, Any]:
    return {
        "id": str(conversation.pk),
        "title": conversation.title,
        "model": conversation.model or None,
        "created_at": conversation.created_at.isoformat(),
        "updated_at": conversation.updated_at.isoformat(),
    }


def turn_json(turn: Turn) -> dict[str, Any]:
    return {
        "id": str(turn.pk),
        "position": turn.position,
        "role": turn.role,
        "content": turn.content,
        "reasoning": turn.reasoning,
        "tool_calls": turn.tool_calls,
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
        "trace_id": turn.trace_id or None,
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
        "memory": memory_json(getattr(conversation, "memory", None)),
        "turns": [turn_json(turn) for turn in turns],
    }
