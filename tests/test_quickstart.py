"""A newcomer's first minutes, as the README tells them: a fresh clone,
`make run`, then the README's curl example in another, fresh shell."""

import os
import re
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from contextlib import closing
from pathlib import Path

import pytest

from harness.servers import ROOT, free_port

# End to end: run on one CI leg, not on the legs that vary Django, the stack or the database.
pytestmark = pytest.mark.e2e

SECTION = "## The stream, with curl"


def readme_commands() -> str:
    """The shell blocks of the README's curl section, as written, one after another."""
    section = (ROOT / "README.md").read_text().split(SECTION, 1)[1].split("\n## ", 1)[0]
    return "\n".join(re.findall(r"```sh\n(.*?)```", section, re.DOTALL))


def fresh_shell_env() -> dict[str, str]:
    """What a new terminal has: no SECRET_KEY, DEBUG or Django settings of ours."""
    return {"HOME": os.environ.get("HOME", "/root"), "PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8"}


def wait_for_port(port: int, process: subprocess.Popen, log: Path, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert process.poll() is None, f"make run exited:\n{log.read_text()[-3000:]}"
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.2)
    raise AssertionError(f"make run did not listen within {timeout:g} s:\n{log.read_text()[-3000:]}")


def take_ctrl_c() -> None:
    """In `make run`'s process, before it starts: Ctrl-C stops it, as in a
    terminal, even where the suite was started with SIGINT ignored (a
    non-interactive shell's `&` job, nohup), which its children inherit:
    runserver then never stopped."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@pytest.fixture
def clone(tmp_path):
    """The repository as a newcomer gets it; the suite's own venv stands in
    for the one `make run` would build (its files are older, so make keeps it)."""
    clone = tmp_path / "chatstream"
    subprocess.run(["git", "clone", "--quiet", str(ROOT), str(clone)], check=True, timeout=60)
    (clone / ".venv").symlink_to(Path(sys.prefix))
    for requirements in [*clone.glob("requirements*.txt"), *clone.glob("requirements/*.txt")]:
        os.utime(requirements, (0, 0))
    return clone


def test_the_readmes_quick_start_works_in_a_fresh_clone(clone, tmp_path):
    port, log = free_port(), tmp_path / "make-run.log"
    with open(log, "wb") as output:
        server = subprocess.Popen(
            ["make", "run", f"PORT={port}"],
            cwd=clone,
            env=fresh_shell_env(),
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # make, the worker and the server stop together
            preexec_fn=take_ctrl_c,
        )
    try:
        wait_for_port(port, server, log)
        assert "DEBUG=true" in (clone / ".env").read_text()  # written by make run, for every shell after it
        commands = readme_commands().replace("127.0.0.1:8000", f"127.0.0.1:{port}")
        shell = subprocess.run(
            ["bash", "-e", "-c", commands], cwd=clone, env=fresh_shell_env(), capture_output=True, text=True, timeout=60
        )
    finally:
        os.killpg(server.pid, signal.SIGINT)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)  # never left serving after the test
            raise
    assert shell.returncode == 0, shell.stderr
    assert "event: start" in shell.stdout and "event: done" in shell.stdout, shell.stdout
    with closing(sqlite3.connect(clone / "db.sqlite3")) as db:
        saved = db.execute(
            "SELECT finish_reason, content FROM conversations_turn WHERE role = 'assistant' ORDER BY position"
        ).fetchall()
    assert [reason for reason, _ in saved] == ["stop", "stop"]
    assert saved[1][1].startswith("You sent 1 file:\n\n- **README.md**: a document (text/markdown,"), saved[1][1]
    assert (clone / "media" / "chatstream").is_dir()  # the upload went to MEDIA_ROOT
