"""The statements the hot path runs, written out: building them with the ORM
cost several times what the database took to run them (bench/). Table and
column names come from the models, so a project's own user model works."""

import functools
import json
import uuid
from collections.abc import Iterator

from django.contrib.auth import get_user_model
from django.db import connection
from django.utils import timezone

from ..models import ApiKey, Conversation, ConversationMemory, Turn

_CONVERSATION = Conversation._meta.db_table
# The UPDATE also takes the conversation's row lock on PostgreSQL, so
# concurrent messages to one conversation get distinct positions.
_RESERVE_POSITIONS = f"""
    UPDATE {_CONVERSATION}
    SET next_position = next_position + 2, updated_at = %s,
        title = CASE WHEN title = '' THEN %s ELSE title END
    WHERE id = %s AND owner_id = %s
    RETURNING next_position - 2, model
"""
_TOUCH_CONVERSATION = f"UPDATE {_CONVERSATION} SET updated_at = %s WHERE id = %s"
_MEMORY = f"SELECT summary, facts FROM {ConversationMemory._meta.db_table} WHERE conversation_id = %s"
_NEWEST_TURNS_FIRST = f"""
    SELECT role, content, '' FROM {Turn._meta.db_table}
    WHERE conversation_id = %s AND content <> ''
    ORDER BY position DESC
"""
_NEWEST_TURNS_FIRST_WITH_REASONING = _NEWEST_TURNS_FIRST.replace("content, ''", "content, reasoning", 1)


def _db_id(value: uuid.UUID):
    return Conversation._meta.pk.get_db_prep_value(value, connection)


def _db_now():
    return connection.ops.adapt_datetimefield_value(timezone.now())


def reserve_positions(cursor, *, conversation_id: uuid.UUID, owner_id: int, title: str) -> tuple[int, str] | None:
    """Two positions for a message and its answer (the first is returned,
    with the conversation's model), and the title if the conversation has
    none; None for a foreign id."""
    cursor.execute(_RESERVE_POSITIONS, [_db_now(), title, _db_id(conversation_id), owner_id])
    return cursor.fetchone()


def touch_conversation(cursor, conversation_id: uuid.UUID) -> bool:
    """Mark the conversation as just used (and lock its row); False if it is gone."""
    cursor.execute(_TOUCH_CONVERSATION, [_db_now(), _db_id(conversation_id)])
    return bool(cursor.rowcount)


def memory_of(cursor, conversation_id: uuid.UUID) -> tuple[str, list[str]]:
    """The conversation's summary and facts (empty before the first update)."""
    cursor.execute(_MEMORY, [_db_id(conversation_id)])
    summary, facts = cursor.fetchone() or ("", "[]")
    return summary, json.loads(facts) if isinstance(facts, str) else facts  # text on SQLite, JSON on PostgreSQL


def newest_turns_first(
    cursor, conversation_id: uuid.UUID, *, with_reasoning: bool = False, batch: int = 50
) -> Iterator[tuple[str, str]]:
    """(role, content) from the newest turn back, read a batch at a time: the
    prompt stops reading where its budget ends. `with_reasoning`: an
    answer's reasoning goes before its text, as `<think>…</think>`."""
    if with_reasoning:
        cursor.execute(_NEWEST_TURNS_FIRST_WITH_REASONING, [_db_id(conversation_id)])
    else:
        cursor.execute(_NEWEST_TURNS_FIRST, [_db_id(conversation_id)])
    while rows := cursor.fetchmany(batch):
        for role, content, reasoning in rows:
            yield role, f"<think>\n{reasoning}\n</think>\n\n{content}" if reasoning else content


@functools.cache
def user_for_key_prefix() -> str:
    """The one query behind every Bearer request: the key's user, with the
    key's id, hash and whether its last use is stale."""
    user = get_user_model()._meta
    key_user = ApiKey._meta.get_field("user").column
    return f"""
        SELECT u.*, k.id AS key_id, k.hashed_secret AS key_hash,
               (k.last_used_at IS NULL OR k.last_used_at < %s) AS key_stale
        FROM {ApiKey._meta.db_table} k JOIN {user.db_table} u ON u.{user.pk.column} = k.{key_user}
        WHERE k.prefix = %s AND k.revoked_at IS NULL
    """
