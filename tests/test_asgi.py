"""The opt-in handler serves the API on the event loop wherever the project
mounts it, and everything else on Django's stock path."""

import pytest
from django.test import override_settings

from conversations.asgi import ChatstreamASGIHandler, api_prefixes


def scope(path: str, root_path: str = "") -> dict:
    return {"type": "http", "path": path, "root_path": root_path}


def test_the_api_prefixes_are_where_the_project_includes_the_app():
    assert api_prefixes() == ("/api/", "/v1/")
    with override_settings(ROOT_URLCONF="tests.urls_prefixed"):
        assert api_prefixes() == ("/chat/api/", "/chat/v1/")
    with override_settings(ROOT_URLCONF="tests.urls_empty"):
        assert api_prefixes() == ()


@pytest.mark.parametrize(
    ("path", "root_path", "on_loop"),
    [
        ("/chat/api/conversations", "", True),
        ("/chat/api/", "", True),
        ("/chat/v1/chat/completions", "", True),
        ("/chat/", "", False),
        ("/api/conversations", "", False),
        ("/static/conversations/chat.js", "", False),
        ("/sub/chat/api/turns/x/events", "/sub", True),  # mounted below a script prefix
    ],
)
def test_only_the_api_runs_on_the_loop(path, root_path, on_loop):
    with override_settings(ROOT_URLCONF="tests.urls_prefixed"):
        handler = ChatstreamASGIHandler()
        assert handler._serves_on_loop(scope(path, root_path)) is on_loop


def test_without_the_apps_urls_nothing_runs_on_the_loop():
    with override_settings(ROOT_URLCONF="tests.urls_empty"):
        assert not ChatstreamASGIHandler()._serves_on_loop(scope("/api/conversations"))
