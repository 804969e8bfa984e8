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
# The UPDATE also takes the conversation's row lock on PostgreSQL (and the
# write lock on SQLite), so concurrent messages to one conversation get
# distinct positions, and each continues the branch the one before it ended.
_RESERVE_POSITIONS = f"""
    UPDATE {_CONVERSATION}
    SET next_position = next_position + 2, updated_at = %s,
        title = CASE WHEN title = '' THEN %s ELSE title END
    WHERE id = %s AND owner_id = %s
    RETURNING next_position - 2, model, leaf
"""
_SET_LEAF = f"UPDATE {_CONVERSATION} SET leaf = %s WHERE id = %s"
_TOUCH_CONVERSATION = f"UPDATE {_CONVERSATION} SET updated_at = %s WHERE id = %s"
_MEMORY = f"SELECT summary, facts, covers_turn_id FROM {ConversationMemory._meta.db_table} WHERE conversation_id = %s"
_TURN = Turn._meta.db_table
# A branch, from one turn up through its parents: the turns a prompt, the
# memory and an export follow. A recursive CTE is one statement on SQLite
# and PostgreSQL alike, however long the branch. An answer still streaming
# (or lost with its process) has no row: the branch goes on at the question
# whose reply it is (`reply_id`, kept on the newest version).
_BRANCH = f"""
    WITH RECURSIVE branch(id, parent, position) AS (
        SELECT id, parent, position FROM {_TURN} WHERE id = %s
        UNION ALL
        SELECT COALESCE(a.id, q.id), COALESCE(a.parent, q.parent), COALESCE(a.position, q.position)
        FROM branch b
        LEFT JOIN {_TURN} a ON a.id = b.parent
        LEFT JOIN {_TURN} q ON a.id IS NULL AND q.reply_id = b.parent
        WHERE a.id IS NOT NULL OR q.id IS NOT NULL
    )
"""
_BRANCH_NEWEST_FIRST = f"""{_BRANCH}
    SELECT t.role, t.content, '' FROM branch b JOIN {_TURN} t ON t.id = b.id
    WHERE t.content <> ''
    ORDER BY b.position DESC
"""
_BRANCH_NEWEST_FIRST_WITH_REASONING = _BRANCH_NEWEST_FIRST.replace("t.content, ''", "t.content, t.reasoning", 1)
_ON_BRANCH = f"{_BRANCH} SELECT 1 FROM branch WHERE id = %s"
_REPLY_IS = f"UPDATE {_TURN} SET reply_id = %s WHERE id = %s"


def _db_id(value: uuid.UUID):
    return Conversation._meta.pk.get_db_prep_value(value, connection)


def _db_now():
    return connection.ops.adapt_datetimefield_value(timezone.now())


def reserve_positions(
    cursor, *, conversation_id: uuid.UUID, owner_id: int, title: str
) -> tuple[int, str, uuid.UUID | None] | None:
    """Two positions for a message and its answer (the first is returned,
    with the conversation's model and its shown branch's last turn), and
    the title if the conversation has none; None for a foreign id."""
    cursor.execute(_RESERVE_POSITIONS, [_db_now(), title, _db_id(conversation_id), owner_id])
    reserved = cursor.fetchone()
    if reserved is None:
        return None
    position, model, leaf = reserved
    return position, model, _uuid(leaf)


def show_leaf(cursor, conversation_id: uuid.UUID, leaf: uuid.UUID) -> None:
    """Make `leaf` the end of the branch the conversation shows."""
    cursor.execute(_SET_LEAF, [_db_id(leaf), _db_id(conversation_id)])


def _uuid(value) -> uuid.UUID | None:
    """A UUID column's value as read by a raw cursor: a UUID on PostgreSQL, hex text on SQLite."""
    if value is None or isinstance(value, uuid.UUID):
        return value
    return uuid.UUID(value)


def touch_conversation(cursor, conversation_id: uuid.UUID) -> bool:
    """Mark the conversation as just used (and lock its row); False if it is gone."""
    cursor.execute(_TOUCH_CONVERSATION, [_db_now(), _db_id(conversation_id)])
    return bool(cursor.rowcount)


def memory_of(cursor, conversation_id: uuid.UUID) -> tuple[str, list[str], uuid.UUID | None]:
    """The conversation's summary and facts, and the last turn they cover
    (empty before the first update)."""
    cursor.execute(_MEMORY, [_db_id(conversation_id)])
    summary, facts, covers = cursor.fetchone() or ("", "[]", None)
    return summary, json.loads(facts) if isinstance(facts, str) else facts, _uuid(covers)  # JSON is text on SQLite


def branch_newest_first(
    cursor, last_turn_id: uuid.UUID, *, with_reasoning: bool = False, batch: int = 50
) -> Iterator[tuple[str, str]]:
    """(role, content) of the branch ending at `last_turn_id`, from it back,
    read a batch at a time: the prompt stops reading where its budget ends.
    `with_reasoning`: an answer's reasoning goes before its text, as
    `<think>…</think>`."""
    statement = _BRANCH_NEWEST_FIRST_WITH_REASONING if with_reasoning else _BRANCH_NEWEST_FIRST
    cursor.execute(statement, [_db_id(last_turn_id)])
    while rows := cursor.fetchmany(batch):
        for role, content, reasoning in rows:
            yield role, f"<think>\n{reasoning}\n</think>\n\n{content}" if reasoning else content


def reply_is(cursor, question_id: uuid.UUID, answer_id: uuid.UUID) -> None:
    """The question's newest answer: where a branch through it goes on
    while that answer streams, and what a repeat of the question gets."""
    cursor.execute(_REPLY_IS, [_db_id(answer_id), _db_id(question_id)])


def on_branch(cursor, last_turn_id: uuid.UUID, turn_id: uuid.UUID) -> bool:
    """Is `turn_id` on the branch that ends at `last_turn_id`?"""
    cursor.execute(_ON_BRANCH, [_db_id(last_turn_id), _db_id(turn_id)])
    return cursor.fetchone() is not None


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
