"""Write the app's settings, from conversations/conf.py, into the two places
that list them: the table of docs/configuration.md and the app's part of
.env.example (each between its markers). `make docs` runs this; a test checks
that both are current.

    .venv/bin/python scripts/settings-docs.py
"""

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "chatstream.settings")
os.environ.setdefault("SECRET_KEY", "settings-docs")

import django  # noqa: E402

django.setup()

from conversations.management.commands.chatstream_settings import env_example, markdown_table  # noqa: E402

MARKERS = {
    ROOT / "docs" / "configuration.md": ("<!-- settings: start -->\n", "<!-- settings: end -->\n", markdown_table),
    ROOT / ".env.example": (
        "# --- chatstream's settings: start ---\n",
        "# --- chatstream's settings: end ---\n",
        env_example,
    ),
}


def with_block(text: str, start: str, end: str, body: str) -> str:
    before, found, rest = text.partition(start)
    if not found or end not in rest:
        raise SystemExit(f"markers {start.strip()!r} ... {end.strip()!r} not found")
    return before + start + body + end + rest.split(end, 1)[1]


if __name__ == "__main__":
    for path, (start, end, body) in MARKERS.items():
        path.write_text(with_block(path.read_text(), start, end, body()))
        print(f"wrote {path.relative_to(ROOT)}")
