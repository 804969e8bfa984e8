"""The queue's database work, each function one transaction on a database
thread (run_db): a message queued, listed, cancelled; claimed by the
transaction that saves it as a turn (answering.start_turn), so that it
starts once however many processes try; or, refused when it was to start
(a budget spent meanwhile), saved with an error answer.

An answer is in progress in a conversation while its shown branch's last
turn (`Conversation.leaf`) has no row: an answer's id is put there before
its row exists. The live answers (live/) say the same sooner; the leaf is
what a transaction can lock and read."""

import uuid
from typing import Any

from django.contrib.auth.base_user import AbstractBaseUser
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from ..access.api_keys import key_id_of
from ..exceptions import ApiError, DuplicateMessage, NotItsTurn
from ..models import Conversation, QueuedMessage, Turn
from ..storage.queue_claims import awaited, claim

# A conversation's queue holds this many messages at most (429 `queue_full`).
MAX_QUEUED = 20


def answering_in(*, owner: AbstractBaseUser, conversation_id: uuid.UUID) -> bool:
    """Is an answer in progress on the conversation's shown branch (its row
    not written yet)? Conversation.DoesNotExist for another's."""
    leaf = Conversation.objects.filter(pk=conversation_id, owner_id=owner.pk).values_list("leaf", flat=True).get()
    return awaited(leaf)


@transaction.atomic
def enqueue(
    *,
    owner: AbstractBaseUser,
    conversation_id: uuid.UUID,
    content: str,
    model_name: str,
    instructions: dict[str, Any],
    file_ids: list[str],
    idempotency_key: str,
    trace_id: str,
) -> QueuedMessage:
    """Queue a message behind the answer in progress (Conversation.DoesNotExist
    for another's conversation). A repeat of a queued message (its
    Idempotency-Key) gets the first one; of one that has started,
    DuplicateMessage; ApiError 429 when the queue is full."""
    conversation = Conversation.objects.select_for_update().get(pk=conversation_id, owner_id=owner.pk)
    if idempotency_key:
        earlier = QueuedMessage.objects.filter(conversation=conversation, idempotency_key=idempotency_key).first()
        if earlier is not None:
            return earlier
        started = conversation.turns.filter(idempotency_key=idempotency_key).values_list("reply_id", flat=True)
        if (reply_id := started.first()) is not None:
            raise DuplicateMessage(reply_id)
    if QueuedMessage.objects.filter(conversation=conversation).count() >= MAX_QUEUED:
        raise ApiError(429, "queue_full", f"{MAX_QUEUED} messages wait already; send this one once they are answered.")
    return QueuedMessage.objects.create(
        conversation=conversation,
        content=content,
        model_name=model_name,
        instructions=instructions,
        file_ids=file_ids,
        idempotency_key=idempotency_key,
        api_key_id=key_id_of(owner),
        trace_id=trace_id,
    )


def listed(*, conversation_id: uuid.UUID) -> list[QueuedMessage]:
    """The conversation's queued messages, in the order they will be answered."""
    return list(QueuedMessage.objects.filter(conversation_id=conversation_id))


def cancel(*, owner: AbstractBaseUser, turn_id: uuid.UUID) -> None:
    """Take a queued message (by its id or its answer's) out of the queue.
    ApiError 409 once it has started (it is a turn now), 404 if the user has
    no such message."""
    named = QueuedMessage.objects.filter(Q(pk=turn_id) | Q(answer_id=turn_id), conversation__owner_id=owner.pk)
    # One DELETE: one that a start is claiming waits for it, then finds nothing to delete.
    deleted, _ = QueuedMessage.objects.filter(pk__in=named.values("pk")).delete()
    if deleted:
        return
    turns = Turn.objects.filter(conversation__owner_id=owner.pk)
    if turns.filter(Q(pk=turn_id) | Q(role=Turn.Role.USER, reply_id=turn_id)).exists():
        raise ApiError(409, "turn_started", "This message is no longer queued: its answer has started.")
    raise ApiError(404, "turn_not_found", "No queued message with that id belongs to you.")


def oldest(*, conversation_id: uuid.UUID) -> QueuedMessage | None:
    """The message to answer next, with its conversation's owner."""
    return QueuedMessage.objects.filter(conversation_id=conversation_id).select_related("conversation__owner").first()


def waiting(*, owner: AbstractBaseUser, answer_id: uuid.UUID) -> QueuedMessage | None:
    """The user's queued message whose answer will have this id."""
    return QueuedMessage.objects.filter(answer_id=answer_id, conversation__owner_id=owner.pk).first()


def conversations_waiting(limit: int = 500) -> list[uuid.UUID]:
    """Conversations with queued messages (a process starting looks at them)."""
    ids = QueuedMessage.objects.order_by("conversation_id").values_list("conversation_id", flat=True).distinct()
    return list(ids[:limit])


@transaction.atomic
def refuse(*, message_id: uuid.UUID, error: ApiError) -> None:
    """A queued message refused when its turn came (a budget spent, a limit,
    a file gone): saved as a turn with an error answer that says why, never
    dropped. NotItsTurn if it is not this call's to save (claimed by
    another, cancelled, or an answer is in progress again)."""
    queued = QueuedMessage.objects.filter(pk=message_id).first()
    if queued is None:
        raise NotItsTurn(message_id)
    conversation = Conversation.objects.select_for_update().get(pk=queued.conversation_id)
    claim(conversation_id=conversation.pk, message_id=message_id, leaf=conversation.leaf)
    position = conversation.next_position
    Conversation.objects.filter(pk=conversation.pk).update(
        next_position=F("next_position") + 2, leaf=queued.answer_id, updated_at=timezone.now()
    )
    common = {"conversation_id": conversation.pk, "api_key_id": queued.api_key_id, "trace_id": queued.trace_id}
    Turn.objects.create(
        id=queued.pk,
        position=position,
        parent=conversation.leaf,
        role=Turn.Role.USER,
        content=queued.content,
        idempotency_key=queued.idempotency_key,
        reply_id=queued.answer_id,
        **common,
    )
    Turn.objects.create(
        id=queued.answer_id,
        position=position + 1,
        parent=queued.pk,
        role=Turn.Role.ASSISTANT,
        status=Turn.Status.FAILED,
        finish_reason=Turn.FinishReason.ERROR,
        error_code=error.code,
        error_detail=error.message,
        model_name=queued.model_name,
        **common,
    )
