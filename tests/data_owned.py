"""What the tests of users' data share: a conversation given a file on disk,
feedback and a Redis journal, and a look at every table a user's data
lives in."""

import redis
from django.contrib.auth import get_user_model
from django.core.files.base import ContentFile

from conversations import services
from conversations.files.storage import file_storage, new_path
from conversations.live import keys
from conversations.models import (
    AnswerStep,
    ApiKey,
    Conversation,
    ConversationMemory,
    Feedback,
    QueuedMessage,
    SharedLink,
    Spend,
    StoredFile,
    ToolRun,
    Turn,
)

from .helpers import exchange, redis_url


def conversation_with_everything(owner, *, rating: str = "up", queued: bool = True) -> Conversation:
    """A conversation with an exchange, its answer rated, a memory, a file
    whose bytes are in storage, a queued message (unless not `queued`: a
    server would start it, nothing being answered), a share link, a tool
    run, a step, and its answer's journal in Redis (redis_url(1))."""
    conversation = services.create_conversation(owner=owner)
    prepared = exchange(owner, conversation, "Question?", "Answer.")
    answer = Turn.objects.get(pk=prepared.answer_turn_id)
    Feedback.objects.create(turn=answer, rating=rating)
    ConversationMemory.objects.create(conversation=conversation, summary="They asked.")
    stored_file(owner, conversation, b"file bytes " + str(conversation.pk).encode())
    if queued:
        QueuedMessage.objects.create(conversation=conversation, content="Later?")
    SharedLink.objects.create(conversation=conversation, token=f"t-{conversation.pk}", turns=[])
    ToolRun.objects.create(turn_id=answer.pk, conversation=conversation, call_id="c1", name="add")
    AnswerStep.objects.create(turn_id=answer.pk, conversation=conversation, n=1)
    client = redis.Redis.from_url(redis_url(1))
    client.xadd(keys.journal_key(str(answer.pk)), {"k": "text", "d": "Answer."})
    client.close()
    return conversation


def stored_file(owner, conversation, content: bytes, name: str = "notes.txt") -> StoredFile:
    path = file_storage().save(new_path(owner.pk, ".txt"), ContentFile(content))
    return StoredFile.objects.create(
        owner=owner,
        conversation=conversation,
        name=name,
        kind="text",
        content_type="text/plain",
        size=len(content),
        path=path,
    )


def rows_of(user) -> dict[str, int]:
    """Every row of the user's, table by table (the ledger's: those still
    linked to a conversation)."""
    owned = Conversation.objects.filter(owner_id=user.pk)
    return {
        "conversations": owned.count(),
        "turns": Turn.objects.filter(conversation__owner_id=user.pk).count(),
        "feedback": Feedback.objects.filter(turn__conversation__owner_id=user.pk).count(),
        "memories": ConversationMemory.objects.filter(conversation__owner_id=user.pk).count(),
        "files": StoredFile.objects.filter(owner_id=user.pk).count(),
        "queued": QueuedMessage.objects.filter(conversation__owner_id=user.pk).count(),
        "links": SharedLink.objects.filter(conversation__owner_id=user.pk).count(),
        "tool_runs": ToolRun.objects.filter(conversation__owner_id=user.pk).count(),
        "steps": AnswerStep.objects.filter(conversation__owner_id=user.pk).count(),
        "api_keys": ApiKey.objects.filter(user_id=user.pk).count(),
        "linked_spend": Spend.objects.filter(user_id=user.pk).exclude(conversation_id=None).count(),
    }


def nothing(rows: dict[str, int]) -> bool:
    return not any(rows.values())


def redis_keys(redis_db: int = 1) -> list[str]:
    client = redis.Redis.from_url(redis_url(redis_db), decode_responses=True)
    try:
        return list(client.scan_iter("chatstream:*"))
    finally:
        client.close()


def flush_redis(redis_db: int = 1) -> None:
    client = redis.Redis.from_url(redis_url(1))
    client.flushdb()
    client.close()


def a_user(name: str):
    return get_user_model().objects.create_user(name)
