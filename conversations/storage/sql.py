"""The statements the hot path runs, written out: building them with the ORM
cost several times what the database took to run them (bench/). Table and
column names come from the models, so a project's own user model works."""

import functools
import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import orjson
from django.contrib.auth import get_user_model
from django.db import connection
from django.utils import timezone

from ..exceptions import GuardrailRefused
from ..files.parts import with_files
from ..instructions import Instructions
from ..models import ApiKey, Conversation, ConversationMemory, QueuedMessage, Turn
from ..providers import Message
from ..stream.tool_loop import answer_messages

_CONVERSATION = Conversation._meta.db_table
# The UPDATE also takes the conversation's row lock on PostgreSQL (and the
# write lock on SQLite), so concurrent messages to one conversation get
# distinct positions, and each continues the branch the one before it ended.
_RESERVE_POSITIONS = f"""
    UPDATE {_CONVERSATION}
    SET next_position = next_position + 2, updated_at = %s,
        title = CASE WHEN title = '' THEN %s ELSE title END
    WHERE id = %s AND owner_id = %s
    RETURNING next_position - 2, model, leaf, tools, system_prompt, parameters, response_format
"""
_SET_LEAF = f"UPDATE {_CONVERSATION} SET leaf = %s WHERE id = %s"
_TOUCH_CONVERSATION = f"UPDATE {_CONVERSATION} SET updated_at = %s WHERE id = %s"
_HAS_QUEUED = f"SELECT 1 FROM {QueuedMessage._meta.db_table} WHERE conversation_id = %s LIMIT 1"
_MEMORY = f"""
    SELECT summary, facts, covers_turn_id, covers_position FROM {ConversationMemory._meta.db_table}
    WHERE conversation_id = %s
"""
_TURN = Turn._meta.db_table
# A conversation's turns from the newest back (its index on conversation and
# position): a branch is read from them by following parents, which always
# sit at lower positions, so the prompt reads only as far back as it needs.
_TURNS_NEWEST_FIRST = f"""
    SELECT id, parent, reply_id, role, content, '', tool_results, tool_calls, output_runs, files, error_code
    FROM {_TURN}
    WHERE conversation_id = %s
    ORDER BY position DESC
"""
_TURNS_NEWEST_FIRST_WITH_REASONING = _TURNS_NEWEST_FIRST.replace("content, ''", "content, reasoning", 1)
_TURN_IDS_NEWEST_FIRST = f"""
    SELECT id, parent, reply_id, role, '', '', '', '', '', '' FROM {_TURN}
    WHERE conversation_id = %s AND position >= %s
    ORDER BY position DESC
"""
_REPLY_IS = f"UPDATE {_TURN} SET reply_id = %s WHERE id = %s"


def _db_id(value: uuid.UUID):
    return Conversation._meta.pk.get_db_prep_value(value, connection)


def _db_now():
    return connection.ops.adapt_datetimefield_value(timezone.now())


@dataclass(frozen=True)
class Reserved:
    """What reserving a message's positions returns of its conversation."""

    position: int  # the message's; its answer's is the next
    model: str
    leaf: uuid.UUID | None  # its shown branch's last turn
    tools: bool  # its answers may call tools
    instructions: Instructions  # its own system prompt, parameters and response format


def reserve_positions(cursor, *, conversation_id: uuid.UUID, owner_id: int, title: str) -> Reserved | None:
    """Two positions for a message and its answer (the first is returned,
    with what the answer needs of the conversation), and the title if the
    conversation has none; None for a foreign id."""
    cursor.execute(_RESERVE_POSITIONS, [_db_now(), title, _db_id(conversation_id), owner_id])
    reserved = cursor.fetchone()
    if reserved is None:
        return None
    position, model, leaf, tools, system_prompt, parameters, response_format = reserved
    instructions = Instructions(
        system_prompt=system_prompt or None,
        parameters=_json_object(parameters),
        response_format=_json_object(response_format) or None,
    )
    return Reserved(position, model, _uuid(leaf), bool(tools), instructions)


def _json_object(value: Any) -> dict[str, Any]:
    # JSON is text on SQLite (and jsonb's "null" may come back as None).
    return (orjson.loads(value) if isinstance(value, str | bytes) else value) or {}


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


