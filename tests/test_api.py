"""The JSON API through a real ASGI server: statuses, shapes, ownership, keys."""

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import django
import httpx
import pytest
from django.contrib.auth import get_user_model

from conversations.access import api_keys
from conversations.models import ApiKey, Conversation, Turn
from harness.fake_upstream import Behaviour

from .helpers import API_DESCRIPTION, api_client, log_in, post_and_read, read_events, saved_answer


def error_code(response: httpx.Response) -> str:
    body = response.json()
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message"}
    return body["error"]["code"]


def test_create_list_show_delete(alice, upstream):
    upstream.behaviour.tokens = 3
    conversation_id = alice.new_conversation()
    alice.client.post(f"/api/conversations/{conversation_id}/messages", json={"content": "Hi"}).read()

    listing = alice.client.get("/api/conversations").json()
    assert listing["count"] == 1 and listing["results"][0]["id"] == conversation_id
    detail = alice.client.get(f"/api/conversations/{conversation_id}").json()
    assert detail["title"] == "Hi"
    assert [(t["position"], t["role"]) for t in detail["turns"]] == [(0, "user"), (1, "assistant")]
    answer = detail["turns"][1]
    assert answer["content"] == "t0 t1 t2 " and answer["finish_reason"] == "stop" and answer["status"] == "complete"
    for key in (
        "id",
        "model",
        "ttft_ms",
        "duration_ms",
        "tokens_in",
        "tokens_out",
        "tokens_estimated",
        "trace_id",
        "created_at",
    ):
        assert key in answer

    assert alice.client.delete(f"/api/conversations/{conversation_id}").status_code == 204
    assert not Conversation.objects.filter(pk=conversation_id).exists()


def test_list_is_newest_first_and_paginated(alice):
    ids = [alice.new_conversation() for _ in range(23)]
    first = alice.client.get("/api/conversations").json()
    assert (first["count"], first["pages"], len(first["results"])) == (23, 2, 20)
    assert first["results"][0]["id"] == ids[-1]
    second = alice.client.get("/api/conversations", params={"page": 2}).json()
    assert [c["id"] for c in second["results"]] == ids[2::-1]
    assert error_code(alice.client.get("/api/conversations", params={"page": 9})) == "page_not_found"
    assert error_code(alice.client.get("/api/conversations", params={"page": "x"})) == "invalid_page"


def test_foreign_and_unknown_conversations_are_404(alice, bob):
    theirs = bob.new_conversation()
    for path in (f"/api/conversations/{theirs}", "/api/conversations/not-a-uuid"):
        assert alice.client.get(path).status_code == 404
    response = alice.client.post(f"/api/conversations/{theirs}/messages", json={"content": "hi"})
    assert response.status_code == 404 and error_code(response) == "conversation_not_found"
    assert alice.client.delete(f"/api/conversations/{theirs}").status_code == 404
    assert Turn.objects.count() == 0 and Conversation.objects.filter(pk=theirs).exists()


@pytest.mark.parametrize(
    ("body", "code"),
    [
        (b"{not json", "invalid_json"),
        (b"[1, 2]", "invalid_json"),
        (b"{}", "invalid_content"),
        (b'{"content": "   "}', "invalid_content"),
        (b'{"content": 42}', "invalid_content"),
    ],
)
def test_bad_message_bodies_are_400(alice, body, code):
    conversation_id = alice.new_conversation()
    response = alice.client.post(f"/api/conversations/{conversation_id}/messages", content=body)
    assert response.status_code == 400 and error_code(response) == code
    assert Turn.objects.count() == 0


def test_too_long_message_is_400(alice, settings):
    settings.CHATSTREAM_MAX_MESSAGE_CHARS = 10
    conversation_id = alice.new_conversation()
    response = alice.client.post(f"/api/conversations/{conversation_id}/messages", json={"content": "x" * 11})
    assert response.status_code == 400 and error_code(response) == "content_too_long"


