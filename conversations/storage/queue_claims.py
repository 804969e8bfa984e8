"""A queued message (conversations/queued/) claimed by the transaction that
saves it as a turn (answering.start_turn, queued/rows.refuse): its row
deleted once the conversation's row is locked and no answer is in progress
there, so that it starts once however many processes try."""

import uuid

from ..exceptions import NotItsTurn
from ..models import QueuedMessage, Turn


def awaited(leaf: uuid.UUID | None) -> bool:
    """Is `leaf` an answer whose row is not written yet (being generated, or lost with its process)?"""
    return leaf is not None and not Turn.objects.filter(pk=leaf).exists()


def claim(*, conversation_id: uuid.UUID, message_id: uuid.UUID, leaf: uuid.UUID | None) -> None:
    """In the transaction that saves a queued message as a turn, once the
    conversation's row is locked (`leaf` read under that lock): its row
    deleted, so no other start can have it. NotItsTurn if an answer is
    still in progress there, or the row is gone (started, cancelled)."""
    if awaited(leaf):
        raise NotItsTurn(message_id)
    deleted, _ = QueuedMessage.objects.filter(pk=message_id, conversation_id=conversation_id).delete()
    if not deleted:
        raise NotItsTurn(message_id)
