"""Settings: each default written once (conversations/conf.py), the docs and
.env.example generated from it, and the project setting only what the
environment gives."""

import os
import re
import subprocess
import sys
from io import StringIO
from pathlib import Path

from django.core.management import call_command

from conversations.conf import Settings, conf
from conversations.management.commands.chatstream_settings import env_example, markdown_table

ROOT = Path(__file__).parent.parent


def between(text: str, start: str, end: str) -> str:
    return text.split(start, 1)[1].split(end, 1)[0]


def test_the_docs_table_and_env_example_are_current():
    docs = (ROOT / "docs" / "configuration.md").read_text()
    assert between(docs, "<!-- settings: start -->\n", "<!-- settings: end -->") == markdown_table(), "run `make docs`"
    example = (ROOT / ".env.example").read_text()
    block = between(example, "# --- chatstream's settings: start ---\n", "# --- chatstream's settings: end ---")
    assert block == env_example(), "run `make docs`"


def test_every_variable_the_project_reads_is_documented():
    read = set(re.findall(r'env\.\w+\("([A-Z_]+)"', (ROOT / "chatstream" / "settings.py").read_text()))
    documented = (ROOT / "docs" / "configuration.md").read_text()
    assert read and not {name for name in read if f"`{name}`" not in documented}


def project_settings(**environ: str) -> dict:
    """Some of chatstream.settings' values, in a fresh process with `environ`."""
    names = ["LLM_MODEL", "CHATSTREAM_REDACT", "LLM_FALLBACK_MODELS", "CHATSTREAM_HEARTBEAT_SECONDS"]
    script = f"import chatstream.settings as s; print({{n: getattr(s, n, None) for n in {names!r}}})"
    env = {key: value for key, value in os.environ.items() if key not in names} | {"SECRET_KEY": "x"} | environ
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True, check=True)
    return eval(done.stdout)  # the dict printed above


def test_the_project_sets_the_apps_settings_only_from_the_environment():
    assert set(project_settings().values()) == {None}  # nothing set: the app's defaults apply
    given = project_settings(
        LLM_MODEL="m", CHATSTREAM_REDACT="true", LLM_FALLBACK_MODELS="a,b", CHATSTREAM_HEARTBEAT_SECONDS="2.5"
    )
    assert given == {
        "LLM_MODEL": "m",
        "CHATSTREAM_REDACT": True,
        "LLM_FALLBACK_MODELS": ["a", "b"],
        "CHATSTREAM_HEARTBEAT_SECONDS": 2.5,
    }


def test_settings_are_read_when_used(settings):
    assert conf.LLM_MEMORY_MODEL == conf.LLM_MODEL  # empty means LLM_MODEL
    settings.LLM_MODEL, settings.CHATSTREAM_HEARTBEAT_SECONDS = "other", 2
    assert conf.LLM_MEMORY_MODEL == "other" and conf.CHATSTREAM_HEARTBEAT_SECONDS == 2.0
    settings.LLM_MEMORY_MODEL = "small"
    assert conf.LLM_MEMORY_MODEL == "small"
    assert {setting.name for setting in Settings.declared()} >= {"LLM_MODEL", "REDIS_URL", "CHATSTREAM_REDACT"}


def test_the_command_shows_values_and_hides_secrets(settings):
    settings.LLM_API_KEY, settings.CHATSTREAM_REDACT = "sk-secret", True
    out = StringIO()
    call_command("chatstream_settings", stdout=out)
    lines = dict(line.split(None, 1) for line in out.getvalue().splitlines())
    assert lines["LLM_API_KEY"] == "(set)   (default: empty)" and "sk-secret" not in out.getvalue()
    assert lines["CHATSTREAM_REDACT"] == "true   (default: false)"
    assert lines["LLM_MODEL"] == "demo-1" and lines["REDIS_URL"] == "(empty)"  # defaults, unmarked
