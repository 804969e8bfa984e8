"""Conversations erased with everything that belongs to them, a batch at a
time: each batch one short transaction, so no lock is held for long.

What goes with a conversation, by cascade: its turns and their feedback, its
memory, its files' rows (their bytes after the commit, through the worker:
files/cleanup.py), its queued messages, share links, tool runs and steps.
The ledger's rows (Spend) stay, for the budgets read them, but lose their
link to the content: their conversation and turn ids are emptied. The Redis
keys of its answers go after the commit (journals.py).
"""

import uuid
from collections import Counter
from collections.abc import Sequence

from django.db import transaction
from django.db.models import QuerySet

from ..models import Conversation, QueuedMessage, Spend, Turn
from . import journals

# Small enough that a batch of long conversations (its turns are read to
# cascade their feedback) stays one short transaction.
BATCH = 20

# What Django's delete() names each model by, and what the counts call it.
COUNTED = {
    "conversations.Conversation": "conversations",
    "conversations.Turn": "turns",
    "conversations.Feedback": "feedback",
    "conversations.ConversationMemory": "memories",
    "conversations.StoredFile": "files",
    "conversations.QueuedMessage": "queued_messages",
    "conversations.SharedLink": "shared_links",
    "conversations.ToolRun": "tool_runs",
    "conversations.AnswerStep": "answer_steps",
    "conversations.ApiKey": "api_keys",
}


def counted(deleted: dict[str, int]) -> Counter:
    return Counter({COUNTED[label]: n for label, n in deleted.items() if label in COUNTED and n})


def erase_conversations(due: QuerySet[Conversation]) -> Counter:
    """Every conversation of `due` erased, BATCH at a time; the counts."""
    counts: Counter = Counter()
    while erased := erase_next_batch(due):
        counts += erased
    return counts


def erase_next_batch(due: QuerySet[Conversation]) -> Counter:
    """Up to BATCH conversations of `due` erased in one transaction; the
    counts, empty once none is left. The batch is read again under lock with
    the same filter, so a conversation touched meanwhile (a new message) is
    left alone. One call is one short database call: async callers make one
    run_db call each, within CHATSTREAM_DB_TIMEOUT_SECONDS."""
    batch = list(due.order_by("pk").values_list("pk", flat=True)[:BATCH])
    if not batch:
        return Counter()
    erased = erase_batch(due, batch)
    # Every one of them touched meanwhile: it no longer matches, and the
    # next batch is read afresh (an empty count would end the loop early).
    return erased if erased["conversations"] else erase_next_batch(due)


def erase_batch(due: QuerySet[Conversation], ids: Sequence[uuid.UUID]) -> Counter:
    with transaction.atomic():
        # Locked first, as services.delete_conversation does: an answer saved
        # meanwhile is either committed before its turns are collected, or
        # finds its conversation gone.
        locked = list(due.filter(pk__in=ids).select_for_update().values_list("pk", flat=True))
        turn_ids = list(Turn.objects.filter(conversation__in=locked).values_list("pk", flat=True))
        turn_ids += QueuedMessage.objects.filter(conversation__in=locked).values_list("answer_id", flat=True)
        _, deleted = Conversation.objects.filter(pk__in=locked).delete()
        unlinked = unlink_spend(Spend.objects.filter(conversation_id__in=locked))
        transaction.on_commit(lambda: journals.forget_answers(turn_ids, locked))
    counts = counted(deleted)
    counts["spend_rows_unlinked"] += unlinked
    return counts


def unlink_spend(rows: QuerySet[Spend]) -> int:
    """The ledger's rows kept, their link to the content emptied."""
    return rows.exclude(conversation_id=None, turn_id=None).update(conversation_id=None, turn_id=None)
