"""Answers lost with their process, given the turn they never got.

With Redis, another process saves a dead one's answers from their journals
(live/leases.py calls `save_lost_answer`, handed to it below, so live/
stays below this layer). Without Redis (one process), the first message
after a start saves, empty, the answers of questions asked before it.
Either way the turn is `error` / `process_lost`: a version to regenerate or
continue.
"""

import functools
import logging
import uuid
from datetime import datetime, timedelta
from typing import Any

from django.db import transaction
from django.db.models import Exists, F, OuterRef
from django.utils import timezone

from . import state
from .conf import conf
from .live.leases import PROCESS_LOST, when_an_answer_is_lost
from .memory.tasks import enqueue_update
from .models import Conversation, Spend, Turn
from .providers.base import estimate_tokens
from .spend import ledger
from .storage.threads import run_db
from .stream.output import Parts

logger = logging.getLogger(__name__)

# Questions asked before this moment cannot be answered by this process.
PROCESS_STARTED = timezone.now()
# How far back a lost answer is looked for: no answer streams for longer.
LOST_ANSWERS_WINDOW = timedelta(days=1)
_lost_answers_saved = False


@transaction.atomic
def save_lost_answers(*, before: datetime) -> int:
    """Give each question whose answer was never written (its process died
    while it streamed) that answer's turn: empty, failed as `process_lost`,
    a version the user can regenerate. Questions from `before` on may be
    answered still: only earlier ones are looked at. Without Redis there is
    one process, so at its start nothing else can be answering them."""
    answered = Turn.objects.filter(pk=OuterRef("reply_id"))
    lost = Turn.objects.filter(
        role=Turn.Role.USER, reply_id__isnull=False, created_at__lt=before, created_at__gte=before - LOST_ANSWERS_WINDOW
    ).filter(~Exists(answered))
    saved = 0
    for question in lost:
        position = _reserve_one_position(question.conversation_id)
        Turn.objects.create(
            id=question.reply_id,
            conversation_id=question.conversation_id,
            position=position,
            parent=question.pk,
            role=Turn.Role.ASSISTANT,
            status=Turn.Status.FAILED,
            finish_reason=Turn.FinishReason.ERROR,
            error_code=PROCESS_LOST,
            error_detail="The server stopped before this answer was saved; regenerate it.",
            usage_source=Turn.UsageSource.NONE,
        )
        saved += 1
    if saved:
        logger.warning("saved %d answers lost when the last process stopped as %s", saved, PROCESS_LOST)
    return saved


def _reserve_one_position(conversation_id: uuid.UUID) -> int:
    Conversation.objects.filter(pk=conversation_id).update(next_position=F("next_position") + 2)
    return Conversation.objects.values_list("next_position", flat=True).get(pk=conversation_id) - 1


@transaction.atomic
def save_lost_answer(*, turn_id: str, row: dict[str, Any], parts: Parts) -> bool:
    """With Redis: the turn of an answer whose process died mid-answer, with
    the output its journal held (live/leases.py). False if it was saved
    already, or its conversation is gone."""
    if Turn.objects.filter(pk=turn_id).exists():
        return False
    _record_lost_spend(turn_id, row, parts)  # once per turn id, conversation or not
    conversation = Conversation.objects.select_for_update().filter(pk=row["conversation"]).first()
    if conversation is None:
        return False
    Turn.objects.create(
        id=turn_id,
        conversation=conversation,
        position=row["position"],
        parent=row["parent"],
        role=Turn.Role.ASSISTANT,
        status=Turn.Status.FAILED,
        finish_reason=Turn.FinishReason.ERROR,
        error_code=PROCESS_LOST,
        error_detail="The server generating this answer stopped; what it had written is saved.",
        content=parts.content,
        reasoning=parts.reasoning,
        refusal=parts.refusal,
        tool_calls=parts.tool_calls,
        tool_results=parts.tool_results,
        output_runs=parts.output_runs,
        model=row["model"],
        model_name=row["model_name"],
        provider=row["provider"],
        trace_id=row["trace_id"],
        api_key_id=row["api_key_id"],
        usage_source=Turn.UsageSource.ESTIMATED if parts.content else Turn.UsageSource.NONE,
        tokens_out=estimate_tokens(parts.content) if parts.content else None,
        tokens_estimated=True,
        cost=Spend.objects.filter(turn_id=turn_id, kind=Spend.Kind.ANSWER).values_list("cost", flat=True).first(),
    )
    transaction.on_commit(functools.partial(enqueue_update, conversation.pk))
    return True


def _record_lost_spend(turn_id: str, row: dict[str, Any], parts: Parts) -> None:
    """What the lost answer's output cost, estimated, in the ledger (its
    prompt's count died with the process)."""
    if parts.content and row.get("owner_id") is not None:
        tokens_out = estimate_tokens(parts.content)
        ledger.record(
            kind=Spend.Kind.ANSWER,
            user_id=row["owner_id"],
            api_key_id=row["api_key_id"],
            model=row["model"],
            conversation_id=row["conversation"],
            turn_id=turn_id,
            tokens_in=None,
            tokens_out=tokens_out,
            estimated=True,
            cost=ledger.price(row["model"], tokens_in=None, tokens_cached=None, tokens_out=tokens_out),
        )


async def _save_lost_answer(turn_id: str, row: dict[str, Any], parts: Parts) -> bool:
    return await run_db(save_lost_answer, turn_id=turn_id, row=row, parts=parts)


when_an_answer_is_lost(_save_lost_answer)


@state.forgotten_when("REDIS_URL")
def forget_lost_answers_saved() -> None:
    global _lost_answers_saved
    _lost_answers_saved = False


async def save_lost_answers_once() -> None:
    """On this process's first message, without Redis (with it, every
    process may be answering: the lost are found by their lapsed leases)."""
    global _lost_answers_saved
    if _lost_answers_saved or conf.REDIS_URL:
        return
    _lost_answers_saved = True
    try:
        await run_db(save_lost_answers, before=PROCESS_STARTED)
    except Exception:
        logger.exception("could not save the answers lost when the last process stopped")
