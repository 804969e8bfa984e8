"""Reads. Every object is looked up through its owner, so a foreign id is
indistinguishable from a missing one."""

import uuid

from django.contrib.auth.models import AbstractBaseUser
from django.db.models import QuerySet

from .models import Conversation
from .providers import Message


def owned_conversations(*, owner: AbstractBaseUser) -> QuerySet[Conversation]:
    return Conversation.objects.filter(owner=owner)


def conversation_with_turns(*, owner: AbstractBaseUser, conversation_id: uuid.UUID) -> Conversation:
    """Raises Conversation.DoesNotExist for a missing or foreign id."""
    conversation = owned_conversations(owner=owner).get(pk=conversation_id)
    conversation.ordered_turns = list(conversation.turns.order_by("position"))
    return conversation


def prompt_messages(*, conversation: Conversation) -> list[Message]:
    """The history sent to the model: every turn with text, in order."""
    rows = conversation.turns.exclude(content="").order_by("position").values_list("role", "content")
    return [{"role": role, "content": content} for role, content in rows]
