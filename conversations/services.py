"""Writes. Each function is one transaction, keyword-only and typed, and is
called from async code through `db.run_db` (Django's ORM is sync, and a
transaction must stay on one thread)."""

import functools
import json
import logging
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field

from django.contrib.auth.models import User
from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from . import memory
from .conf import conf
from .models import Conversation, Turn
from .prompt import Prompt, assemble
from .providers import Message
from .rows import RowInsert

logger = logging.getLogger(__name__)

TITLE_CHARS = 60


@dataclass(frozen=True)
class PreparedTurn:
    """Everything the stream needs, read before it starts so that no database
    connection is held while tokens flow."""

    conversation_id: uuid.UUID
    owner_id: int
    user_turn_id: uuid.UUID
    answer_turn_id: uuid.UUID
    answer_position: int
    messages: list[Message]
    prompt_turns: int = 0
    prompt_tokens: int = 0


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
    cancel_latency_ms: float | None = None
    tokens_after_cancel: int | None = None
    error_code: str = ""
    error_detail: str = ""
    attempts: list[dict[str, str]] = field(default_factory=list)  # failed model calls before this answer
    token_gaps: bytes = b""  # ms waited for each piece of text, as unsigned 16-bit numbers


def create_conversation(*, owner: User, title: str = "") -> Conversation:
    return Conversation.objects.create(owner=owner, title=title[:200])


def rename_conversation(*, conversation: Conversation, title: str) -> Conversation:
    conversation.title = title.strip()[:200]
    conversation.save(update_fields=["title", "updated_at"])
    return conversation


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
_MEMORY = "SELECT summary, facts FROM conversations_conversationmemory WHERE conversation_id = %s"
_NEWEST_TURNS_FIRST = """
    SELECT role, content FROM conversations_turn
    WHERE conversation_id = %s AND content <> ''
    ORDER BY position DESC
"""


_insert_turn = RowInsert(Turn)


def _db_id(value: uuid.UUID):
    return Conversation._meta.pk.get_db_prep_value(value, connection)


def _db_now():
    return connection.ops.adapt_datetimefield_value(timezone.now())


class DuplicateMessage(Exception):
    """This conversation already has a message with the client's Idempotency-Key."""

    def __init__(self, reply_id: uuid.UUID) -> None:
        super().__init__(reply_id)
        self.reply_id = reply_id


def start_turn(*, owner: User, conversation_id: uuid.UUID, content: str, idempotency_key: str = "") -> PreparedTurn:
    """Save the user's message and reserve the answer's position, before the
    model is called. Raises Conversation.DoesNotExist for a foreign id, and
    DuplicateMessage for a key already used in this conversation (checked
    first; the unique constraint settles two that arrive together)."""
    if idempotency_key:
        _raise_if_duplicate(owner, conversation_id, idempotency_key)
    try:
        return _start_turn(owner=owner, conversation_id=conversation_id, content=content, key=idempotency_key)
    except IntegrityError:
        if not idempotency_key:
            raise
        _raise_if_duplicate(owner, conversation_id, idempotency_key)
        raise


def _raise_if_duplicate(owner: User, conversation_id: uuid.UUID, key: str) -> None:
    earlier = Turn.objects.filter(conversation_id=conversation_id, conversation__owner=owner, idempotency_key=key)
    reply_id = earlier.values_list("reply_id", flat=True).first()
    if reply_id is not None:
        raise DuplicateMessage(reply_id)


@transaction.atomic
def _start_turn(*, owner: User, conversation_id: uuid.UUID, content: str, key: str) -> PreparedTurn:
    user_turn_id, answer_turn_id = uuid.uuid4(), uuid.uuid4()
    with connection.cursor() as cursor:
        cursor.execute(_RESERVE_POSITIONS, [_db_now(), _title_from(content), _db_id(conversation_id), owner.pk])
        reserved = cursor.fetchone()
        if reserved is None:
            raise Conversation.DoesNotExist
        position = reserved[0]
        _insert_turn(
            cursor,
            id=user_turn_id,
            conversation_id=conversation_id,
            position=position,
            role=Turn.Role.USER,
            content=content,
            idempotency_key=key,
            reply_id=answer_turn_id,
        )
        built = _prompt(cursor, conversation_id)
    return PreparedTurn(
        conversation_id=conversation_id,
        owner_id=owner.pk,
        user_turn_id=user_turn_id,
        answer_turn_id=answer_turn_id,
        answer_position=position + 1,
        messages=built.messages,
        prompt_turns=built.turns,
        prompt_tokens=built.tokens,
    )


def _prompt(cursor, conversation_id: uuid.UUID) -> Prompt:
    """The memory, then the newest turns, read only as far as the budget goes."""
    cursor.execute(_MEMORY, [_db_id(conversation_id)])
    summary, facts = cursor.fetchone() or ("", "[]")
    cursor.execute(_NEWEST_TURNS_FIRST, [_db_id(conversation_id)])
    return assemble(
        system=conf.LLM_SYSTEM_PROMPT,
        summary=summary,
        facts=json.loads(facts) if isinstance(facts, str) else facts,  # text on SQLite, JSON on PostgreSQL
        newest_first=_rows(cursor),
        budget=conf.LLM_CONTEXT_TOKENS,
    )


def _rows(cursor, batch: int = 50) -> Iterator[tuple[str, str]]:
    while rows := cursor.fetchmany(batch):
        yield from rows


def status_for(finish_reason: str) -> str:
    if finish_reason == Turn.FinishReason.STOP:
        return Turn.Status.COMPLETE
    if finish_reason == Turn.FinishReason.ERROR:
        return Turn.Status.FAILED
    return Turn.Status.INTERRUPTED


@transaction.atomic
def record_answer(*, prepared: PreparedTurn, answer: Answer) -> bool:
    """Write the answer's turn: once, when its stream has ended, however it
    ended. False if the conversation was deleted meanwhile."""
    # Touching the conversation first also locks its row (on PostgreSQL), so a
    # delete cannot slip in between this check and the insert.
    with connection.cursor() as cursor:
        cursor.execute(_TOUCH_CONVERSATION, [_db_now(), _db_id(prepared.conversation_id)])
        touched = cursor.rowcount
        if not touched:
            logger.info("conversation %s was deleted while answering; answer dropped", prepared.conversation_id)
            return False
        _insert_turn(
            cursor,
            id=prepared.answer_turn_id,
            conversation_id=prepared.conversation_id,
            position=prepared.answer_position,
            role=Turn.Role.ASSISTANT,
            status=status_for(answer.finish_reason),
            prompt_turns=prepared.prompt_turns,
            prompt_tokens=prepared.prompt_tokens,
            **vars(answer),
        )
    # Queued only if this transaction commits: a rolled-back answer queues
    # nothing, a committed one exactly one update.
    transaction.on_commit(functools.partial(memory.enqueue_update, prepared.conversation_id))
    return True
