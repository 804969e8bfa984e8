"""Writes. Each function is one transaction, keyword-only and typed, and is
called from async code through `db.run_db` (Django's ORM is sync, and a
transaction must stay on one thread)."""

import logging
import uuid
from dataclasses import dataclass

from django.contrib.auth.models import User
from django.db import connection, transaction
from django.utils import timezone

from .models import Conversation, Turn
from .providers import Message

logger = logging.getLogger(__name__)

TITLE_CHARS = 60


@dataclass(frozen=True)
class PreparedTurn:
    """Everything the stream needs, read before it starts so that no database
    connection is held while tokens flow."""

    conversation_id: uuid.UUID
    user_turn_id: uuid.UUID
    answer_turn_id: uuid.UUID
    answer_position: int
    messages: list[Message]


@dataclass(frozen=True)
class Answer:
    """How an answer's stream ended, as it is saved."""

    content: str
    finish_reason: str
    model: str
    provider: str
    trace_id: str
    ttft_ms: int | None
    duration_ms: int
    tokens_in: int | None
    tokens_out: int | None
    tokens_estimated: bool
    malformed_chunks: int = 0
    error_code: str = ""
    error_detail: str = ""


def create_conversation(*, owner: User, title: str = "") -> Conversation:
    return Conversation.objects.create(owner=owner, title=title[:200])


def delete_conversation(*, conversation: Conversation) -> None:
    conversation.delete()


def _title_from(content: str) -> str:
    line = " ".join(content.split())
    return line if len(line) <= TITLE_CHARS else line[: TITLE_CHARS - 1].rstrip() + "…"


# The statements every message runs are written out: building them with the
# ORM costs several times what the database takes to run them (bench/). The
# UPDATE also takes the conversation's row lock on PostgreSQL, so concurrent
# messages to one conversation get distinct positions.
_RESERVE_POSITIONS = """
    UPDATE conversations_conversation
    SET next_position = next_position + 2, updated_at = %s,
        title = CASE WHEN title = '' THEN %s ELSE title END
    WHERE id = %s AND owner_id = %s
    RETURNING next_position - 2
"""
_TOUCH_CONVERSATION = "UPDATE conversations_conversation SET updated_at = %s WHERE id = %s"
_PROMPT_HISTORY = """
    SELECT role, content FROM conversations_turn
    WHERE conversation_id = %s AND content <> ''
    ORDER BY position
"""


def _db_id(value: uuid.UUID):
    return Conversation._meta.pk.get_db_prep_value(value, connection)


def _db_now():
    return connection.ops.adapt_datetimefield_value(timezone.now())


@transaction.atomic
def start_turn(*, owner: User, conversation_id: uuid.UUID, content: str) -> PreparedTurn:
    """Save the user's message and reserve the answer's position, before the
    model is called. Raises Conversation.DoesNotExist for a foreign id."""
    with connection.cursor() as cursor:
        cursor.execute(_RESERVE_POSITIONS, [_db_now(), _title_from(content), _db_id(conversation_id), owner.pk])
        reserved = cursor.fetchone()
        if reserved is None:
            raise Conversation.DoesNotExist
        position = reserved[0]
        user_turn = Turn.objects.create(
            conversation_id=conversation_id, position=position, role=Turn.Role.USER, content=content
        )
        cursor.execute(_PROMPT_HISTORY, [_db_id(conversation_id)])
        messages: list[Message] = [{"role": role, "content": text} for role, text in cursor.fetchall()]
    return PreparedTurn(
        conversation_id=conversation_id,
        user_turn_id=user_turn.pk,
        answer_turn_id=uuid.uuid4(),
        answer_position=position + 1,
        messages=messages,
    )


def status_for(finish_reason: str) -> str:
    if finish_reason == Turn.FinishReason.STOP:
        return Turn.Status.COMPLETE
    if finish_reason == Turn.FinishReason.ERROR:
        return Turn.Status.FAILED
    return Turn.Status.INTERRUPTED


@transaction.atomic
def record_answer(*, prepared: PreparedTurn, answer: Answer) -> Turn | None:
    """Write the answer's turn: once, when its stream has ended, however it
    ended. Returns None if the conversation was deleted meanwhile."""
    # Touching the conversation first also locks its row (on PostgreSQL), so a
    # delete cannot slip in between this check and the insert.
    with connection.cursor() as cursor:
        cursor.execute(_TOUCH_CONVERSATION, [_db_now(), _db_id(prepared.conversation_id)])
        touched = cursor.rowcount
    if not touched:
        logger.info("conversation %s was deleted while answering; answer dropped", prepared.conversation_id)
        return None
    return Turn.objects.create(
        id=prepared.answer_turn_id,
        conversation_id=prepared.conversation_id,
        position=prepared.answer_position,
        role=Turn.Role.ASSISTANT,
        status=status_for(answer.finish_reason),
        **vars(answer),
    )
