"""rows.RowInsert writes what Model.objects.create would, value for value."""

import uuid
from datetime import timedelta

import pytest
from django.db import IntegrityError, connection
from django.forms.models import model_to_dict
from django.utils import timezone

from conversations.models import Turn
from conversations.storage.rows import RowInsert

EVERY_KIND_OF_VALUE = {
    "position": 1,
    "role": "assistant",
    "content": "Quotes \" and ' and emoji 🦜\nand a newline",
    "status": "interrupted",
    "finish_reason": "cancelled",
    "error_code": "",
    "model": "m-1",
    "ttft_ms": 52,
    "duration_ms": None,
    "tokens_estimated": True,
    "cancel_latency_ms": 0.375,
    "token_gaps": b"\x34\x00\x14\x00",
    "attempts": [{"model": "m-0", "code": "upstream_unavailable", "message": "refused"}],
    "reply_id": None,
}


def _insert(**values) -> None:
    with connection.cursor() as cursor:
        RowInsert(Turn)(cursor, **values)


def _row(pk) -> dict:
    turn = Turn.objects.get(pk=pk)
    row = model_to_dict(turn, exclude=["id", "conversation"])
    return row | {"token_gaps": bytes(turn.token_gaps), "created_at": turn.created_at, "updated_at": turn.updated_at}


def test_a_row_reads_back_as_the_orm_writes_it(conversation):
    made = Turn.objects.create(conversation=conversation, **EVERY_KIND_OF_VALUE)
    pk = uuid.uuid4()
    _insert(id=pk, conversation_id=conversation.pk, **(EVERY_KIND_OF_VALUE | {"position": 2}))
    ours, theirs = _row(pk), _row(made.pk)
    assert abs(ours.pop("created_at") - theirs.pop("created_at")) < timedelta(seconds=5)
    assert abs(ours.pop("updated_at") - theirs.pop("updated_at")) < timedelta(seconds=5)
    assert ours == theirs | {"position": 2}


def test_defaults_and_timestamps_are_filled_in(conversation):
    before = timezone.now()
    _insert(id=(pk := uuid.uuid4()), conversation_id=conversation.pk, position=0, role="user", content="hi")
    turn = Turn.objects.get(pk=pk)
    assert (turn.status, turn.attempts, bytes(turn.token_gaps), turn.tokens_in) == ("complete", [], b"", None)
    assert before <= turn.created_at == turn.updated_at <= timezone.now()


def test_constraints_still_hold(conversation):
    _insert(id=uuid.uuid4(), conversation_id=conversation.pk, position=0, role="user")
    with pytest.raises(IntegrityError):
        _insert(id=uuid.uuid4(), conversation_id=conversation.pk, position=0, role="user")


def test_a_misspelt_column_is_refused(conversation):
    with pytest.raises(TypeError, match="tokens_inn"):
        _insert(id=uuid.uuid4(), conversation_id=conversation.pk, position=0, tokens_inn=3)
