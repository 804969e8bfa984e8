"""Conversation memory, kept up to date by a background task.

After each answer is committed, `services.record_answer` queues
`update_memory` (through `transaction.on_commit`). The task reads the memory
and the turns after the last one it covers, asks the provider for an updated
summary and facts (outside any transaction: a model call can take seconds),
and writes the result only over the version it read. So:

- an update for turns already covered does nothing (idempotent);
- two workers updating one conversation cannot lose an update: the slower
  one's write matches no row, and it starts again from the faster one's memory;
- a worker killed mid-task has written nothing, and the next update (the
  next answer's, or staff's "update memory now") covers the same turns;
- a failed model call is retried later with exponential backoff, then the
  memory is marked failed; chatting is never affected.

Only the tasks API is used here (`@task`, `.enqueue()`, `.using()`: Django's
own `django.tasks`, or the django-tasks backport on Django 5.2), so the
backend (database, Redis, ...) is a setting.
"""

import dataclasses
import logging
import uuid
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from asgiref.sync import async_to_sync
from django.db import IntegrityError
from django.db.models import F
from django.utils import timezone

from ..branches import Branches
from ..conf import conf
from ..exceptions import GuardrailRefused, MemoryUpdateFailed, UpstreamError, UpstreamRateLimited
from ..models import Conversation, ConversationMemory, Spend, Turn
from ..providers import Completion, get_provider
from ..spend import ledger
from ..stream.tool_loop import transcript_text
from .request import ask_for_memory, fit_turns, memory_context_tokens

try:
    from django.tasks import task  # Django 6.0 and later
except ImportError:
    from django_tasks import task  # type: ignore[no-redef,unused-ignore]  # the backport, on Django 5.2

logger = logging.getLogger(__name__)

TURNS_PER_CALL = 40  # a long backlog is summarized in several calls, oldest first
MAX_RACES = 5  # lost compare-and-sets in a row before giving up (the next update covers it)


@dataclass(frozen=True)
class Snapshot:
    version: int
    owner_id: int  # who pays for the update
    summary: str
    facts: list[str]
    turns: list[Turn]  # the next turns to cover, in order, without gaps


def _remembered(turn: Turn) -> str:
    """What the memory model reads of a turn; nothing of a question a
    guardrail refused (it was never sent to a model, and never will be)."""
    if turn.error_code == GuardrailRefused.code and turn.role == Turn.Role.USER:
        return ""
    return _with_file_names(turn, transcript_text(turn.content, turn.tool_results))


def _with_file_names(turn: Turn, text: str) -> str:
    """A message's text, and what files it sent (by name: the memory keeps
    what was said, not the files)."""
    names = ", ".join(file["name"] for file in turn.files)
    return f"{text}\n[sent files: {names}]".strip() if names else text


def enqueue_update(conversation_id: uuid.UUID) -> None:
    update_memory.enqueue(str(conversation_id))


@task()
def update_memory(conversation_id: str, attempt: int = 1) -> dict[str, Any]:
    """Bring the conversation's memory up to its latest saved turn."""
    races = 0
    updated = 0
    while True:
        snapshot = read_snapshot(conversation_id)
        if snapshot is None:
            return {"outcome": "conversation deleted"}
        if not snapshot.turns:
            return {"outcome": "updated" if updated else "up to date", "version": snapshot.version}
        provider = get_provider()
        messages = fit_turns(
            snapshot.summary,
            snapshot.facts,
            [{"role": turn.role, "content": _remembered(turn)} for turn in snapshot.turns],
            memory_context_tokens(provider.memory_model),
        )
        snapshot = dataclasses.replace(snapshot, turns=snapshot.turns[: len(messages)])
        call = Completion(model=provider.memory_model)
        try:
            summary, facts = async_to_sync(ask_for_memory)(provider, snapshot.summary, snapshot.facts, messages, call)
        except UpstreamError as exc:
            return _attempt_failed(conversation_id, snapshot, attempt, exc)
        finally:
            ledger.record_call(
                kind=Spend.Kind.MEMORY, completion=call, user_id=snapshot.owner_id, conversation_id=conversation_id
            )
        if store(conversation_id, snapshot, summary=summary, facts=facts, model=provider.memory_model):
            updated += 1
            races = 0
            continue
        races += 1
        if races >= MAX_RACES:
            return {"outcome": "gave way to concurrent updates", "version": snapshot.version}


