"""Writes: conversations, feedback, an answer's turn, and stopping answers.

Each sync function is one transaction, keyword-only and typed, and is called
from async code through `storage.threads.run_db` (Django's ORM is sync, and a
transaction must stay on one thread). The async ones stop answers being
generated, here or in another process. Sending a message and starting its
answer is answering.py's.
"""

import dataclasses
import functools
import logging
import uuid
from typing import Any

from django.contrib.auth.base_user import AbstractBaseUser
from django.db import connection, transaction
from django.utils.crypto import salted_hmac

from . import selectors, tool_runs
from .branches import Branches
from .catalogue import catalogue, entry_named
from .conf import conf
from .exceptions import ApiError
from .instructions import Instructions
from .live import live_answers
from .memory.tasks import enqueue_update
from .models import Conversation, Feedback, Prompt, Turn
from .spend import budgets, ledger, reservations
from .storage import sql
from .storage.rows import RowInsert
from .storage.threads import run_db
from .stream import ends
from .stream.answer import Answer, PreparedTurn

logger = logging.getLogger(__name__)

TITLE_CHARS = 60
# A repeated message waits up to REPEAT_LOOKUPS x REPEAT_LOOKUP_PAUSE seconds
# for the first one's answer to start.
REPEAT_LOOKUPS, REPEAT_LOOKUP_PAUSE = 40, 0.05

_insert_turn = RowInsert(Turn)


# --- conversations -------------------------------------------------------------

# A conversation's instructions, as PATCH changes them (instructions.py).
INSTRUCTION_FIELDS = ("system_prompt", "parameters", "response_format")


def create_conversation(
    *,
    owner: AbstractBaseUser,
    title: str = "",
    model: str = "",
    instructions: Instructions | None = None,
    prompt: str = "",
) -> Conversation:
    """A new conversation with its own instructions, over those of the
    staff's prompt named `prompt` (Prompt.DoesNotExist for a name there is
    not); ApiError 400 for parameters its model does not allow."""
    given = instructions or Instructions()
    if prompt:
        kept = Prompt.objects.get(name=prompt)
        given = given.over(Instructions(kept.system_prompt, kept.parameters, kept.response_format))
    entry_named(model).refuse_disallowed(given.parameters)
    return Conversation.objects.create(
        owner_id=owner.pk,
        title=title[:200],
        model=model,
        system_prompt=given.system_prompt or "",
        parameters=given.parameters,
        response_format=given.response_format,
        prompt_id=prompt or None,
    )


def conversation_for_key(*, owner: AbstractBaseUser, key: str) -> Conversation:
    """The conversation an Idempotency-Key names for this user, made on its
    first use. Its id comes from the key (keyed with SECRET_KEY, so it is no
    easier to guess than any other): two calls with the same key, even at
    once, reach one conversation, where the key's unique constraint lets
    only one of them save a message and call the model."""
    digest = salted_hmac("chatstream.idempotency-conversation", f"{owner.pk}\n{key}", algorithm="sha256").digest()
    conversation, _ = Conversation.objects.get_or_create(
        pk=uuid.UUID(bytes=digest[:16], version=4), owner_id=owner.pk, defaults={"title": ""}
    )
    return conversation


def conversation_for_client(*, owner: AbstractBaseUser, client_id: str) -> Conversation:
    """The conversation a front end names by its own id (api/ui/chat), made
    on its first use; two first messages at once reach the same one (the
    unique constraint on owner and client id settles them)."""
    conversation, _ = Conversation.objects.get_or_create(owner_id=owner.pk, client_id=client_id)
    return conversation


def update_conversation(
    *,
    conversation: Conversation,
    title: str | None = None,
    model: str | None = None,
    tools: bool | None = None,
    **instructions: Any,
) -> Conversation:
    """Rename it, give it another default model ("": the catalogue's default),
    turn its answers' tools off (or on again), or give it other instructions
    (`system_prompt`, `parameters`, `response_format`, each replaced whole;
    None clears the response format). ApiError 400 for parameters its model
    does not allow."""
    if title is not None:
        conversation.title = title.strip()[:200]
    if model is not None:
        conversation.model = model
    if tools is not None:
        conversation.tools = tools
    for name, value in instructions.items():
        setattr(conversation, name, value)
    if conversation.model in catalogue() or not conversation.model:  # else its messages get the default, checked then
        entry_named(conversation.model).refuse_disallowed(conversation.parameters)
    conversation.save(update_fields=["title", "model", "tools", *INSTRUCTION_FIELDS, "updated_at"])
    return conversation


