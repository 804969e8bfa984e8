"""Retention: the worker deletes conversations not touched for
CHATSTREAM_RETENTION_DAYS with everything that belongs to them (rows,
files' bytes, Redis journals), in batches, keeping recent ones and those
under review; the admin and `chatstream_retention --dry-run` say what is due."""

from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import call_command
from django.urls import reverse
from django.utils import timezone
from django_tasks_db.models import DBTaskResult

from conversations.data import erasing, retention
from conversations.models import Conversation, DataEvent, Spend, Turn

from .data_owned import a_user, conversation_with_everything, flush_redis, nothing, redis_keys, rows_of
from .files import on_disk
from .helpers import redis_url
from .test_memory import run_worker


@pytest.fixture
def kept_for_30_days(settings, stored_in):
    settings.CHATSTREAM_RETENTION_DAYS = 30
    settings.REDIS_URL = redis_url(1)
    flush_redis()
    yield stored_in
    flush_redis()


def age(conversation: Conversation, days: int) -> None:
    Conversation.objects.filter(pk=conversation.pk).update(updated_at=timezone.now() - timedelta(days=days))


def test_the_sweep_deletes_exactly_what_is_due(transactional_db, kept_for_30_days):
    old_owner, other = a_user("old"), a_user("other")
    old = conversation_with_everything(old_owner)
    reviewed = conversation_with_everything(other, rating="down")  # a thumbs down nobody has looked at yet
    recent = conversation_with_everything(other)
    age(old, 31), age(reviewed, 40), age(recent, 29)
    old_answer = Turn.objects.get(conversation=old, role="assistant").pk
    assert len(on_disk(kept_for_30_days)) == 3 and len(redis_keys()) == 3

    retention.sweep.enqueue()
    run_worker()  # the sweep, then the deletion of the files' bytes it queued

    assert nothing(rows_of(old_owner)) and rows_of(other)["conversations"] == 2
    assert set(Conversation.objects.values_list("pk", flat=True)) == {reviewed.pk, recent.pk}
    assert len(on_disk(kept_for_30_days)) == 2  # the old one's bytes gone, the others' there
    assert f"chatstream:journal:{old_answer}" not in redis_keys() and len(redis_keys()) == 2
    assert Spend.objects.filter(user=old_owner, conversation_id=None, turn_id=None).count() == 1  # the ledger kept
    event = DataEvent.objects.get(action="retention")
    assert event.actor is None and event.counts["conversations"] == 1 and event.counts["turns"] == 2
    assert event.counts["files"] == 1 and event.counts["shared_links"] == 1 and event.counts["queued_messages"] == 1
    # The sweep queued its next run, one hour on.
    [next_run] = DBTaskResult.objects.filter(status="READY", task_path=retention.sweep.module_path)
    assert timedelta(minutes=59) < next_run.run_after - timezone.now() <= timedelta(hours=1)


def test_a_reviewed_conversation_goes_once_marked_fine_or_when_not_kept(db, settings, kept_for_30_days):
    owner = a_user("owner")
    reviewed = conversation_with_everything(owner, rating="down")
    age(reviewed, 40)
    assert retention.preview()["conversations"] == 0
    Turn.objects.filter(conversation=reviewed, role="assistant").update(review_status="fine")
    assert retention.preview()["conversations"] == 1
    Turn.objects.filter(conversation=reviewed, role="assistant").update(review_status="escalated")
    assert retention.preview()["conversations"] == 0
    settings.CHATSTREAM_RETENTION_KEEP_REVIEWED = False
    assert retention.preview()["conversations"] == 1


def test_the_sweep_goes_in_batches_and_spares_one_touched_meanwhile(db, settings, kept_for_30_days, monkeypatch):
    owner = a_user("owner")
    conversations = [conversation_with_everything(owner) for _ in range(5)]
    for conversation in conversations:
        age(conversation, 31)
    batches: list[int] = []
    touched = []
    real_batch = erasing.erase_batch

    def batch_seen(due, ids):
        batches.append(len(ids))
        if len(batches) == 1:  # a message arrives in one of the first batch, read but not yet locked
            touched.append(ids[-1])
            Conversation.objects.filter(pk=ids[-1]).update(updated_at=timezone.now())
        return real_batch(due, ids)

    monkeypatch.setattr(erasing, "BATCH", 2)
    monkeypatch.setattr(erasing, "erase_batch", batch_seen)
    counts = retention.run_sweep()
    assert batches == [2, 2, 1] and counts["conversations"] == 4
    assert list(Conversation.objects.values_list("pk", flat=True)) == touched


def test_retention_off_deletes_nothing_and_queues_nothing(db, settings, kept_for_30_days):
    settings.CHATSTREAM_RETENTION_DAYS = 0
    conversation = conversation_with_everything(a_user("owner"))
    age(conversation, 3650)
    retention.keep_scheduled()
    assert not DBTaskResult.objects.exists() and retention.run_sweep() == {}
    assert Conversation.objects.count() == 1


def test_a_worker_start_queues_one_sweep(db, kept_for_30_days):
    retention.keep_scheduled()
    retention.keep_scheduled()  # a second worker starting
    assert DBTaskResult.objects.filter(task_path=retention.sweep.module_path).count() == 1


def test_the_admin_and_the_command_say_what_is_due(staff_client, kept_for_30_days):
    owner = a_user("owner")
    old, recent = conversation_with_everything(owner), conversation_with_everything(owner)
    age(old, 31)
    events = staff_client.get(reverse("admin:conversations_dataevent_changelist"))
    assert reverse("admin:conversations_dataevent_retention").encode() in events.content
    page = staff_client.get(reverse("admin:conversations_dataevent_retention"))
    assert page.status_code == 200
    assert page.context["conversations"] == 1 and page.context["turns"] == 2 and page.context["files"] == 1
    assert [shown.pk for shown in page.context["oldest"]] == [old.pk]
    out = StringIO()
    call_command("chatstream_retention", "--dry-run", stdout=out)
    assert out.getvalue().startswith("1 conversations, 2 turns, 1 files due") and str(old.pk) in out.getvalue()
    assert Conversation.objects.count() == 2  # a dry run
    call_command("chatstream_retention", stdout=StringIO())
    assert list(Conversation.objects.values_list("pk", flat=True)) == [recent.pk]
