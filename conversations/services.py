"""Writes. Each function is one transaction, keyword-only and typed, and is
called from async code through `db.run_db` (Django's ORM is sync, and a
transaction must stay on one thread)."""

import logging
import uuid
from dataclasses import dataclass

from django.contrib.auth.models import User
from django.db import transaction
from django.utils import timezone

from . import selectors
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


@transaction.atomic
def start_turn(*, owner: User, conversation_id: uuid.UUID, content: str) -> PreparedTurn:
    """Save the user's message and reserve the answer's position, before the
    model is called. Raises Conversation.DoesNotExist for a foreign id."""
    conversation = selectors.owned_conversations(owner=owner).select_for_update().get(pk=conversation_id)
    position = conversation.next_position
    conversation.next_position = position + 2
    update_fields = ["next_position", "updated_at"]
    if not conversation.title:
        conversation.title = _title_from(content)
        update_fields.append("title")
    conversation.save(update_fields=update_fields)
    user_turn = Turn.objects.create(conversation=conversation, position=position, role=Turn.Role.USER, content=content)
    return PreparedTurn(
        conversation_id=conversation.pk,
        user_turn_id=user_turn.pk,
        answer_turn_id=uuid.uuid4(),
        answer_position=position + 1,
        messages=selectors.prompt_messages(conversation=conversation),
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
    if not Conversation.objects.filter(pk=prepared.conversation_id).update(updated_at=timezone.now()):
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