def test_body_over_the_limit_is_413(alice, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 100
    conversation_id = alice.new_conversation()
    response = alice.client.post(f"/api/conversations/{conversation_id}/messages", json={"content": "x" * 200})
    assert response.status_code == 413 and error_code(response) == "body_too_large"


def test_wrong_method_is_405_with_allow(alice):
    response = alice.client.put("/api/conversations")
    assert response.status_code == 405 and error_code(response) == "method_not_allowed"
    assert response.headers["Allow"] == "GET, POST"


@pytest.mark.parametrize("method", ["GET", "POST", "PUT", "PATCH", "DELETE"])
def test_unknown_api_path_is_json_404_for_every_method(live, method):
    with session_client(live, "dave") as browser:  # a session without a CSRF token: still no CSRF page
        response = browser.request(method, "/api/nope", json={})
    assert response.status_code == 404 and error_code(response) == "not_found"


def test_the_pages_scripts_and_styles_are_served_without_a_proxy(live):
    """ServeStatic, under the real server with DEBUG off, with no collectstatic."""
    for path, kind in [("conversations/chat.js", "text/javascript"), ("conversations/chat.css", "text/css")]:
        response = httpx.get(f"{live.url}/static/{path}")
        assert response.status_code == 200 and response.headers["content-type"].startswith(kind)
        assert response.content == (Path(__file__).parent.parent / "conversations" / "static" / path).read_bytes()


def test_no_credentials_is_401_before_csrf(live):
    with api_client(live.url) as anonymous:
        for response in (anonymous.get("/api/conversations"), anonymous.post("/api/conversations", json={})):
            assert response.status_code == 401 and error_code(response) == "not_authenticated"


def test_revoked_and_wrong_keys_are_401(alice):
    api_keys.revoke(key=ApiKey.objects.get(user=alice.user))
    assert error_code(alice.client.get("/api/conversations")) == "invalid_api_key"
    wrong = alice.key[:-2] + "xx"
    response = alice.client.get("/api/conversations", headers={"Authorization": f"Bearer {wrong}"})
    assert response.status_code == 401


def test_api_key_is_stored_hashed(alice):
    stored = ApiKey.objects.get(user=alice.user)
    assert alice.key not in (stored.prefix, stored.hashed_secret)
    assert alice.key.startswith(f"cs_{stored.prefix}_")


@contextmanager
def session_client(live, username: str) -> Iterator[httpx.Client]:
    """A client logged in through the login form, as a browser would."""
    get_user_model().objects.create_user(username=username, password="pw-" + username)
    with api_client(live.url) as client:
        assert log_in(client, "/accounts/login/", username, "pw-" + username).status_code == 302
        yield client


def test_session_writes_need_csrf(live, upstream):
    upstream.behaviour.tokens = 2
    with session_client(live, "carol") as client:
        refused = client.post("/api/conversations", json={})
        assert refused.status_code == 403 and error_code(refused) == "csrf_failed"
        headers = {"X-CSRFToken": client.cookies["csrftoken"]}
        created = client.post("/api/conversations", json={"title": "Mine"}, headers=headers)
        assert created.status_code == 201 and created.json()["title"] == "Mine"
        assert client.get("/api/conversations").json()["count"] == 1
        streamed = client.post(
            f"/api/conversations/{created.json()['id']}/messages", json={"content": "hi"}, headers=headers
        )
        assert [e["event"] for e in read_events(streamed)][-1] == "done"


def test_chat_page_needs_login(live):
    with api_client(live.url) as anonymous:
        response = anonymous.get("/")
    assert response.status_code == 302 and response.headers["Location"].startswith("/accounts/login/")
    with session_client(live, "dave") as client:
        page = client.get("/")
    assert page.status_code == 200 and "chat.js" in page.text


def test_rename(alice, bob):
    conversation_id = alice.new_conversation()
    renamed = alice.client.patch(f"/api/conversations/{conversation_id}", json={"title": "  Plans  "})
    assert renamed.status_code == 200 and renamed.json()["title"] == "Plans"
    assert error_code(alice.client.patch(f"/api/conversations/{conversation_id}", json={"title": 3})) == "invalid_title"
    foreign = bob.client.patch(f"/api/conversations/{conversation_id}", json={"title": "Mine now"})
    assert foreign.status_code == 404
    assert Conversation.objects.get(pk=conversation_id).title == "Plans"


def test_sign_up_logs_in_and_pages_carry_a_security_policy(live, settings):
    settings.CHATSTREAM_SIGNUP = True
    with httpx.Client(base_url=live.url, follow_redirects=False) as browser:
        form = browser.get("/accounts/signup/")
        assert form.status_code == 200
        if django.VERSION >= (6, 0):  # the project's pages use Django's own CSP (the chat page sets its own)
            assert "script-src 'self'" in form.headers["Content-Security-Policy"]
        created = browser.post(
            "/accounts/signup/",
            data={
                "username": "erin",
                "password1": "a-long-enough-password-1",
                "password2": "a-long-enough-password-1",
                "csrfmiddlewaretoken": browser.cookies["csrftoken"],
            },
        )
        assert created.status_code == 302 and created.headers["Location"] == "/"
        assert browser.get("/").status_code == 200  # logged in
    assert get_user_model().objects.filter(username="erin").exists()


def test_the_api_description_is_published_and_valid(live):
    response = httpx.get(f"{live.url}/api/openapi.yaml")
    assert response.status_code == 200 and response.headers["content-type"] == "application/yaml"
    assert response.content == (Path(__file__).parent.parent / "conversations" / "openapi.yaml").read_bytes()
    API_DESCRIPTION.validate()  # a well-formed OpenAPI 3.1 document


def test_nul_characters_are_refused_in_input_and_replaced_in_answers(alice, upstream):
    conversation_id = alice.new_conversation()
    refused = alice.client.post(f"/api/conversations/{conversation_id}/messages", json={"content": "a\x00b"})
    assert refused.status_code == 400 and error_code(refused) == "invalid_content"
    assert error_code(alice.client.post("/api/conversations", json={"title": "x\x00"})) == "invalid_title"
    upstream.behaviour = Behaviour(text="odd\x00text", piece_chars=2)  # PostgreSQL cannot store a NUL
    conversation_id, events, _ = post_and_read(alice)
    seen = "".join(event["data"]["text"] for event in events if event["event"] == "delta")
    assert seen == saved_answer(conversation_id).content == "odd\ufffdtext"