@transaction.atomic
def delete_conversation(*, conversation: Conversation) -> None:
    # Its row locked first: an answer being saved meanwhile (which locks it
    # too, services.record_answer) is either committed before the turns are
    # collected, and deleted with them, or finds the conversation gone.
    # Without the lock, PostgreSQL refused the delete at commit: a turn
    # committed in between still referred to the conversation.
    Conversation.objects.select_for_update().filter(pk=conversation.pk).first()
    conversation.delete()


async def delete_conversation_and_answers(*, owner: AbstractBaseUser, conversation_id: uuid.UUID) -> None:
    """Delete a conversation of the owner's (Conversation.DoesNotExist for
    another's) and stop its answers still being generated, here or in another
    process: their model calls are closed and what they cost is recorded in
    the ledger, though their turns have nowhere to go."""
    owned = Conversation.objects.filter(pk=conversation_id, owner_id=owner.pk)
    await run_db(lambda: delete_conversation(conversation=owned.get()))
    for generating in await live_answers().generating_in(conversation_id):
        answer = await live_answers().find(uuid.UUID(generating["turn_id"]))
        if answer is not None and answer.owner_id == owner.pk:
            await answer.stop()


def show_branch(*, conversation: Conversation, turn_id: uuid.UUID) -> Conversation:
    """Show the branch through one of the conversation's turns (a version
    chosen with ‹ ›): from it, the newest of each turn's next versions down.
    ApiError 400 for a turn of another conversation."""
    tree = Branches(list(conversation.turns.all()))
    turn = tree.by_id.get(turn_id)
    if turn is None:
        raise ApiError(400, "invalid_leaf", "The leaf must be the id of one of this conversation's turns.")
    conversation.leaf = tree.newest_leaf_under(turn)
    conversation.save(update_fields=["leaf"])  # choosing a version is not an update: the list keeps its order
    return conversation


# --- feedback ---------------------------------------------------------------------


def rate_answer(*, owner: AbstractBaseUser, turn_id: uuid.UUID, rating: str, comment: str) -> Feedback:
    """The user's rating of one of their answers, replacing any earlier one.
    Raises Turn.DoesNotExist unless the user has a saved answer with this id."""
    turn = selectors.saved_answer(owner=owner, turn_id=turn_id)
    feedback, _ = Feedback.objects.update_or_create(turn=turn, defaults={"rating": rating, "comment": comment})
    return feedback


def unrate_answer(*, owner: AbstractBaseUser, turn_id: uuid.UUID) -> None:
    turn = selectors.saved_answer(owner=owner, turn_id=turn_id)
    Feedback.objects.filter(turn=turn).delete()


# --- turns ---------------------------------------------------------------------


def status_for(finish_reason: str) -> str:
    if finish_reason in (Turn.FinishReason.STOP, Turn.FinishReason.TOOL_CALLS):
        return Turn.Status.COMPLETE
    if finish_reason == Turn.FinishReason.ERROR:
        return Turn.Status.FAILED
    return Turn.Status.INTERRUPTED


def priced(answer: Answer) -> Answer:
    cost = ledger.price(
        answer.model, tokens_in=answer.tokens_in, tokens_cached=answer.tokens_cached, tokens_out=answer.tokens_out
    )
    return dataclasses.replace(answer, cost=cost)


