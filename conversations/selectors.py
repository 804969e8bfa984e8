"""Reads. Every object is looked up through its owner, so a foreign id is
indistinguishable from a missing one."""

import uuid

from django.contrib.auth.base_user import AbstractBaseUser
from django.db import connection
from django.db.models import Q, QuerySet

from .branches import Branches
from .conf import conf
from .live import LiveAnswer, live_answers
from .models import Conversation, Prompt, StoredFile, Turn
from .storage.threads import run_db


def prompts() -> list[Prompt]:
    """The staff's prompts, by name (every user may start from any)."""
    return list(Prompt.objects.order_by("name"))


def owned_conversations(*, owner: AbstractBaseUser) -> QuerySet[Conversation]:
    return Conversation.objects.filter(owner_id=owner.pk)


def search_conversations(*, owner: AbstractBaseUser, words: str) -> QuerySet[Conversation]:
    """The user's conversations whose title or turns have `words`: all of
    them, stemmed (PostgreSQL's full-text search, CHATSTREAM_SEARCH_CONFIG),
    or on other databases each word as a plain case-insensitive match."""
    conversations = owned_conversations(owner=owner)
    if connection.vendor == "postgresql":
        from django.contrib.postgres.search import SearchQuery, SearchVector

        query = SearchQuery(words, config=conf.CHATSTREAM_SEARCH_CONFIG, search_type="websearch")
        matching_turns = (
            Turn.objects.filter(conversation__owner_id=owner.pk)
            .annotate(document=SearchVector("content", config=conf.CHATSTREAM_SEARCH_CONFIG))
            .filter(document=query)
            .values("conversation_id")
        )
        titled = conversations.annotate(document=SearchVector("title", config=conf.CHATSTREAM_SEARCH_CONFIG))
        return titled.filter(Q(document=query) | Q(pk__in=matching_turns))
    for word in words.split():
        word_turns = Turn.objects.filter(conversation__owner_id=owner.pk, content__icontains=word)
        in_turns = Q(pk__in=word_turns.values("conversation_id"))
        conversations = conversations.filter(Q(title__icontains=word) | in_turns)
    return conversations


def conversation_with_turns(*, owner: AbstractBaseUser, conversation_id: uuid.UUID) -> tuple[Conversation, list[Turn]]:
    """The conversation and the turns of the branch it shows, oldest first,
    each with `siblings` (its versions' ids, itself among them, in order).
    Raises Conversation.DoesNotExist for a missing or foreign id."""
    conversation = owned_conversations(owner=owner).select_related("memory").get(pk=conversation_id)
    return conversation, shown_branch(conversation, list(conversation.turns.select_related("feedback")))


def conversation_files(*, conversation: Conversation) -> list[StoredFile]:
    """The files sent in the conversation that are still stored, oldest first."""
    return list(conversation.files.order_by("created_at", "pk"))


def shown_branch(conversation: Conversation, turns: list[Turn]) -> list[Turn]:
    """`turns` (all of a conversation's, by position) narrowed to the branch
    ending at its leaf, with each one's siblings set."""
    return Branches(turns).ending_at(conversation.leaf)


def owned_turn(*, owner: AbstractBaseUser, turn_id: uuid.UUID) -> Turn:
    """Raises Turn.DoesNotExist unless the user has a turn with this id."""
    return Turn.objects.select_related("conversation").get(pk=turn_id, conversation__owner_id=owner.pk)


def saved_answer(*, owner: AbstractBaseUser, turn_id: uuid.UUID) -> Turn:
    """Raises Turn.DoesNotExist unless the user has a saved answer with this id."""
    return Turn.objects.get(pk=turn_id, role=Turn.Role.ASSISTANT, conversation__owner_id=owner.pk)


def answer_awaited(*, owner: AbstractBaseUser, turn_id: uuid.UUID) -> bool:
    """Whether a question of the user's waits for this answer, which has no
    row yet: it is being generated, or was lost with its process."""
    asked = Turn.objects.filter(role=Turn.Role.USER, reply_id=turn_id, conversation__owner_id=owner.pk)
    return asked.exists() and not Turn.objects.filter(pk=turn_id).exists()


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
