import json
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import schemathesis
from django.contrib.auth import get_user_model

from conversations import api_keys
from conversations.db import close_worker_connections
from conversations.models import Conversation, Turn
from conversations.providers.openai import close_shared_session

from .fake_upstream import Behaviour, FakeUpstream
from .servers import ServerThread


@pytest.fixture(scope="session", autouse=True)
def database_threads(django_db_setup, django_db_blocker):
    """The app's database threads keep their connections open; close them
    before the test database is dropped."""
    yield
    with django_db_blocker.unblock():
        close_worker_connections()


@pytest.fixture(scope="session")
def upstream_server():
    app = FakeUpstream()
    with ServerThread(app) as server:
        server.app = app
        yield server


@pytest.fixture
def upstream(upstream_server, settings) -> FakeUpstream:
    """The fake model server, reset, with the app pointed at it."""
    app: FakeUpstream = upstream_server.app
    app.behaviour = Behaviour()
    app.by_model.clear()
    app.calls.clear()
    settings.LLM_PROVIDER = "openai"
    settings.LLM_BASE_URL = f"{upstream_server.url}/v1"
    settings.LLM_MODEL = "fake-model"
    return app


@pytest.fixture(scope="session")
def app_server():
    from django.contrib.staticfiles.handlers import ASGIStaticFilesHandler

    from chatstream.asgi import application

    # Static files as `runserver` serves them (in production, the proxy does).
    with ServerThread(ASGIStaticFilesHandler(application)) as server:
        yield server
        server.run(close_shared_session())  # the upstream connections the app kept open


@pytest.fixture
def live(app_server, transactional_db):
    """The app under a real ASGI server, with a database the server can reach."""
    return app_server


@dataclass
class ApiUser:
    user: object
    key: str
    client: httpx.Client

    def new_conversation(self) -> str:
        response = self.client.post("/api/conversations", json={})
        assert response.status_code == 201, response.text
        return response.json()["id"]


API_DESCRIPTION = schemathesis.openapi.from_path(Path(__file__).parent.parent / "conversations" / "openapi.yaml")


def conforms_to_the_api_description(response: httpx.Response) -> None:
    """An httpx response hook: every JSON answer of the API (and every
    stream's head) must match conversations/openapi.yaml."""
    request = response.request
    if not request.url.path.startswith("/api/") or request.url.path == "/api/openapi.yaml":
        return
    operation = API_DESCRIPTION.find_operation_by_path(request.method, request.url.path)
    if operation is None:  # a method or path the API does not have: still the one error shape
        response.read()
        error = response.json()["error"]
        assert response.status_code in (404, 405) and set(error) == {"code", "message"}, response.text
        return
    if not response.headers.get("content-type", "").startswith("application/json") and response.status_code != 204:
        assert response.status_code == 200, response.status_code  # a stream, whose events the tests check
        return
    response.read()
    documented = set(operation.responses.status_codes)
    assert str(response.status_code) in documented, f"{operation.label} answered {response.status_code}: not described"
    operation.validate_response(response)


def api_client(base_url: str, **kwargs) -> httpx.Client:
    return httpx.Client(
        base_url=base_url, timeout=30, event_hooks={"response": [conforms_to_the_api_description]}, **kwargs
    )


def make_api_user(live, username: str) -> ApiUser:
    user = get_user_model().objects.create_user(username=username, password="pw-" + username)
    _, key = api_keys.create_api_key(user=user)
    client = api_client(live.url, headers={"Authorization": f"Bearer {key}"})
    return ApiUser(user=user, key=key, client=client)


@pytest.fixture
def alice(live):
    api_user = make_api_user(live, "alice")
    yield api_user
    api_user.client.close()


@pytest.fixture
def bob(live):
    api_user = make_api_user(live, "bob")
    yield api_user
    api_user.client.close()


def parse_sse(raw: str) -> list[dict]:
    """SSE text into events: {"event", "id", "data"} (comments dropped)."""
    events = []
    for block in raw.replace("\r\n", "\n").split("\n\n"):
        fields: dict = {"data": []}
        for line in block.split("\n"):
            if not line or line.startswith(":"):
                continue
            name, _, value = line.partition(":")
            value = value[1:] if value.startswith(" ") else value
            if name == "data":
                fields["data"].append(value)
            else:
                fields[name] = value
        if fields["data"]:
            events.append(
                {
                    "event": fields.get("event", "message"),
                    "id": fields.get("id"),
                    "data": json.loads("\n".join(fields["data"])),
                }
            )
    return events


def saved_answer(conversation_id: str) -> Turn:
    return Turn.objects.get(conversation_id=conversation_id, role=Turn.Role.ASSISTANT)


def wait_for_answer(conversation_id: str, timeout: float = 5.0) -> Turn:
    """The answer's row, once the server has written it."""
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        turn = Turn.objects.filter(conversation_id=conversation_id, role=Turn.Role.ASSISTANT).first()
        if turn is not None:
            return turn
        time.sleep(0.01)
    raise AssertionError(f"no answer saved for {conversation_id} within {timeout} s")


__all__ = ["Conversation", "parse_sse", "saved_answer", "wait_for_answer"]
