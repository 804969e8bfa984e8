"""Per-user limits: messages per minute and answers at once, refused with
429, Retry-After and the JSON error, before anything is saved."""

import pytest

from conversations.models import Turn
from harness.fake_upstream import Behaviour

from .helpers import post_and_read, send, stream, wait_for_answer


def assert_refused(response, code: str, max_retry_after: int) -> None:
    assert response.status_code == 429
    assert response.json()["error"]["code"] == code and response.json()["error"]["message"]
    assert 1 <= int(response.headers["Retry-After"]) <= max_retry_after


def test_messages_per_minute(alice, bob, upstream, settings):
    settings.CHATSTREAM_MESSAGES_PER_MINUTE = 3
    upstream.behaviour = Behaviour(tokens=2)
    conversation_id = alice.new_conversation()
    for _ in range(3):
        assert send(alice, conversation_id).status_code == 200
    refused = send(alice, conversation_id, "The fourth")
    assert_refused(refused, "too_many_messages", 60)
    assert not Turn.objects.filter(content="The fourth").exists()  # nothing saved, nothing half-done
    assert Turn.objects.filter(conversation_id=conversation_id).count() == 6
    post_and_read(bob)  # another user's budget is his own


def test_answers_at_once(alice, upstream, settings):
    settings.CHATSTREAM_MAX_CONCURRENT_STREAMS = 2
    upstream.behaviour = Behaviour(pace=0.02, tokens=300)
    conversations = [alice.new_conversation() for _ in range(3)]
    with stream(alice, conversations[0]) as first, stream(alice, conversations[1]) as second:
        for response in (first, second):
            assert response.status_code == 200
        assert_refused(send(alice, conversations[2]), "too_many_streams", 60)
    wait_for_answer(conversations[0])
    wait_for_answer(conversations[1])  # both ended (their clients left): their slots are free again
    upstream.behaviour = Behaviour(tokens=2)
    # A slot is given back as the answer's task ends, a moment after its row.
    assert any(send(alice, conversations[2]).status_code == 200 for _ in range(20))


@pytest.mark.parametrize("name", ["CHATSTREAM_MAX_CONCURRENT_STREAMS", "CHATSTREAM_MESSAGES_PER_MINUTE"])
def test_zero_turns_a_limit_off(alice, upstream, settings, name):
    setattr(settings, name, 0)
    upstream.behaviour = Behaviour(tokens=1)
    conversation_id = alice.new_conversation()
    assert all(send(alice, conversation_id).status_code == 200 for _ in range(25))
