"""What a hostile or careless client, or a failing server part, meets: every
error the JSON shape and logged, nothing cached, standard SSE clients told
when to stop. Through a real ASGI server."""

import logging

import httpx
import pytest
from django.contrib.auth import get_user_model
from django.db import OperationalError

from conversations import selectors, throttle
from harness.fake_upstream import Behaviour

from .helpers import post_and_read, read_events, text_of


def raw_client(api_user) -> httpx.Client:
    """A client without the API-description check: 5xx are not described."""
    return httpx.Client(base_url=str(api_user.client.base_url), headers=dict(api_user.client.headers), timeout=30)


def test_a_server_error_is_json_logged_with_its_trace_id(alice, monkeypatch, caplog):
    def broken(**kwargs):
        raise RuntimeError("a bug in a selector")

    monkeypatch.setattr(selectors, "owned_conversations", broken)
    with raw_client(alice) as client, caplog.at_level(logging.ERROR, logger="conversations"):
        response = client.get("/api/conversations", headers={"X-Request-ID": "trace-500-test"})
    assert response.status_code == 500 and response.headers["content-type"] == "application/json"
    error = response.json()["error"]
    assert error["code"] == "internal_error" and error["trace_id"] == "trace-500-test"
    assert response.headers["X-Request-ID"] == "trace-500-test"
    assert "a bug in a selector" not in response.text  # the log has it, not the client
    logged = [record for record in caplog.records if "trace-500-test" in record.getMessage()]
    assert logged and logged[0].exc_info is not None and "a bug in a selector" in str(logged[0].exc_info[1])


def test_a_database_that_is_down_is_a_503_at_once(alice, monkeypatch):
    def down(**kwargs):
        raise OperationalError("connection refused")

    monkeypatch.setattr(selectors, "owned_conversations", down)
    with raw_client(alice) as client:
        response = client.get("/api/conversations")
    assert response.status_code == 503 and response.json()["error"]["code"] == "database_unavailable"
    assert response.headers["Retry-After"] == "5"


def test_api_json_is_never_cached_and_streams_say_how(alice, upstream):
    upstream.behaviour = Behaviour(tokens=2)
    conversation_id, _, stream = post_and_read(alice)
    assert stream.headers["Cache-Control"] == "no-cache, no-transform"
    for response in (
        alice.client.get("/api/conversations"),
        alice.client.get(f"/api/conversations/{conversation_id}"),
        alice.client.get("/api/conversations/not-an-id"),
        alice.client.get("/api/nowhere"),
        httpx.get(f"{alice.client.base_url}/api/conversations"),  # 401
    ):
        assert response.headers["Cache-Control"] == "no-store", response.request.url


def test_an_eventsource_reconnecting_after_the_end_is_told_to_stop(alice, upstream):
    upstream.behaviour = Behaviour(tokens=5)
    conversation_id, events, response = post_and_read(alice)
    assert response.text.startswith(": stream open\nretry: 3000\n\n")
    turn_id, end = events[0]["data"]["turn_id"], events[-1]["id"]

    # What an EventSource does when the stream closes: reconnect with the last id.
    again = alice.client.get(f"/api/turns/{turn_id}/events", headers={"Last-Event-ID": end})
    assert again.status_code == 204 and again.content == b""
    # In the middle, it gets the rest; an explicit ?after= at the end still replays the final event.
    middle = alice.client.get(f"/api/turns/{turn_id}/events", headers={"Last-Event-ID": "6"})
    assert text_of(read_events(middle)) == "t2 t3 t4 "
    replay = read_events(alice.client.get(f"/api/turns/{turn_id}/events", params={"after": end}))
    assert [event["event"] for event in replay] == ["done"]


@pytest.fixture
def throttled(settings):
    settings.CHATSTREAM_AUTH_FAILURES = 3
    throttle.throttle.cache_clear()  # a fresh count for this test
    yield
    throttle.throttle.cache_clear()


def test_wrong_api_keys_are_throttled_per_address(alice, throttled):
    with raw_client(alice) as client:
        statuses = [
            client.get("/api/conversations", headers={"Authorization": f"Bearer cs_guess{i}_x"}).status_code
            for i in range(4)
        ]
        assert statuses == [401, 401, 401, 429]
        refused = client.get("/api/conversations")  # alice's own good key, from the same address
    assert refused.status_code == 429 and refused.json()["error"]["code"] == "too_many_failures"
    assert 0 < int(refused.headers["Retry-After"]) <= 900


def test_wrong_passwords_are_throttled_per_account(live, throttled):
    get_user_model().objects.create_user("vic", password="the-right-password")
    with httpx.Client(base_url=live.url) as browser:
        browser.get("/accounts/login/")

        def log_in(password: str) -> httpx.Response:
            data = {"username": "vic", "password": password, "csrfmiddlewaretoken": browser.cookies["csrftoken"]}
            return browser.post("/accounts/login/", data=data)

        assert [log_in(f"guess-{i}").status_code for i in range(3)] == [200, 200, 200]  # the form again
        blocked = log_in("the-right-password")
    assert blocked.status_code == 429 and "Too many failed attempts" in blocked.text
    assert int(blocked.headers["Retry-After"]) > 0


def test_sign_up_is_closed_unless_enabled(live, settings):
    settings.CHATSTREAM_SIGNUP = False
    assert httpx.get(f"{live.url}/accounts/signup/").status_code == 404
    assert "Sign up" not in httpx.get(f"{live.url}/accounts/login/").text
