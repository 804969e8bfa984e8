"""`DELETE api/me/data` and the admin's action on users: a user's answers
still streaming stopped first, then nothing of theirs left in any table, the
storage or Redis, another user's data untouched, and an audit row for each."""

from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.urls import reverse
from django.utils import timezone

from conversations.data import erasing
from conversations.models import Conversation, DataEvent, QueuedMessage, Spend, StoredFile, Turn
from conversations.spend import budgets
from conversations.stream import registry
from harness.fake_upstream import Behaviour

from .data_owned import conversation_with_everything, flush_redis, nothing, redis_keys, rows_of
from .files import error_code, on_disk, upload
from .helpers import redis_url, send, sse_events, start_event_and_a_delta, stream, wait_for
from .test_memory import run_worker


@pytest.fixture
def on_redis(settings, live):
    """The in-process server sharing its answers through Redis (a database of its own)."""
    flush_redis()
    settings.REDIS_URL = redis_url(1)
    yield
    flush_redis()


def erase(api_user, **body):
    return api_user.client.request("DELETE", "/api/me/data", json=body)


def test_erase_stops_a_streaming_answer_then_leaves_nothing(alice, bob, upstream, stored_in, on_redis):
    upstream.behaviour = Behaviour(pace=0.05, tokens=400)  # slow: still streaming when the erase comes
    conversation_with_everything(bob.user, queued=False)
    run_worker()  # bob's memory made now (its model call is in the ledger), not during the check
    bobs_before, bobs_files = rows_of(bob.user), set(on_disk(stored_in))
    conversation_with_everything(alice.user, queued=False)
    upload(alice, "notes.txt", b"an upload no message named\n")
    conversation_id = alice.new_conversation()
    with stream(alice, conversation_id, "Tell me a long story") as response:
        events = sse_events(response)
        turn_id = start_event_and_a_delta(events)
        alice_ids = {str(pk) for pk in Conversation.objects.filter(owner=alice.user).values_list("pk", flat=True)}
        alice_ids |= {
            str(pk) for pk in Turn.objects.filter(conversation__owner=alice.user).values_list("pk", flat=True)
        }
        assert any(turn_id in key for key in redis_keys())  # its journal, as it streams

        erased = erase(alice, confirm="alice")

        assert erased.status_code == 200, erased.text
        final = [event for event in events if event["event"] in ("done", "error")]
    assert final and final[-1]["data"]["finish_reason"] == "cancelled"
    counts = erased.json()["erased"]
    assert counts["answers_stopped"] == 1 and counts["conversations"] == 2 and counts["account"] is False
    assert counts["turns"] == 4 and counts["files"] == 2 and counts["api_keys"] == 1 and counts["feedback"] == 1

    assert nothing(rows_of(alice.user))  # table by table
    assert Spend.objects.filter(user=alice.user).count() == 2  # the ledger kept for the budgets, unlinked
    run_worker()  # the files' bytes go after the commit, through the worker
    assert set(on_disk(stored_in)) == bobs_files
    assert not any(any(pk in key for pk in alice_ids | {turn_id}) for key in redis_keys())
    assert rows_of(bob.user) == bobs_before and len(redis_keys()) == 1  # bob's journal
    assert alice.client.get("/api/conversations").status_code == 401  # its key went too

    event = DataEvent.objects.get(action="erase")
    assert event.actor_id == event.subject_id == alice.user.pk and event.counts["conversations"] == 2
    assert "story" not in str(event.counts)


def test_a_queued_message_is_not_answered_after_the_erase(alice, upstream):
    """Stopping the answer takes up the message queued behind it: erase
    stops that one too, or its claim finds the conversation gone."""
    upstream.behaviour = Behaviour(pace=0.05, tokens=400)
    conversation_id = alice.new_conversation()
    with stream(alice, conversation_id, "First") as response:
        events = sse_events(response)
        start_event_and_a_delta(events)
        queued = send(alice, conversation_id, "Second", while_answering="queue")
        assert queued.status_code == 202, queued.text
        erased = erase(alice, confirm="alice")
        assert erased.status_code == 200, erased.text
        list(events)
    wait_for(lambda: not registry.all_answers(), 10, "every answer of alice's stopped")
    assert nothing(rows_of(alice.user)) and not QueuedMessage.objects.exists()
    assert not Spend.objects.exclude(conversation_id=None).exists()