@transaction.atomic
def record_answer(*, prepared: PreparedTurn, answer: Answer) -> Answer | None:
    """Write the answer's turn, priced, and its cost in the ledger: once,
    when its stream has ended, however it ended. The answer as saved; None if
    the conversation was deleted meanwhile (its cost is recorded all the same)."""
    answer = priced(answer)
    with connection.cursor() as cursor:
        # Touching the conversation first also locks its row (on PostgreSQL),
        # so a delete cannot slip in between this check and the insert; and
        # it comes before the ledger's row, so this transaction takes its
        # locks in the order every other does (a TRUNCATE deadlocked with it).
        kept = sql.touch_conversation(cursor, prepared.conversation_id)
        ledger.record_answer(prepared, answer)
        # Settled: the ledger's row counts now what the reservation held (an
        # answer saved from its journal by another process included).
        if prepared.reserved_out or not budgets.none_apply():
            reservations.settle(prepared.answer_turn_id)
        if answer.tool_calls:  # (a query an answer without tools does not pay for)
            tool_runs.record_results(prepared.answer_turn_id, answer.tool_results)  # a stopped step's
            tool_runs.close_pending(prepared.answer_turn_id)  # before the decisions are read: none comes after
        if answer.approvals:
            approvals = tool_runs.with_decisions(prepared.answer_turn_id, answer.approvals)
            answer = dataclasses.replace(answer, approvals=approvals)
        if not kept:
            logger.info("conversation %s was deleted while answering; its cost is kept", prepared.conversation_id)
            return None
        # Read under the conversation's lock: a message queued after this
        # commit starts itself (queued/choice.py), so the answer's end looks
        # for the next one only when this saw one (a query and a database
        # thread's turn per answer otherwise: 5 % of the CPU in bench.scale).
        if sql.has_queued(cursor, prepared.conversation_id):
            transaction.on_commit(functools.partial(ends.queue_waits, prepared.conversation_id))
        _insert_turn(
            cursor,
            id=prepared.answer_turn_id,
            conversation_id=prepared.conversation_id,
            position=prepared.answer_position,
            role=Turn.Role.ASSISTANT,
            status=status_for(answer.finish_reason),
            prompt_turns=prepared.prompt_turns,
            prompt_tokens=prepared.prompt_tokens,
            api_key_id=prepared.api_key_id,
            model_name=prepared.model_name,
            route=prepared.route,
            parent=prepared.parent_id,
            file_cuts=prepared.file_cuts,
            parameters=prepared.parameters,
            **vars(answer),
        )
    # Queued only if this transaction commits: a rolled-back answer queues
    # nothing, a committed one exactly one update.
    transaction.on_commit(functools.partial(enqueue_update, prepared.conversation_id))
    return answer


# --- answers: stopping --------------------------------------------------------------


async def stop_answer(*, owner: AbstractBaseUser, turn_id: uuid.UUID) -> Turn:
    """Stop an answer being generated (from any tab or script, here or in
    another process) and return its saved turn. ApiError 404 if the user has
    no such answer, 409 if it had already ended, 503 if it is being generated
    but cannot be reached, 504 if it is not saved in time."""
    live = await live_answers().find(turn_id)
    if live is None or live.owner_id != owner.pk:
        try:
            turn = await run_db(selectors.saved_answer, owner=owner, turn_id=turn_id)
        except Turn.DoesNotExist:
            raise await _no_live_answer(owner, turn_id) from None
        raise ApiError(409, "turn_finished", f"The answer has already ended ({turn.finish_reason}).")
    await live.stop()
    try:
        return await run_db(selectors.saved_answer, owner=owner, turn_id=turn_id)
    except Turn.DoesNotExist:
        raise ApiError(504, "cancel_unconfirmed", "The answer was told to stop but is not saved yet.") from None


async def _no_live_answer(owner: AbstractBaseUser, turn_id: uuid.UUID) -> ApiError:
    """Why an answer with no row could not be found. With Redis, one that a
    question still waits for is being generated by a process this one cannot
    reach now (Redis down, or back empty and not yet told of it again): 503,
    try again, rather than a 404 that says there is no such answer."""
    awaited = bool(conf.REDIS_URL) and await run_db(selectors.answer_awaited, owner=owner, turn_id=turn_id)
    if awaited:
        message = "The answer is being generated by another server that cannot be reached now; try again."
        return ApiError(503, "answer_unreachable", message, headers={"Retry-After": "1"})
    return ApiError(404, "turn_not_found", "No turn with that id belongs to you.")
