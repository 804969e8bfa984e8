"""Conversations not touched for CHATSTREAM_RETENTION_DAYS deleted by the
worker, with everything that belongs to them (erasing.py), in batches.

How it recurs: `sweep` is a task of the tasks API, like the files' TTL
sweep (files/cleanup.py), that queues its own next run
CHATSTREAM_RETENTION_SWEEP_HOURS later, unless one is queued already; a
`db_worker` starting queues the first (`keep_scheduled`, called from the
worker's start in apps.py), so a chain broken by a lost job is mended at
the next start. Two workers may each queue one at the same instant: each
run queues a next one only if none is waiting, so the chains merge again.
"""

import logging
import threading
from datetime import timedelta

from django.db import DatabaseError, close_old_connections
from django.db.models import Exists, OuterRef, Q, QuerySet
from django.utils import timezone
from django_tasks_db.compat import TaskResultStatus
from django_tasks_db.models import DBTaskResult

from ..conf import conf
from ..models import Conversation, Feedback, Turn
from . import audit, erasing

try:
    from django.tasks import task  # Django 6.0 and later
except ImportError:
    from django_tasks import task  # type: ignore[no-redef,unused-ignore]  # the backport, on Django 5.2

logger = logging.getLogger(__name__)

PREVIEW_ROWS = 100


def due() -> QuerySet[Conversation]:
    """The conversations the next sweep would delete (none when retention is off)."""
    days = conf.CHATSTREAM_RETENTION_DAYS
    if not days:
        return Conversation.objects.none()
    old = Conversation.objects.filter(updated_at__lt=timezone.now() - timedelta(days=days))
    if conf.CHATSTREAM_RETENTION_KEEP_REVIEWED:
        old = old.exclude(Exists(under_review()))
    return old


def under_review() -> QuerySet[Turn]:
    """A conversation's answers staff have still to look at, or are working
    on: a thumbs down not yet marked fine, needs work, escalated."""
    flagged = Q(review_status__in=[Turn.Review.NEEDS_WORK, Turn.Review.ESCALATED])
    thumbs_down = Q(review_status=Turn.Review.OPEN) & Exists(
        Feedback.objects.filter(turn=OuterRef("pk"), rating=Feedback.Rating.DOWN)
    )
    return Turn.objects.filter(flagged | thumbs_down, conversation=OuterRef("pk"))


def preview() -> dict:
    """What the next sweep would delete: counts, and the oldest conversations."""
    conversations = due()
    return {
        "days": conf.CHATSTREAM_RETENTION_DAYS,
        "keep_reviewed": conf.CHATSTREAM_RETENTION_KEEP_REVIEWED,
        "conversations": conversations.count(),
        "turns": Turn.objects.filter(conversation__in=conversations).count(),
        "files": conversations.filter(files__isnull=False).values("files").count(),
        "oldest": list(conversations.select_related("owner").order_by("updated_at")[:PREVIEW_ROWS]),
    }


def run_sweep() -> dict[str, int]:
    """Delete what is due, now; the counts (recorded in the audit if any)."""
    counts = dict(erasing.erase_conversations(due()))
    if counts:
        audit.record(audit.Action.RETENTION, actor=None, subject=None, counts=counts)
        logger.info("retention: deleted %s", counts)
    return counts


@task()
def sweep() -> dict[str, int]:
    counts = run_sweep()
    queue_next()
    return counts


def queue_next() -> None:
    if conf.CHATSTREAM_RETENTION_DAYS and not _waiting():
        sweep.using(run_after=timezone.now() + timedelta(hours=conf.CHATSTREAM_RETENTION_SWEEP_HOURS)).enqueue()


def keep_scheduled() -> None:
    """A sweep queued now, unless one is waiting (a worker's start)."""
    try:
        if conf.CHATSTREAM_RETENTION_DAYS and not _waiting():
            sweep.enqueue()
    except DatabaseError:  # the database away at the start: the next start tries again
        logger.exception("retention: the sweep could not be queued")


def keep_scheduled_soon() -> None:
    """keep_scheduled on a thread of its own: the worker's start is in
    AppConfig.ready, where Django warns against using the database."""

    def schedule() -> None:
        try:
            keep_scheduled()
        finally:
            close_old_connections()  # the thread's own connection

    threading.Thread(target=schedule, name="retention-schedule", daemon=True).start()


def _waiting() -> bool:
    """A sweep queued and not started, whenever it is due."""
    return DBTaskResult.objects.filter(status=TaskResultStatus.READY, task_path=sweep.module_path).exists()
