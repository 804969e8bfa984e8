"""Writes: the user's message before the model, the answer once at the end."""

import uuid
from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.db import IntegrityError
from django.utils import timezone

from conversations import recovery, services
from conversations.access import api_keys
from conversations.models import ApiKey, Conversation, Turn

from .helpers import answer, start_turn


def test_start_turn_saves_the_message_and_reserves_the_answer(owner):
    conversation = services.create_conversation(owner=owner)
    first = start_turn(owner=owner, conversation_id=conversation.pk, content="one\ntwo")
    second = start_turn(owner=owner, conversation_id=conversation.pk, content="three")
    # The second message never takes the first answer's place, unsaved as it is.
    assert (first.answer_position, second.answer_position) == (1, 3)
    assert list(Turn.objects.values_list("position", "content")) == [(0, "one\ntwo"), (2, "three")]
    assert Conversation.objects.get(pk=conversation.pk).title == "one two"
    assert second.messages[1:] == [{"role": "user", "content": "one\ntwo"}, {"role": "user", "content": "three"}]


def test_foreign_conversation_is_not_found(owner):
    stranger = get_user_model().objects.create_user("grace")
    conversation = services.create_conversation(owner=stranger)
    with pytest.raises(Conversation.DoesNotExist):
        start_turn(owner=owner, conversation_id=conversation.pk, content="hi")
    assert not Turn.objects.exists()


@pytest.mark.parametrize(
    ("finish_reason", "status"),
    [("stop", "complete"), ("length", "interrupted"), ("client_disconnected", "interrupted"), ("error", "failed")],
)
def test_record_answer_sets_status(owner, finish_reason, status):
    prepared = start_turn(owner=owner, conversation_id=services.create_conversation(owner=owner).pk, content="q")
    assert services.record_answer(prepared=prepared, answer=answer(finish_reason=finish_reason))
    turn = Turn.objects.get(pk=prepared.answer_turn_id)
    assert (turn.position, turn.role, turn.status, turn.finish_reason) == (1, "assistant", status, finish_reason)


def test_an_answer_is_written_once(owner):
    prepared = start_turn(owner=owner, conversation_id=services.create_conversation(owner=owner).pk, content="q")
    services.record_answer(prepared=prepared, answer=answer())
    with pytest.raises(IntegrityError):
        services.record_answer(prepared=prepared, answer=answer())


def test_answer_to_a_deleted_conversation_is_dropped(owner):
    conversation = services.create_conversation(owner=owner)
    prepared = start_turn(owner=owner, conversation_id=conversation.pk, content="q")
    conversation.delete()
    assert services.record_answer(prepared=prepared, answer=answer()) is None


def test_create_api_key_command_prints_a_working_key(owner, capsys):
    call_command("create_api_key", owner.username, "--name", "cli")
    key = capsys.readouterr().out.strip()
    assert api_keys.user_for_key(key) == owner
    assert api_keys.user_for_key(key + "x") is None
    assert api_keys.user_for_key("cs_" + uuid.uuid4().hex) is None


def test_api_key_lookup_checks_the_user_and_records_use_sparingly(owner):
    key, raw = api_keys.create_api_key(user=owner)
    assert api_keys.user_for_key(raw) == owner
    first_use = ApiKey.objects.get(pk=key.pk).last_used_at
    assert first_use is not None
    api_keys.user_for_key(raw)  # within a minute: no write
    assert ApiKey.objects.get(pk=key.pk).last_used_at == first_use
    ApiKey.objects.filter(pk=key.pk).update(last_used_at=first_use - timedelta(minutes=2))
    api_keys.user_for_key(raw)
    assert ApiKey.objects.get(pk=key.pk).last_used_at > first_use

    owner.is_active = False
    owner.save()
    assert api_keys.user_for_key(raw) is None
    owner.is_active = True
    owner.save()
    api_keys.revoke(key=key)
    assert api_keys.user_for_key(raw) is None


def test_prompt_history_holds_both_roles_in_order_without_empty_answers(owner):
    conversation = services.create_conversation(owner=owner)
    first = start_turn(owner=owner, conversation_id=conversation.pk, content="one")
    services.record_answer(prepared=first, answer=answer(content="reply"))
    second = start_turn(owner=owner, conversation_id=conversation.pk, content="two")
    services.record_answer(prepared=second, answer=answer(content=""))  # cancelled before any token
    third = start_turn(owner=owner, conversation_id=conversation.pk, content="three")
    assert third.messages[0]["role"] == "system"
    assert third.messages[1:] == [
        {"role": "user", "content": "one"},
        {"role": "assistant", "content": "reply"},
        {"role": "user", "content": "two"},
        {"role": "user", "content": "three"},
    ]
    assert third.answer_position == 5


def test_answers_lost_with_their_process_are_saved_at_the_next_start(db):
    """Without Redis: a question whose answer's row never came (the process
    was killed while it streamed) gets it, failed as process_lost, once;
    questions after this process started are left alone (it may be answering)."""
    owner = get_user_model().objects.create_user("lou")
    conversation = services.create_conversation(owner=owner)
    lost = start_turn(owner=owner, conversation_id=conversation.pk, content="Killed mid-answer")
    answered = start_turn(owner=owner, conversation_id=conversation.pk, content="Answered")
    services.record_answer(prepared=answered, answer=answer(content="fine", finish_reason="stop"))
    started = timezone.now()
    streaming = start_turn(owner=owner, conversation_id=conversation.pk, content="Being answered now")

    assert recovery.save_lost_answers(before=started) == 1
    saved = Turn.objects.get(pk=lost.answer_turn_id)
    assert (saved.finish_reason, saved.error_code, saved.status) == ("error", "process_lost", "failed")
    assert saved.parent == lost.user_turn_id and saved.content == ""
    assert not Turn.objects.filter(pk=streaming.answer_turn_id).exists()
    assert recovery.save_lost_answers(before=started) == 0  # once
    assert len(set(Turn.objects.values_list("position", flat=True))) == Turn.objects.count()
