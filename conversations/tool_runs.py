"""What the tool loop keeps in the database (stream/tool_loop.py's
ToolRecords): each call before it runs and when it ends (ToolRun, one row
per call id, so no call runs twice), the decision on a call that needs
approval, each step once its tools have run (AnswerStep), and whether the
budgets allow the next model call.

A decision comes from whichever process serves `POST …/approvals`
(`decide_approval`): it is written to the call's row, then the answer is
woken where it runs (stream/approvals.py reads the row).

    claim ─▶ ToolRun(pending?) ─▶ approval_request … decide_approval ─▶ ToolRun(approved) ─▶ run
    step ends ─▶ its results on their ToolRun rows + its AnswerStep row, in one transaction

A call's claim is the only write the loop waits for (it must be committed
before the tool runs); the step is saved while the next model call starts
(stream/relay.py), and the answer's save records any result a stopped step
left unrecorded.
"""

import uuid
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from django.contrib.auth.base_user import AbstractBaseUser
from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from .exceptions import ApiError
from .live import live_answers
from .models import AnswerStep, ToolRun, Turn
from .serializers import approval_json
from .spend import budgets, ledger
from .storage.rows import RowInsert
from .storage.threads import run_db
from .stream.answer import PreparedTurn
from .stream.approvals import Decision
from .stream.tool_loop import Step
from .tools import ToolResult

NOT_DECIDED = "No decision was made before the answer ended; the tool was not run."
CONVERSATION_GONE = "The conversation was deleted; the tool was not run."

# The claim is on the path from one model call to the next: one prepared
# INSERT, not the ORM's create in a transaction (bench/tool_loop.py).
_insert_run = RowInsert(ToolRun, unless_present=True)
_insert_step = RowInsert(AnswerStep, unless_present=True)


class DatabaseToolRecords:
    """An answer's ToolRecords, on the database threads."""

    def __init__(self, prepared: PreparedTurn) -> None:
        self.prepared = prepared

    async def claim(self, call: Mapping[str, Any], *, approval: bool) -> ToolResult | None:
        fields = {key: str(call.get(key, "")) for key in ("id", "name", "arguments")}
        return await run_db(claim_call, prepared=self.prepared, approval=approval, **fields)

    async def decision(self, call_id: str) -> Decision | None:
        return await run_db(decision_on, turn_id=self.prepared.answer_turn_id, call_id=call_id)

    async def save_step(self, step: Step, results: list[ToolResult]) -> None:
        await run_db(save_step, prepared=self.prepared, step=step, results=results)

    async def within_budget(self, steps: list[Step]) -> bool:
        if budgets.none_apply():  # nearly always: no query, no thread
            return True
        return await run_db(within_budget, prepared=self.prepared, steps=steps)


# --- calls ----------------------------------------------------------------------------


def claim_call(*, prepared: PreparedTurn, id: str, name: str, arguments: str, approval: bool) -> ToolResult | None:
    """Record a call before it runs (`approval`: as pending a decision): None,
    recorded now, so run it. A call id the answer already recorded is never
    run again: its saved result, or an error saying how it ended is unknown."""
    try:
        with connection.cursor() as cursor:
            inserted = _insert_run(
                cursor,
                turn_id=prepared.answer_turn_id,
                conversation_id=prepared.conversation_id,
                call_id=id,
                name=name,
                arguments=arguments,
                approval=ToolRun.Approval.PENDING if approval else "",
            )
    except IntegrityError:  # its conversation is gone (deleted while the answer ran)
        return ToolResult(id=id, name=name, error=CONVERSATION_GONE)
    if inserted:
        return None
    run = ToolRun.objects.filter(turn_id=prepared.answer_turn_id, call_id=id).first()
    if run is not None and run.ended_at is not None:
        return ToolResult(id=id, name=name, output=run.output, error=run.error, duration_ms=run.duration_ms or 0)
    return ToolResult(id=id, name=name, error=f"The call {id!r} was already run; its result is not known.")


def record_results(turn_id: uuid.UUID | str, results: list[dict[str, Any]]) -> None:
    """Calls' results (ToolResult.event()s) on their rows, where no result is
    yet: one query finds those (at an answer's save, most were recorded with
    their steps), then one write each."""
    if not results:
        return
    ids = [result["id"] for result in results]
    open_calls = set(
        ToolRun.objects.filter(turn_id=turn_id, call_id__in=ids, ended_at__isnull=True).values_list(
            "call_id", flat=True
        )
    )
    for result in results:
        if result["id"] in open_calls:
            ToolRun.objects.filter(turn_id=turn_id, call_id=result["id"], ended_at__isnull=True).update(
                output=result.get("output"),
                error=result.get("error"),
                duration_ms=result.get("duration_ms"),
                ended_at=timezone.now(),
            )


# --- approvals --------------------------------------------------------------------------


def decision_on(*, turn_id: uuid.UUID, call_id: str) -> Decision | None:
    row = ToolRun.objects.filter(turn_id=turn_id, call_id=call_id).values("approval", "decision_reason").first()
    if row is None:  # its conversation was deleted (the admin's delete stops no answer): no one is left to ask
        return Decision(approved=False, reason=CONVERSATION_GONE)
    if row["approval"] not in (ToolRun.Approval.APPROVED, ToolRun.Approval.DENIED):
        return None
    return Decision(approved=row["approval"] == ToolRun.Approval.APPROVED, reason=row["decision_reason"])


