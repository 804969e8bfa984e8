"""Answers lost with their process, given the turn they never got.

With Redis, another process saves a dead one's answers from their journals
(live/leases.py calls `save_lost_answer`, handed to it below, so live/
stays below this layer). Without Redis (one process), the first message
after a start saves the answers of questions asked before it. Either way
the turn is `error` / `process_lost`: a version to regenerate or continue.

A tool loop's answer keeps every step that had ended (AnswerStep rows,
saved before each next model call) and their usage, whichever holds more:
the steps or the journal. A call still waiting for approval is closed: it
will never run.
"""

import functools
import logging
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from django.db import transaction
from django.db.models import Exists, F, OuterRef
from django.utils import timezone

from . import state, tool_runs
from .conf import conf
from .live.leases import PROCESS_LOST, when_an_answer_is_lost
from .memory.tasks import enqueue_update
from .models import AnswerStep, Conversation, Spend, Turn
from .providers.estimates import text_tokens
from .spend import ledger
from .storage.threads import run_db
from .stream import ends
from .stream.output import Output, Parts

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
    lost = (
        Turn.objects.filter(
            role=Turn.Role.USER,
            reply_id__isnull=False,
            created_at__lt=before,
            created_at__gte=before - LOST_ANSWERS_WINDOW,
        )
        .filter(~Exists(answered))
        .select_related("conversation")
    )
    saved = 0
    for question in lost:
        position, answer_id = _reserve_one_position(question.conversation_id), question.reply_id
        assert answer_id is not None  # the query's filter
        steps = _ended_steps(answer_id)
        tool_runs.close_pending(answer_id)
        if steps.rows:
            owner = {"owner_id": question.conversation.owner_id, "api_key_id": question.api_key_id}
            row = {**owner, "model": steps.rows[-1].model, "conversation": question.conversation_id}
            _record_lost_spend(answer_id, row, _lost_usage(steps.parts, steps), steps.rows)
        Turn.objects.create(
            id=answer_id,
            conversation_id=question.conversation_id,
            position=position,
            parent=question.pk,
            role=Turn.Role.ASSISTANT,
            status=Turn.Status.FAILED,
            finish_reason=Turn.FinishReason.ERROR,
            error_code=PROCESS_LOST,
            error_detail="The server stopped before this answer was saved; regenerate it.",
            **_output_fields(answer_id, steps.parts),
            **_steps_usage(steps.rows),
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
    steps = _ended_steps(turn_id)
    parts = _fuller(parts, steps.parts)
    usage = _lost_usage(parts, steps)
    _record_lost_spend(turn_id, row, usage, steps.rows)  # once per turn id, conversation or not
    tool_runs.record_results(turn_id, parts.tool_results)
    tool_runs.close_pending(turn_id)
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
        **_output_fields(turn_id, parts),
        model=row["model"],
        model_name=row["model_name"],
        provider=row["provider"],
        trace_id=row["trace_id"],
        api_key_id=row["api_key_id"],
        **usage,
        cost=Spend.objects.filter(turn_id=turn_id, kind=Spend.Kind.ANSWER).values_list("cost", flat=True).first(),
    )
    transaction.on_commit(functools.partial(enqueue_update, conversation.pk))
    return True


def _record_lost_spend(
    turn_id: uuid.UUID | str, row: dict[str, Any], usage: dict[str, Any], steps: list[AnswerStep]
) -> None:
    """What the lost answer cost in the ledger: its ended steps' counts and
    costs, and its output after them, estimated (`usage`, _lost_usage's: the
    last call's prompt count died with the process). `row`: its owner_id,
    api_key_id, model and conversation."""
    if usage.get("tokens_out") is None or row.get("owner_id") is None:
        return
    rest = usage["tokens_out"] - sum(step.tokens_out or 0 for step in steps)
    rest_cost = ledger.price(row["model"], tokens_in=None, tokens_cached=None, tokens_out=rest)
    costs = [step.cost for step in steps] + [rest_cost]
    ledger.record(
        kind=Spend.Kind.ANSWER,
        user_id=row["owner_id"],
        api_key_id=row["api_key_id"],
        model=row["model"],
        conversation_id=row["conversation"],
        turn_id=turn_id,
        tokens_in=usage["tokens_in"],
        tokens_out=usage["tokens_out"],
        estimated=True,
        cost=None if all(cost is None for cost in costs) else sum((cost or Decimal(0) for cost in costs), Decimal(0)),
    )


@dataclass(frozen=True)
class EndedSteps:
    """A lost answer's steps that had ended (AnswerStep rows), and their
    output, as it streamed."""

    rows: list[AnswerStep]
    parts: Parts


def _ended_steps(turn_id: uuid.UUID | str) -> EndedSteps:
    rows = tool_runs.saved_steps(turn_id)
    output = Output()
    for step in rows:
        for kind, text in step.output:
            output.append(text, kind)
    return EndedSteps(rows, output.parts())


def _fuller(journal: Parts, steps: Parts) -> Parts:
    """Of two records of one answer's output, the one that holds more (the
    steps, when the journal lost its tail; the journal, which has the step
    that was streaming)."""
    return steps if _length(steps) > _length(journal) else journal


def _length(parts: Parts) -> int:
    return sum(length for _, length in parts.output_runs) if parts.output_runs else len(parts.content)


def _output_fields(turn_id: uuid.UUID | str, parts: Parts) -> dict[str, Any]:
    return {
        "content": parts.content,
        "reasoning": parts.reasoning,
        "refusal": parts.refusal,
        "tool_calls": parts.tool_calls,
        "tool_results": parts.tool_results,
        "approvals": tool_runs.with_decisions(turn_id, parts.approvals),
        "output_runs": parts.output_runs,
    }


def _steps_usage(steps: list[AnswerStep]) -> dict[str, Any]:
    """The counts and cost of a lost answer's ended steps (none: nothing known)."""
    if not steps:
        return {"usage_source": Turn.UsageSource.NONE}
    costs = [step.cost for step in steps if step.cost is not None]
    return {
        "tokens_in": sum(step.tokens_in or 0 for step in steps),
        "tokens_out": sum(step.tokens_out or 0 for step in steps),
        "tokens_estimated": True,
        "usage_source": Turn.UsageSource.ESTIMATED,
        "cost": sum(costs, Decimal(0)) if costs else None,
    }


def _lost_usage(parts: Parts, steps: EndedSteps) -> dict[str, Any]:
    """The counts of a lost answer: its ended steps', and its text after them estimated."""
    counted = _steps_usage(steps.rows)
    if not steps.rows and not parts.content:
        return {"usage_source": Turn.UsageSource.NONE, "tokens_estimated": True}
    after_steps = parts.content[len(steps.parts.content) :]
    return {
        "tokens_in": counted.get("tokens_in"),
        "tokens_out": counted.get("tokens_out", 0) + text_tokens(after_steps),
        "tokens_estimated": True,
        "usage_source": Turn.UsageSource.ESTIMATED,
    }


async def _save_lost_answer(turn_id: str, row: dict[str, Any], parts: Parts) -> bool:
    saved = await run_db(save_lost_answer, turn_id=turn_id, row=row, parts=parts)
    if saved:  # its conversation's next queued message may start (queued/starting.py)
        conversation_id = uuid.UUID(row["conversation"])
        ends.queue_waits(conversation_id)  # not looked at by this save: rare enough to look each time
        ends.answer_ended(conversation_id, uuid.UUID(turn_id))
    return saved


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
