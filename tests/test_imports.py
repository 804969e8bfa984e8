"""The process imports what a request needs when it first needs it: a fresh
interpreter that loads chatstream's ASGI application as uvicorn does (the
benchmark's environment: SQLite, the OpenAI provider, no REDIS_URL, no OTLP
endpoint) has none of the heavy optional libraries in `sys.modules`, and
imports each one when its feature is first used."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

# Each of these added megabytes to every process (docs/benchmarks.md).
NOT_AT_START = [
    "daphne",  # runserver's server (chatstream/devserver)
    "twisted",
    "redis",  # with REDIS_URL only
    "opentelemetry",  # with a tracer provider only
    "channels",
    "psycopg",  # PostgreSQL only
    "pydantic",  # tools only
    "jsonschema",  # a response_format schema
    "markdown_it",  # a shared page
    "PIL",  # an image
    "pypdf",  # a PDF
    "yaml",  # the OpenAPI document
]

SCRIPT = """
import json, sys
import chatstream.asgi
print(json.dumps(sorted({name.split(".")[0] for name in sys.modules})), flush=True)

from conversations.files.kinds import _image
from conversations.instructions import output_check
from conversations.live.client import redis_errors
from conversations.sharing.page import _markdown
from conversations.tools import tool

_markdown()
output_check("{}", {"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "object"}}})
redis_errors()


def double(n: int) -> int:
    return 2 * n


tool(double).parameters
_image(open(sys.argv[1], "rb"), "image/png")
print(json.dumps(sorted({name.split(".")[0] for name in sys.modules})))
"""


@pytest.fixture(scope="module")
def modules(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[str] | str]:
    """The top-level packages imported once the application is loaded, and
    then once each feature has been used (or the script's error)."""
    tmp = tmp_path_factory.mktemp("imports")
    png = tmp / "one.png"
    png.write_bytes(b"\x89PNG\r\n\x1a\n")
    env = {name: value for name, value in os.environ.items() if not name.startswith(("OTEL_", "CHATSTREAM_"))}
    env.pop("REDIS_URL", None)
    env |= {
        "DJANGO_SETTINGS_MODULE": "chatstream.settings",
        "CHATSTREAM_ENV_FILE": "",
        "DEBUG": "false",
        "SECRET_KEY": "imports",
        "DATABASE_URL": f"sqlite:///{tmp / 'db.sqlite3'}",
        "LLM_PROVIDER": "openai",
        "LLM_BASE_URL": "http://127.0.0.1:9/v1",
        "LLM_MODEL": "fake",
        "PYTHONPATH": str(ROOT),
    }
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(png)], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    lines = done.stdout.splitlines()
    assert lines, done.stderr[-3000:]
    return {"at_start": json.loads(lines[0]), "after": json.loads(lines[1]) if len(lines) > 1 else done.stderr[-3000:]}


@pytest.mark.parametrize("name", NOT_AT_START)
def test_not_imported_at_start(modules: dict[str, list[str] | str], name: str) -> None:
    assert name not in modules["at_start"]


@pytest.mark.parametrize("name", ["markdown_it", "jsonschema", "redis", "pydantic", "PIL"])
def test_imported_when_first_used(modules: dict[str, list[str] | str], name: str) -> None:
    assert isinstance(modules["after"], list), modules["after"]
    assert name in modules["after"]
