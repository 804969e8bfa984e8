"""Reads. Every object is looked up through its owner, so a foreign id is
indistinguishable from a missing one."""

import uuid

from django.contrib.auth.base_user import AbstractBaseUser
from django.db.models import QuerySet

from .live import LiveAnswer, live_answers
from .models import Conversation, Turn
from .storage.threads import run_db


def owned_conversations(*, owner: AbstractBaseUser) -> QuerySet[Conversation]:
    return Conversation.objects.filter(owner_id=owner.pk)


def conversation_with_turns(*, owner: AbstractBaseUser, conversation_id: uuid.UUID) -> tuple[Conversation, list[Turn]]:
    """Raises Conversation.DoesNotExist for a missing or foreign id."""
    conversation = owned_conversations(owner=owner).select_related("memory").get(pk=conversation_id)
    return conversation, list(conversation.turns.order_by("position"))


def saved_answer(*, owner: AbstractBaseUser, turn_id: uuid.UUID) -> Turn:
    """Raises Turn.DoesNotExist unless the user has a saved answer with this id."""
    return Turn.objects.get(pk=turn_id, role=Turn.Role.ASSISTANT, conversation__owner_id=owner.pk)


async def find_answer(*, owner: AbstractBaseUser, turn_id: uuid.UUID) -> LiveAnswer | Turn | None:
    """An answer of the user's: live while it is generated (in this process
    or, with Redis, another), its saved row once it ended; None if the user
    has no such answer."""
    live = await live_answers().find(turn_id)
    if live is not None and live.owner_id == owner.pk:
        return live
    try:
        return await run_db(saved_answer, owner=owner, turn_id=turn_id)
    except Turn.DoesNotExist:
        return None
