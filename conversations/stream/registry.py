"""The answers this process is generating, by turn id, so that a request
other than the one that started an answer (a Stop from another tab, staff)
can find it. One process's view only: sharing it across processes is the
live package's job."""

import uuid
from typing import Protocol

from .answer import PreparedTurn


class RunningAnswer(Protocol):
    """An answer being generated here (an AnswerRelay), as the registry's
    users (the shutdown, the live package) see it."""

    prepared: PreparedTurn

    def cancel(self, reason: str = ...) -> None: ...

    def interrupt(self) -> None: ...

    def attach(self) -> None: ...

    def detach(self) -> None: ...

    def release(self) -> None: ...

    def decision_written(self, call_id: str) -> None: ...

    async def wait_saved(self) -> None: ...


_generating: dict[uuid.UUID, RunningAnswer] = {}


def add(answer: RunningAnswer) -> None:
    _generating[answer.prepared.answer_turn_id] = answer


def remove(answer: RunningAnswer) -> None:
    _generating.pop(answer.prepared.answer_turn_id, None)


def find(turn_id: uuid.UUID) -> RunningAnswer | None:
    return _generating.get(turn_id)


def in_conversation(conversation_id: uuid.UUID) -> list[RunningAnswer]:
    """The answers this process is generating in one conversation."""
    return [answer for answer in _generating.values() if answer.prepared.conversation_id == conversation_id]


def all_answers() -> list[RunningAnswer]:
    return list(_generating.values())