async def decide_approval(
    *, owner: AbstractBaseUser, turn_id: uuid.UUID, call_id: str, approved: bool, reason: str = ""
) -> ToolRun:
    """Approve or deny a call waiting for it, from any process, and wake the
    answer. ApiError 404 if the user has no such answer, 409 if that call is
    not waiting for a decision (decided already, never asked, or the answer
    has ended)."""
    live = await live_answers().find(turn_id)
    if live is not None and live.owner_id != owner.pk:
        live = None
    run = await run_db(
        _write_decision,
        owner=owner,
        turn_id=turn_id,
        generating=live is not None,
        call_id=call_id,
        approved=approved,
        reason=reason,
    )
    if live is not None:
        await live.decided(call_id)
    return run


@transaction.atomic
def _write_decision(
    *, owner: AbstractBaseUser, turn_id: uuid.UUID, generating: bool, call_id: str, approved: bool, reason: str
) -> ToolRun:
    runs = ToolRun.objects.filter(turn_id=turn_id, conversation__owner_id=owner.pk)
    owned = generating or runs.exists() or Turn.objects.filter(pk=turn_id, conversation__owner_id=owner.pk).exists()
    if not owned:
        raise ApiError(404, "not_found", "No such answer.")
    decided = runs.filter(call_id=call_id, approval=ToolRun.Approval.PENDING).update(
        approval=ToolRun.Approval.APPROVED if approved else ToolRun.Approval.DENIED,
        decided_by=owner,
        decided_at=timezone.now(),
        decision_reason=reason,
    )
    if not decided:
        raise ApiError(409, "approval_not_pending", f"The call {call_id!r} of this answer is not waiting for approval.")
    return runs.select_related("decided_by").get(call_id=call_id)


def close_pending(turn_id: uuid.UUID | str) -> None:
    """The answer has ended (saved, or lost with its process): a call still
    waiting for a decision will never run, and can no longer be decided."""
    ToolRun.objects.filter(turn_id=turn_id, approval=ToolRun.Approval.PENDING).update(
        approval=ToolRun.Approval.UNDECIDED, error=NOT_DECIDED, ended_at=timezone.now()
    )


def with_decisions(turn_id: uuid.UUID | str, requests: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The answer's requests for approval, each with who decided, when and how
    (approval_json's fields; `approved` None: nobody did), as the turn saves them."""
    if not requests:
        return requests
    decided = ToolRun.objects.filter(
        turn_id=turn_id, approval__in=(ToolRun.Approval.APPROVED, ToolRun.Approval.DENIED)
    ).select_related("decided_by")
    decisions = {run.call_id: approval_json(run) for run in decided}
    return [{**request, **_decision_fields(decisions.get(request["id"]))} for request in requests]


def _decision_fields(decision: dict[str, Any] | None) -> dict[str, Any]:
    if decision is None:
        return {"approved": None, "decided_by": None, "decided_at": None, "reason": ""}
    return {key: decision[key] for key in ("approved", "decided_by", "decided_at", "reason")}


# --- steps --------------------------------------------------------------------------------


@transaction.atomic
def save_step(*, prepared: PreparedTurn, step: Step, results: list[ToolResult]) -> None:
    """A model call of the loop whose tools have run: its calls' results,
    and the step with what it cost."""
    record_results(prepared.answer_turn_id, [result.event() for result in results])
    usage = step.usage
    with connection.cursor() as cursor:
        _insert_step(
            cursor,
            turn_id=prepared.answer_turn_id,
            conversation_id=prepared.conversation_id,
            n=step.n,
            model=step.model,
            output=step.output,
            tokens_in=usage.get("tokens_in"),
            tokens_out=usage.get("tokens_out"),
            tokens_cached=usage.get("tokens_cached"),
            tokens_reasoning=usage.get("tokens_reasoning"),
            tokens_estimated=bool(usage.get("tokens_estimated")),
            usage_source=usage.get("usage_source", ""),
            cost=step_cost(step),
        )


def step_cost(step: Step) -> Decimal | None:
    usage = step.usage
    return ledger.price(
        step.model,
        tokens_in=usage.get("tokens_in"),
        tokens_cached=usage.get("tokens_cached"),
        tokens_out=usage.get("tokens_out"),
    )


def within_budget(*, prepared: PreparedTurn, steps: list[Step]) -> bool:
    """Do the user's and the key's budgets allow another model call, counting
    the answer's steps so far (its ledger row comes when it ends)?"""
    spend = sum((step_cost(step) or Decimal(0) for step in steps), Decimal(0))
    tokens = sum((step.usage.get("tokens_in") or 0) + (step.usage.get("tokens_out") or 0) for step in steps)
    try:
        budgets.check(user_id=prepared.owner_id, api_key_id=prepared.api_key_id, unrecorded=(spend, tokens))
    except ApiError:
        return False
    return True


def saved_steps(turn_id: uuid.UUID | str) -> list[AnswerStep]:
    return list(AnswerStep.objects.filter(turn_id=turn_id).order_by("n"))
