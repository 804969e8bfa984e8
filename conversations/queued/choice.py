"""The choice applied to a message (views/api.py::messages): answered now
(beside an answer in progress, or once it is stopped), queued, or refused."""

import dataclasses
import uuid

from django.contrib.auth.base_user import AbstractBaseUser

from .. import answering, services
from ..access.api_keys import key_id_of
from ..exceptions import ApiError, DuplicateMessage
from ..files import sending
from ..live import LiveAnswer, live_answers
from ..models import QueuedMessage, Turn
from ..spend import budgets
from ..storage.threads import run_db
from . import INTERRUPT, PARALLEL, QUEUE, REJECT, rows, starting


async def send(
    *,
    owner: AbstractBaseUser,
    conversation_id: uuid.UUID,
    message: answering.NewMessage,
    trace_id: str,
    received_at: float,
    while_answering: str,
) -> LiveAnswer | Turn | QueuedMessage:
    """answering.send_message, unless an answer is in progress in the
    conversation and `while_answering` says otherwise: a QueuedMessage
    (`queue`), ApiError 409 (`reject`), or the message answered once the
    answers in progress are stopped (`interrupt`)."""
    if while_answering != PARALLEL and await answering_now(owner=owner, conversation_id=conversation_id):
        if while_answering == REJECT:
            raise ApiError(
                409, "answer_in_progress", "An answer is being written in this conversation; send this once it ends."
            )
        if while_answering == QUEUE:
            try:
                return await enqueue(owner=owner, conversation_id=conversation_id, message=message, trace_id=trace_id)
            except DuplicateMessage as repeat:  # a repeat of a queued message that has started since
                return await answering.answer_to_repeat(owner, repeat.reply_id)
        if while_answering == INTERRUPT:
            await interrupt(owner=owner, conversation_id=conversation_id)
    return await answering.send_message(
        owner=owner, conversation_id=conversation_id, message=message, trace_id=trace_id, received_at=received_at
    )


async def answering_now(*, owner: AbstractBaseUser, conversation_id: uuid.UUID) -> bool:
    """Is an answer in progress in the conversation (in any process)?
    Conversation.DoesNotExist for another's."""
    if await run_db(rows.answering_in, owner=owner, conversation_id=conversation_id):
        return True  # its shown branch waits for an answer's row
    return bool(await live_answers().generating_in(conversation_id))  # another branch's, a regenerate's


async def enqueue(
    *, owner: AbstractBaseUser, conversation_id: uuid.UUID, message: answering.NewMessage, trace_id: str
) -> QueuedMessage:
    """Queue the message, checked as far as it can be now (its files, the
    budgets: an early 4xx, nothing saved); its answer may start at once if
    the answer in progress ended meanwhile."""
    if message.file_ids:
        await run_db(sending.attachable, owner_id=owner.pk, conversation_id=conversation_id, ids=message.file_ids)
    await run_db(budgets.check, user_id=owner.pk, api_key_id=key_id_of(owner))
    queued = await run_db(
        rows.enqueue,
        owner=owner,
        conversation_id=conversation_id,
        content=message.content,
        model_name=message.model_name,
        instructions=dataclasses.asdict(message.instructions),
        file_ids=[str(file_id) for file_id in message.file_ids],
        idempotency_key=message.idempotency_key,
        trace_id=trace_id,
    )
    starting.start_next_soon(conversation_id)  # the answer may have ended before the row was written
    return queued


async def interrupt(*, owner: AbstractBaseUser, conversation_id: uuid.UUID) -> None:
    """Stop the answers in progress in the conversation, as POST
    api/turns/<id>/cancel does (each saved as `cancelled`)."""
    for generating in await live_answers().generating_in(conversation_id):
        try:
            await services.stop_answer(owner=owner, turn_id=uuid.UUID(generating["turn_id"]))
        except ApiError as exc:
            if exc.status != 409:  # 409: it ended meanwhile, as wanted
                raise