def test_erase_goes_batch_by_batch(alice, bob, upstream, monkeypatch):
    monkeypatch.setattr(erasing, "BATCH", 2)
    batches = []
    real_batch = erasing.erase_batch
    monkeypatch.setattr(erasing, "erase_batch", lambda due, ids: batches.append(len(ids)) or real_batch(due, ids))
    for _ in range(5):
        conversation_with_everything(alice.user, queued=False)
    bobs = conversation_with_everything(bob.user, queued=False)
    erased = erase(alice, confirm="alice")
    assert erased.status_code == 200 and erased.json()["erased"]["conversations"] == 5
    assert batches == [2, 2, 1] and list(Conversation.objects.values_list("pk", flat=True)) == [bobs.pk]
    flush_redis()


def test_erase_needs_the_username_to_confirm(alice, upstream):
    conversation_id = alice.new_conversation()
    for body in ({}, {"confirm": "bob"}, {"confirm": "ALICE"}, {"confirm": ["alice"]}):
        assert error_code(erase(alice, **body)) == "confirmation_required"
    assert error_code(erase(alice, confirm="alice", account="yes")) == "invalid_account"
    assert alice.client.get(f"/api/conversations/{conversation_id}").status_code == 200
    assert not DataEvent.objects.exists()


def test_erase_with_the_account_deletes_it_and_keeps_its_id_in_the_audit(alice, upstream):
    user_id = alice.user.pk
    alice.new_conversation()
    erased = erase(alice, confirm="alice", account=True)
    assert erased.status_code == 200 and erased.json()["erased"]["account"] is True
    assert not get_user_model().objects.filter(pk=user_id).exists() and not Conversation.objects.exists()
    event = DataEvent.objects.get(action="erase")
    assert event.subject_id is None and event.actor_id is None and event.subject_ref == str(user_id)


def test_staff_erase_a_users_data_from_the_admin(staff_client, stored_in):
    User = get_user_model()
    carol, dave = User.objects.create_user("carol"), User.objects.create_user("dave")
    conversation_with_everything(carol), conversation_with_everything(dave)
    daves = rows_of(dave)
    since = timezone.now() - timedelta(days=1)
    carols_spend = budgets.spent(user_id=carol.pk, api_key_id=None, since=since)
    assert carols_spend[1] > 0
    changelist = reverse(f"admin:{User._meta.app_label}_{User._meta.model_name}_changelist")
    chosen = {"action": "erase_user_data", "_selected_action": [carol.pk]}
    asked = staff_client.post(changelist, chosen)
    assert asked.status_code == 200 and b"Yes, erase their data" in asked.content
    assert rows_of(carol)["conversations"] == 1 and not DataEvent.objects.exists()  # nothing until confirmed
    page = staff_client.post(changelist, {**chosen, "post": "yes"}, follow=True)
    assert page.status_code == 200
    [message] = [str(message) for message in page.context["messages"]]
    assert message.startswith("carol: erased ") and "1 conversations, 1 feedback, 1 files" in message
    assert nothing(rows_of(carol)) and rows_of(dave) == daves and User.objects.filter(pk=carol.pk).exists()
    assert not StoredFile.objects.filter(owner=carol).exists()
    # The ledger still counts what carol spent: her budget is not reset by the erase.
    assert budgets.spent(user_id=carol.pk, api_key_id=None, since=since) == carols_spend
    event = DataEvent.objects.get(action="erase")
    assert event.actor.get_username() == "root" and event.subject == carol and event.counts["turns"] == 2
    flush_redis()


def test_staff_opening_a_conversation_is_recorded(staff_client):
    owner = get_user_model().objects.create_user("erin")
    conversation = conversation_with_everything(owner)
    page = staff_client.get(reverse("admin:conversations_conversation_change", args=[conversation.pk]))
    assert page.status_code == 200
    event = DataEvent.objects.get(action="admin_view_conversation")
    assert event.subject == owner and event.conversation_id == conversation.pk and event.counts == {}
    assert staff_client.get(reverse("admin:conversations_conversation_changelist")).status_code == 200
    assert DataEvent.objects.count() == 1  # the list is not a conversation opened
    answer = Turn.objects.get(conversation=conversation, role="assistant")
    for admin_page in ("admin:conversations_turn_change", "admin:conversations_reviewitem_change"):
        assert staff_client.get(reverse(admin_page, args=[answer.pk])).status_code == 200
    assert DataEvent.objects.filter(conversation_id=conversation.pk, subject=owner).count() == 3
    audit_page = staff_client.get(reverse("admin:conversations_dataevent_change", args=[event.pk]))
    assert audit_page.status_code == 200 and b'name="_save"' not in audit_page.content  # read only
    flush_redis()
