"""The upstream API key stays on the server: never in a response, a saved
turn or a log line, even when the model server repeats it in an error."""

import logging

from conversations.models import Turn
from harness.fake_upstream import Behaviour

from .helpers import post_and_read

UPSTREAM_KEY = "sk-test-very-secret-upstream-key-0123456789"


def test_the_upstream_key_never_leaves_the_server(alice, upstream, settings, caplog):
    settings.LLM_API_KEY = UPSTREAM_KEY
    upstream.behaviour = Behaviour(status=401, echo_authorization=True)
    caplog.set_level(logging.DEBUG)
    conversation_id, events, response = post_and_read(alice)

    assert upstream.calls[0].body and events[-1]["event"] == "error"  # the server did see the key
    assert "[API key]" in events[-1]["data"]["message"]
    detail = alice.client.get(f"/api/conversations/{conversation_id}")
    page = alice.client.get("/")
    for text in (str(events), detail.text, page.text, str(dict(response.headers)), caplog.text):
        assert UPSTREAM_KEY not in text
    assert not Turn.objects.filter(error_detail__contains=UPSTREAM_KEY).exists()