def read_snapshot(conversation_id: str) -> Snapshot | None:
    """The memory (made on first use) and the turns after it on the branch
    the conversation shows. A memory made on another branch (before a
    regenerate, an edit, a switch of version) is made again for this one.
    Turns are taken only up to an answer not yet written (still streaming),
    so that answer is covered later, not skipped."""
    try:
        memory, _ = ConversationMemory.objects.get_or_create(conversation_id=conversation_id)
    except (IntegrityError, ValueError):
        return None  # the conversation is gone
    conversation = Conversation.objects.filter(pk=conversation_id).first()
    if conversation is None:
        return None
    tree = Branches(list(conversation.turns.all()))
    branch = tree.ending_at(conversation.leaf)
    ids = [turn.pk for turn in branch]
    summary, facts, start = memory.summary, list(memory.facts), 0
    if memory.covers_turn_id in ids:
        start = ids.index(memory.covers_turn_id) + 1
    elif memory.covers_position >= 0:
        summary, facts = "", []  # another branch's memory: start again
    turns: list[Turn] = []
    for turn in branch[start : start + TURNS_PER_CALL]:
        if turn.parent is not None and turn.parent not in tree.by_id:
            break  # it follows an answer that has no row yet
        turns.append(turn)
    return Snapshot(version=memory.version, owner_id=conversation.owner_id, summary=summary, facts=facts, turns=turns)


def store(conversation_id: str, snapshot: Snapshot, *, summary: str, facts: list[str], model: str) -> bool:
    """Write the new memory over the version it was built from; False if
    another update got there first."""
    last = snapshot.turns[-1]
    written = ConversationMemory.objects.filter(conversation_id=conversation_id, version=snapshot.version).update(
        summary=summary,
        facts=facts,
        version=F("version") + 1,
        covers_position=last.position,
        covers_turn=last.pk,
        status=ConversationMemory.Status.CURRENT,
        error="",
        failed_attempts=0,
        model=model,
        updated_at=timezone.now(),
    )
    return written == 1


def _attempt_failed(conversation_id: str, snapshot: Snapshot, attempt: int, exc: UpstreamError) -> dict[str, Any]:
    """Try again later with exponential backoff (at least the server's
    Retry-After), or, after the last attempt, mark the memory failed."""
    final = attempt >= conf.CHATSTREAM_MEMORY_ATTEMPTS
    status = ConversationMemory.Status.FAILED if final else ConversationMemory.Status.RETRYING
    # Only over the version it read: a newer, successful update stays current.
    ConversationMemory.objects.filter(conversation_id=conversation_id, version=snapshot.version).update(
        status=status, error=f"{exc.code}: {exc}", failed_attempts=attempt, updated_at=timezone.now()
    )
    if final:
        logger.error(
            "memory update failed conversation=%s attempts=%s error=%s detail=%s",
            conversation_id,
            attempt,
            exc,
            exc.detail,  # what the error's plain text leaves out
        )
        raise MemoryUpdateFailed(f"{attempt} attempts failed; the last: {exc}") from exc
    delay = conf.CHATSTREAM_MEMORY_BACKOFF_SECONDS * 2 ** (attempt - 1)
    if isinstance(exc, UpstreamRateLimited) and exc.retry_after:
        delay = max(delay, exc.retry_after)
    update_memory.using(run_after=timezone.now() + timedelta(seconds=delay)).enqueue(conversation_id, attempt + 1)
    logger.warning(
        "memory update retrying conversation=%s attempt=%s in=%.1fs error=%s detail=%s",
        conversation_id,
        attempt,
        delay,
        exc,
        exc.detail,
    )
    return {"outcome": "retrying", "attempt": attempt, "retry_in_s": delay}
