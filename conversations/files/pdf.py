"""A PDF's text, read once when it is uploaded and kept beside the file.

The reading happens in a child process (pdf_child.py) with a memory limit, a
CPU limit and a wall-clock timeout: pypdf parses whatever a user sends, and a
hostile PDF that loops or inflates to gigabytes must cost that child, not the
server. The child answers with JSON; everything that can go wrong ends here as
an UnreadablePdf whose code the upload view returns:

    pdf_encrypted   a password is needed (or AES, with no `cryptography` to read it)
    pdf_malformed   not a PDF pypdf can read, or the reader crashed
    pdf_too_slow    not read within the timeout (the child is killed)
    pdf_too_large   more data than the limits allow (memory, pypdf's own limits)
"""

import logging
import math
import os
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import orjson

logger = logging.getLogger(__name__)

CHILD_MODULE = "conversations.files.pdf_child"
# About 250,000 tokens, more than a model's context holds today; it also
# bounds the child's answer and the row the text is kept in.
MAX_CHARS = 1_000_000
# The directory `conversations` is in, for the child to import it from
# whatever directory the server was started in.
PACKAGE_ROOT = str(Path(__file__).resolve().parents[2])


@dataclass(frozen=True)
class PdfText:
    text: str  # the pages' texts, separated by "\n\n", without NULs and form feeds
    pages: int  # pages in the document
    pages_read: int  # pages whose text was read (at most max_pages)


class UnreadablePdf(Exception):
    """A PDF whose text cannot be read; `code` is one of the module
    docstring's, `message` one sentence for the user."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code
        self.message = message


def pdf_text(path: str, *, max_pages: int, timeout: float, max_chars: int = MAX_CHARS) -> PdfText:
    """The text of the PDF at `path`, read in a child process within `timeout` seconds.

    Blocking; meant to be called in a thread (asyncio.to_thread).
    """
    command = [sys.executable, "-m", CHILD_MODULE, path, str(max_pages), str(max_chars), str(cpu_seconds(timeout))]
    try:
        done = subprocess.run(command, capture_output=True, timeout=timeout, env=child_environment(), check=False)
    except subprocess.TimeoutExpired as exc:
        # subprocess.run has killed the child and waited for it.
        raise UnreadablePdf("pdf_too_slow", f"The PDF took longer than {timeout:g} s to read.") from exc
    return answer(done)


def cpu_seconds(timeout: float) -> int:
    """The child's CPU limit: the timeout ends it first, but should this
    process die without killing it, the limit still does."""
    return max(1, math.ceil(timeout))


# What the reader's process needs of the server's environment to start;
# nothing else (no keys, no database URL) is in reach of a hostile file.
CHILD_ENVIRONMENT = ("PATH", "LANG", "LC_ALL", "LD_LIBRARY_PATH", "PYTHONHOME", "VIRTUAL_ENV", "TMPDIR")


def child_environment() -> dict[str, str]:
    paths = [PACKAGE_ROOT, os.environ.get("PYTHONPATH", "")]
    kept = {name: os.environ[name] for name in CHILD_ENVIRONMENT if name in os.environ}
    return {**kept, "PYTHONPATH": os.pathsep.join(path for path in paths if path)}


def answer(done: subprocess.CompletedProcess[bytes]) -> PdfText:
    if done.returncode != 0:
        raise crash(done)
    try:
        reply = orjson.loads(done.stdout)
    except orjson.JSONDecodeError:
        raise crash(done) from None
    if "error" in reply:
        raise UnreadablePdf(reply["error"], reply["message"])
    return PdfText(text=reply["text"], pages=reply["pages"], pages_read=reply["pages_read"])


def crash(done: subprocess.CompletedProcess[bytes]) -> UnreadablePdf:
    """Why a child that gave no answer ended: a limit it ran into, or else a crash."""
    if done.returncode == -signal.SIGXCPU:
        return UnreadablePdf("pdf_too_slow", "The PDF took more processing time to read than a file may use.")
    if done.returncode == -signal.SIGKILL or b"MemoryError" in done.stderr:
        return UnreadablePdf("pdf_too_large", "The PDF needs more memory to read than a file may use.")
    logger.warning("The PDF reader ended with %s: %s", done.returncode, done.stderr[-2000:].decode(errors="replace"))
    return UnreadablePdf("pdf_malformed", "The file is not a PDF that can be read: its reader stopped unexpectedly.")
