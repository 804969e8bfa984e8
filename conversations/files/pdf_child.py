"""The process that reads a PDF's text for pdf.py; never imported by the server.

    python -m conversations.files.pdf_child PATH MAX_PAGES MAX_CHARS CPU_SECONDS

pypdf parses whatever a user uploads, and a hostile file can loop, or inflate
a few kilobytes into gigabytes. So it is parsed here, under limits set before
the file is opened (address space, CPU time): the worst such a file can do is
end this process, which pdf.py turns into an UnreadablePdf. Only the standard
library, pypdf and orjson are imported, not Django, to start quickly.

It prints one JSON object on stdout and exits 0:

    {"text": "...", "pages": 12, "pages_read": 12}
    {"error": "pdf_encrypted" | "pdf_malformed" | "pdf_too_large", "message": "..."}
"""

import logging
import resource
import sys
from itertools import islice
from typing import Any

import orjson
from pypdf import PasswordType, PdfReader
from pypdf.errors import DependencyError, FileNotDecryptedError, LimitReachedError

MEMORY_BYTES = 1 << 30
PAGE_SEPARATOR = "\n\n"
# NUL: PostgreSQL's text and JSON refuse it. Form feed: pages are already
# separated by PAGE_SEPARATOR.
REMOVED = str.maketrans("", "", "\x00\x0c")

PASSWORD = "The PDF is protected by a password; upload a copy without one."
AES_UNAVAILABLE = "The PDF is encrypted with AES, which this server cannot open; upload a copy without a password."
TOO_LARGE = "The PDF holds more data than can be read: one of its parts is larger than the limits allow."


class Refused(Exception):
    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code
        self.message = message


def main() -> None:
    path, max_pages, max_chars, cpu_seconds = sys.argv[1:5]
    limit_resources(int(cpu_seconds))
    # pypdf logs a warning for each oddity it skips over; a hostile file can
    # have millions, which would only fill the pipe pdf.py reads.
    logging.disable(logging.CRITICAL)
    sys.stdout.buffer.write(orjson.dumps(outcome(path, int(max_pages), int(max_chars))))


def limit_resources(cpu_seconds: int) -> None:
    """Memory and CPU time for this process only (set here rather than in a
    preexec_fn, which is unsafe in a server with threads)."""
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_BYTES, MEMORY_BYTES))
    # Past the soft limit SIGXCPU ends the process; the hard one is a backstop.
    resource.setrlimit(resource.RLIMIT_CPU, (cpu_seconds, cpu_seconds + 1))
    # SIGXCPU would otherwise write a core file of up to a GiB.
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


def outcome(path: str, max_pages: int, max_chars: int) -> dict[str, Any]:
    """What the file holds, or why it cannot be read: pypdf's errors, and its
    unexpected ones (a hostile file reaches code paths nobody tried), become a
    code and a sentence for the user."""
    try:
        return read(path, max_pages, max_chars)
    except Refused as refused:
        return refusal(refused.code, refused.message)
    except FileNotDecryptedError:
        return refusal("pdf_encrypted", PASSWORD)
    except DependencyError:
        # pypdf decrypts AES with the `cryptography` package (or pycryptodome) only.
        return refusal("pdf_encrypted", AES_UNAVAILABLE)
    except MemoryError:
        return refusal("pdf_too_large", "The PDF needs more memory to read than a file may use.")
    except LimitReachedError:
        return refusal("pdf_too_large", TOO_LARGE)
    except RecursionError:
        return refusal("pdf_malformed", "The file is not a PDF that can be read: its objects nest too deeply.")
    except Exception as exc:
        return refusal("pdf_malformed", f"The file is not a PDF that can be read: {short(exc)}.")


def read(path: str, max_pages: int, max_chars: int) -> dict[str, Any]:
    reader = PdfReader(path)
    unlock(reader)
    texts = page_texts(reader, max_pages, max_chars)
    text = PAGE_SEPARATOR.join(texts)[:max_chars]
    return {"text": text, "pages": len(reader.pages), "pages_read": len(texts)}


def unlock(reader: PdfReader) -> None:
    """Many PDFs are encrypted with an empty user password: any reader opens
    them without asking, and so do we."""
    if reader.is_encrypted and reader.decrypt("") == PasswordType.NOT_DECRYPTED:
        raise Refused("pdf_encrypted", PASSWORD)


def page_texts(reader: PdfReader, max_pages: int, max_chars: int) -> list[str]:
    """The first pages' texts, stopping once they hold max_chars: the pages
    after would be cut off anyway, and reading them takes time."""
    texts: list[str] = []
    length = 0
    for page in islice(reader.pages, max_pages):
        texts.append(page.extract_text().translate(REMOVED))
        length += len(texts[-1]) + len(PAGE_SEPARATOR)
        if length >= max_chars:
            break
    return texts


def refusal(code: str, message: str) -> dict[str, Any]:
    return {"error": code, "message": message}


def short(exc: Exception) -> str:
    reason = str(exc).strip().rstrip(".") or type(exc).__name__
    return reason if len(reason) <= 120 else reason[:117] + "..."


if __name__ == "__main__":
    main()
