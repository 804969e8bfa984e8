"""The line that heads each file in a prompt, `Image: cat.png (image/png,
640×480, 12 KB)` or `File: notes.md (text/markdown, 3 KB)`: written by
parts.py, read back by the demo model (which describes what it was sent).
Nothing of the app's is imported here (sizes.py has no imports), so a
provider can read it without the models."""

import re
from typing import Any

from .sizes import human_size

HEADING = re.compile(r"^(?P<what>Image|File): (?P<name>.+) \((?P<facts>[^()]*)\)$")


def heading(file: dict[str, Any]) -> str:
    facts = [file["content_type"]]
    if file.get("width"):
        facts.append(f"{file['width']}×{file['height']}")
    facts.append(human_size(file["size"]))
    return f"{'Image' if file['kind'] == 'image' else 'File'}: {file['name']} ({', '.join(facts)})"
