"""Reads. Every object is looked up through its owner, so a foreign id is
indistinguishable from a missing one."""

import uuid

from django.contrib.auth.models import User
from django.db.models import QuerySet

from .models import Conversation, Turn


def owned_conversations(*, owner: User) -> QuerySet[Conversation]:
    return Conversation.objects.filter(owner=owner)


def conversation_with_turns(*, owner: User, conversation_id: uuid.UUID) -> tuple[Conversation, list[Turn]]:
    """Raises Conversation.DoesNotExist for a missing or foreign id."""
    conversation = owned_conversations(owner=owner).select_related("memory").get(pk=conversation_id)
    return conversation, list(conversation.turns.order_by("position"))
