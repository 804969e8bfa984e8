"""An answer's turn is saved: told from where that is known (answering's
relays, in the process that generated them; recovery's lost answers, saved
by another) to whoever waits for it (queued/starting.py: the conversation's
next queued message). A registry, so that answering and recovery stay below
the queue."""

import asyncio
import uuid
from collections.abc import Awaitable, Callable

from . import background

Listener = Callable[[uuid.UUID, uuid.UUID], Awaitable[None]]
_listeners: list[Listener] = []
# Conversations whose answer's save saw messages queued (services.record_answer).
_queue_waiting: set[uuid.UUID] = set()


def when_an_answer_ends(listener: Listener) -> None:
    """`listener(conversation_id, turn_id)` runs, in a task of its own, after each answer's turn is saved."""
    if listener not in _listeners:
        _listeners.append(listener)


def answer_ended(conversation_id: uuid.UUID, turn_id: uuid.UUID) -> None:
    """An answer's turn is saved (or given up): tell the listeners, each in a
    task of its own (this is called from a task's done callback)."""
    for listener in _listeners:
        background.keep(asyncio.ensure_future(listener(conversation_id, turn_id)))


def queue_waits(conversation_id: uuid.UUID) -> None:
    """The transaction that saved an answer of the conversation saw messages
    queued there: the answer's end must start the next (told on commit, on a
    database thread)."""
    _queue_waiting.add(conversation_id)


def queue_waited(conversation_id: uuid.UUID) -> bool:
    """Did an answer's save see messages queued in the conversation since
    this was last asked?"""
    try:
        _queue_waiting.remove(conversation_id)
    except KeyError:
        return False
    return True
