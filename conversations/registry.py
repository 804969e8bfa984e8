"""The answers this process is generating, by turn id, so that a request
other than the one that started an answer (a Stop from another tab, staff)
can find it. One process's view only: sharing it across processes is the
Redis layer's job."""

import uuid
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .relay import AnswerRelay

_generating: dict[uuid.UUID, "AnswerRelay"] = {}


def add(relay: "AnswerRelay") -> None:
    _generating[relay.prepared.answer_turn_id] = relay


def remove(relay: "AnswerRelay") -> None:
    _generating.pop(relay.prepared.answer_turn_id, None)


def find(turn_id: uuid.UUID) -> "AnswerRelay | None":
    return _generating.get(turn_id)


def in_conversation(conversation_id: uuid.UUID) -> list["AnswerRelay"]:
    """The answers this process is generating in one conversation."""
    return [relay for relay in _generating.values() if relay.prepared.conversation_id == conversation_id]


def all_answers() -> list["AnswerRelay"]:
    return list(_generating.values())
