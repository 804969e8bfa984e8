"""conversations/files/pdf.py: a PDF's text, read in a child process with limits.

Every PDF here is real (tests/pdfs.py), and so is the child process."""

import signal
import subprocess
import sys
import time

import pytest

from conversations.files.pdf import CHILD_MODULE, PdfText, UnreadablePdf, answer, child_environment, pdf_text

from .pdfs import bomb_pdf, encrypt, make_pdf, slow_pdf

# The reader's own process: nothing here varies with Django, the stack or the
# database, so it runs on one CI leg, with the end-to-end tests.
pytestmark = pytest.mark.e2e

MALFORMED = "The file is not a PDF that can be read: "


@pytest.fixture
def upload(tmp_path):
    """Writes a PDF where an upload would be, and gives its path."""

    def write(data: bytes) -> str:
        path = tmp_path / "upload.pdf"
        path.write_bytes(data)
        return str(path)

    return write


def read(path: str, *, max_pages: int = 100, timeout: float = 20, **limits) -> PdfText:
    return pdf_text(path, max_pages=max_pages, timeout=timeout, **limits)


def refusal(path: str, **limits) -> UnreadablePdf:
    with pytest.raises(UnreadablePdf) as info:
        read(path, **limits)
    return info.value


def run_child(path: str, *, before: str = "", cpu_seconds: int = 20) -> subprocess.CompletedProcess[bytes]:
    """The child run directly, after `before` (Python run in it first)."""
    code = f"{before}\nfrom {CHILD_MODULE} import main\nmain()"
    command = [sys.executable, "-c", code, path, "100", "1000", str(cpu_seconds)]
    return subprocess.run(command, capture_output=True, timeout=60, env=child_environment(), check=False)


def test_text_of_every_page(upload):
    pdf = make_pdf(["First page", "Second\npage (with parentheses)", "Third"])

    assert read(upload(pdf)) == PdfText(
        text="First page\n\nSecond\npage (with parentheses)\n\nThird", pages=3, pages_read=3
    )


def test_pages_past_max_pages_are_not_read(upload):
    pdf = make_pdf([f"Page {n}" for n in range(1, 8)])

    assert read(upload(pdf), max_pages=2) == PdfText(text="Page 1\n\nPage 2", pages=7, pages_read=2)


def test_text_past_max_chars_is_not_kept(upload):
    pdf = make_pdf(["a" * 100, "b" * 100, "c" * 100, "d" * 100])

    got = read(upload(pdf), max_chars=150)

    assert got.text == "a" * 100 + "\n\n" + "b" * 48
    assert (got.pages, got.pages_read) == (4, 2)


def test_nul_and_form_feed_are_removed(upload):
    assert read(upload(make_pdf(["a\x00b\x0cc"]))).text == "abc"


@pytest.mark.parametrize("algorithm", ["RC4-128", "AES-128", "AES-256"])
def test_password_protected_pdf_is_refused(upload, algorithm):
    pdf = encrypt(make_pdf(["Secret"]), user_password="hunter2", algorithm=algorithm)

    error = refusal(upload(pdf))

    assert (error.code, error.message) == (
        "pdf_encrypted",
        "The PDF is protected by a password; upload a copy without one.",
    )


@pytest.mark.parametrize("algorithm", ["RC4-128", "AES-128", "AES-256"])
def test_pdf_encrypted_with_an_empty_password_is_read(upload, algorithm):
    pdf = encrypt(make_pdf(["Open to all"]), user_password="", algorithm=algorithm)

    assert read(upload(pdf)).text == "Open to all"


@pytest.mark.parametrize("algorithm", ["AES-128", "AES-256"])
def test_aes_without_cryptography_is_refused_cleanly(upload, algorithm):
    """pypdf needs `cryptography` (or pycryptodome) for AES; without it the
    file is refused as encrypted, not with a crash."""
    pdf = encrypt(make_pdf(["Open to all"]), user_password="", algorithm=algorithm)
    without = "import sys; sys.modules['cryptography'] = sys.modules['Crypto'] = None"

    done = run_child(upload(pdf), before=without)

    with pytest.raises(UnreadablePdf) as info:
        answer(done)
    assert info.value.code == "pdf_encrypted"
    assert "AES" in info.value.message


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        pytest.param(b"\x01\x02 not a pdf " * 100, "Stream has ended unexpectedly.", id="random-bytes"),
        pytest.param(make_pdf(["One", "Two", "Three"])[:300], "Stream has ended unexpectedly.", id="truncated"),
        pytest.param(b"", "Cannot read an empty file.", id="empty"),
    ],
)
def test_what_is_not_a_pdf_is_malformed(upload, data, reason):
    error = refusal(upload(data))

    assert (error.code, error.message) == ("pdf_malformed", MALFORMED + reason)


def test_slow_pdf_is_killed_at_the_timeout(upload):
    path = upload(slow_pdf())  # some 30 s of reading
    started = time.monotonic()

    error = refusal(path, timeout=1.5)

    elapsed = time.monotonic() - started
    assert (error.code, error.message) == ("pdf_too_slow", "The PDF took longer than 1.5 s to read.")
    assert 1.5 <= elapsed < 1.5 + 2


def test_a_short_slow_pdf_is_read(upload):
    """The slow PDF is a valid one: only its length makes it slow."""
    assert read(upload(slow_pdf(operators=1000))).text == "x" * 1000


def test_cpu_limit_ends_the_child_if_the_timeout_does_not(upload):
    done = run_child(upload(slow_pdf()), cpu_seconds=1)

    assert done.returncode == -signal.SIGXCPU
    with pytest.raises(UnreadablePdf) as info:
        answer(done)
    assert info.value.code == "pdf_too_slow"


def test_decompression_bomb_is_refused_quickly(upload):
    path = upload(bomb_pdf(gigabytes=4))
    started = time.monotonic()

    error = refusal(path)

    assert time.monotonic() - started < 5
    assert error.code == "pdf_too_large"
    assert error.message.startswith("The PDF holds more data than can be read")


def test_memory_limit_ends_a_bomb_past_pypdfs_own_limits(upload):
    """With pypdf's limits lifted, the child's 1 GiB of address space still
    stops a 4 GiB bomb, and says so."""
    lifted = (
        "import pypdf; pypdf.overwrite_configuration("
        "zlib_maximum_output_length=1 << 40, stream_decoding_work_maximum_length=1 << 40)"
    )
    started = time.monotonic()

    done = run_child(upload(bomb_pdf(gigabytes=4)), before=lifted)

    assert time.monotonic() - started < 15
    with pytest.raises(UnreadablePdf) as info:
        answer(done)
    assert (info.value.code, info.value.message) == (
        "pdf_too_large",
        "The PDF needs more memory to read than a file may use.",
    )


def test_child_does_not_import_django():
    """The child starts for each upload: Django would add its import time to
    each. (conversations/files/__init__.py must stay free of imports.)"""
    check = f"import sys, {CHILD_MODULE}; print(sorted(m for m in sys.modules if m.split('.')[0] == 'django'))"

    done = subprocess.run([sys.executable, "-c", check], capture_output=True, env=child_environment(), check=True)

    assert done.stdout == b"[]\n"


def test_large_pdf_is_read(upload):
    """A 10 MB upload (an image and a page of text) is read, and quickly."""
    pdf = make_pdf(["A report", "Its second page"], image_bytes=10_000_000)
    assert len(pdf) > 10_000_000

    assert read(upload(pdf), timeout=10) == PdfText(text="A report\n\nIts second page", pages=2, pages_read=2)
