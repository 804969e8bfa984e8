"""A queued message's answer started when its turn comes: when an answer in
its conversation ends (on the process that generated it, or on the one that
saved it after its process died: stream/ends.py), when a process starts serving
(`start_waiting_once`), and now and then while a client waits for it
(following.py). Whoever tries, the row is claimed in the transaction that
saves the message as a turn (rows.claim), so it starts once.

The answer starts like any message's (answering.send_message): the user's
limits and budgets are checked then. A refusal then is saved as the
message's turn with an error answer (rows.refuse), and the next message
may go."""

import asyncio
import logging
import time
import uuid

from .. import answering, recovery
from ..exceptions import ApiError, GuardrailRefused, NotItsTurn
from ..instructions import Instructions
from ..live import live_answers
from ..models import Conversation, QueuedMessage
from ..storage.threads import run_db
from ..stream import background, ends
from . import rows

logger = logging.getLogger(__name__)

_waiting_looked_at = False


async def start_next(conversation_id: uuid.UUID, ended: uuid.UUID | None = None) -> None:
    """Start the conversation's oldest queued message if no answer is in
    progress there (`ended`: an answer that has just been saved, which the
    live answers may list a moment longer)."""
    while not await _answering(conversation_id, ended):
        queued = await run_db(rows.oldest, conversation_id=conversation_id)
        if queued is None or not await _start(queued):
            return


async def _answering(conversation_id: uuid.UUID, ended: uuid.UUID | None) -> bool:
    generating = await live_answers().generating_in(conversation_id)
    return any(answer["turn_id"] != str(ended) for answer in generating)


async def _start(queued: QueuedMessage) -> bool:
    """Start its answer. True when it was refused instead (saved with an
    error answer): the next message may go."""
    owner = queued.conversation.owner
    owner.key_id = queued.api_key_id  # type: ignore[attr-defined]  # as access/credentials sets it
    try:
        await answering.send_message(
            owner=owner,
            conversation_id=queued.conversation_id,
            message=_as_message(queued),
            trace_id=queued.trace_id,
            received_at=time.monotonic(),
        )
    except (NotItsTurn, Conversation.DoesNotExist):
        return False  # started by another, cancelled, or an answer is in progress again
    except ApiError as refused:
        if refused.code == GuardrailRefused.code:
            return True  # saved already, question and answer (guardrails/refusals.py): the next may go
        try:
            await run_db(rows.refuse, message_id=queued.pk, error=refused)
        except NotItsTurn:
            return False
        logger.info("queued message %s refused when it was to start: %s", queued.pk, refused.code)
        return True
    return False


def _as_message(queued: QueuedMessage) -> answering.NewMessage:
    given = queued.instructions
    return answering.NewMessage(
        content=queued.content,
        idempotency_key=queued.idempotency_key,
        model_name=queued.model_name,
        file_ids=tuple(uuid.UUID(file_id) for file_id in queued.file_ids),
        instructions=Instructions(
            system_prompt=given.get("system_prompt"),
            parameters=given.get("parameters") or {},
            response_format=given.get("response_format"),
        ),
        turn_id=queued.pk,
        answer_turn_id=queued.answer_id,
    )


def start_next_soon(conversation_id: uuid.UUID, ended: uuid.UUID | None = None) -> None:
    """`start_next` in a task of its own: never in a request's task, whose
    client leaving would cancel the start (and save the answer as abandoned)."""
    background.keep(asyncio.ensure_future(_start_next_logged(conversation_id, ended)))


async def _start_next_logged(conversation_id: uuid.UUID, ended: uuid.UUID | None) -> None:
    try:
        await start_next(conversation_id, ended)
    except Exception:
        logger.exception("could not start the next queued message of conversation %s", conversation_id)


async def _answer_ended(conversation_id: uuid.UUID, turn_id: uuid.UUID) -> None:
    if ends.queue_waited(conversation_id):  # its save saw a message queued
        await _start_next_logged(conversation_id, turn_id)


ends.when_an_answer_ends(_answer_ended)


async def start_waiting_once() -> None:
    """On this process's first request that may concern the queue: answers
    lost when the last process stopped are saved (without Redis), then every
    conversation with queued messages and no answer in progress starts its
    next one (a restart must not leave them waiting for an end that already
    came)."""
    global _waiting_looked_at
    if _waiting_looked_at:
        return
    _waiting_looked_at = True
    background.keep(asyncio.ensure_future(_start_waiting()))


async def _start_waiting() -> None:
    try:
        await recovery.save_lost_answers_once()
        for conversation_id in await run_db(rows.conversations_waiting):
            await _start_next_logged(conversation_id, None)
    except Exception:
        logger.exception("could not look for queued messages")