def has_queued(cursor, conversation_id: uuid.UUID) -> bool:
    """Are messages queued in the conversation (queued/)?"""
    cursor.execute(_HAS_QUEUED, [_db_id(conversation_id)])
    return cursor.fetchone() is not None


def memory_of(cursor, conversation_id: uuid.UUID) -> tuple[str, list[str], uuid.UUID | None, int]:
    """The conversation's summary and facts, and the last turn they cover
    and its position (empty and -1 before the first update)."""
    cursor.execute(_MEMORY, [_db_id(conversation_id)])
    summary, facts, covers, position = cursor.fetchone() or ("", "[]", None, -1)
    facts = json.loads(facts) if isinstance(facts, str) else facts  # JSON is text on SQLite
    return summary, facts, _uuid(covers), position


def branch_newest_first(
    cursor, conversation_id: uuid.UUID, last_turn_id: uuid.UUID, *, with_reasoning: bool = False, batch: int = 50
) -> Iterator[list[Message]]:
    """The messages of each turn of the branch ending at `last_turn_id`, from
    it back, read a batch at a time: the prompt stops reading where its
    budget ends. `with_reasoning`: an answer's reasoning goes before its
    text, as `<think>…</think>`. An answer whose tools ran is its steps in
    OpenAI's shape (tool_loop.answer_messages); a message that sent files
    has a placeholder part for each (files/parts.py)."""
    statement = _TURNS_NEWEST_FIRST_WITH_REASONING if with_reasoning else _TURNS_NEWEST_FIRST
    cursor.execute(statement, [_db_id(conversation_id)])
    for index, (_, role, content, reasoning, *tools) in enumerate(_on_branch_only(cursor, last_turn_id, batch)):
        if index and tools[4] == GuardrailRefused.code:
            continue  # an earlier question a guardrail refused: never sent to a model (its answer is empty)
        results = _json(tools[0])
        if results:
            yield answer_messages(
                content, tool_calls=_json(tools[1]), tool_results=results, output_runs=_json(tools[2])
            )
        elif files := _json(tools[3]):
            yield [with_files({"role": role, "content": content}, files)]
        elif content:
            yield [{"role": role, "content": f"<think>\n{reasoning}\n</think>\n\n{content}" if reasoning else content}]


def _json(value: Any) -> Any:
    """A JSON column as a raw cursor reads it: decoded on PostgreSQL, text on SQLite."""
    if isinstance(value, str):
        return orjson.loads(value) if value not in ("", "[]") else []
    return value


def on_branch(cursor, conversation_id: uuid.UUID, last_turn_id: uuid.UUID, turn_id: uuid.UUID, position: int) -> bool:
    """Is `turn_id` (at `position`) on the branch that ends at `last_turn_id`?"""
    cursor.execute(_TURN_IDS_NEWEST_FIRST, [_db_id(conversation_id), position])
    wanted = _db_id(turn_id)
    return any(found == wanted for found, *_ in _on_branch_only(cursor, last_turn_id, batch=100))


def _on_branch_only(cursor, last_turn_id: uuid.UUID, batch: int) -> Iterator[tuple[Any, ...]]:
    """Of the rows the cursor gives newest first, those on the branch ending
    at `last_turn_id`: (id as the database gives it, role, then the row's
    other columns). An answer with no row (still streaming, or lost with its
    process) is stepped past to the question whose reply it is."""
    # Ids are compared as the database gives them (UUIDs on PostgreSQL, hex
    # on SQLite): parsing two per row cost more than the query.
    wanted = _db_id(last_turn_id)
    while wanted is not None and (rows := cursor.fetchmany(batch)):
        for turn_id, parent, reply_id, role, *rest in rows:
            if turn_id != wanted and (role != "user" or reply_id != wanted):
                continue
            yield turn_id, role, *rest
            wanted = parent
            if wanted is None:
                return


def reply_is(cursor, question_id: uuid.UUID, answer_id: uuid.UUID) -> None:
    """The question's newest answer: where a branch through it goes on
    while that answer streams, and what a repeat of the question gets."""
    cursor.execute(_REPLY_IS, [_db_id(answer_id), _db_id(question_id)])


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
