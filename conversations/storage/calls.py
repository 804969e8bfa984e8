"""One unit of database work on a database thread, and how the event loop
breaks it off when the database stops answering.

A thread blocked reading from a database that hangs (a stalled network, a
server that stopped) would wait for ever: neither libpq nor psycopg bounds a
query from the client's side, and SQLite's busy wait ends only at its own
timeout. The caller gives up after CHATSTREAM_DB_TIMEOUT_SECONDS; then the
call's connection is broken under it (its socket shut down, or SQLite's
`interrupt()`), so the call fails at once and its thread is free again.
"""

import contextlib
import os
import socket
import threading
import time
from typing import Any

from django.db import DEFAULT_DB_ALIAS, OperationalError, connections

from .. import state

# After a failed attempt to connect, calls that would need a new connection
# fail at once for this long rather than each waiting as long again: a
# database that refuses connections answered requests queued behind a few
# threads only after 20 s.
REFUSED_SECONDS = 2.0

_refused_at = -REFUSED_SECONDS


class Call:
    """A call's place on its thread: the thread's connections while it runs."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._wrappers: list[Any] = []
        self._running = False
        self._abandoned = False

    def started(self) -> None:
        """On the database thread, before the work: refuse it if its caller has
        gone, or if it would connect to a database that just refused to."""
        if _connection_refused_lately() and connections[DEFAULT_DB_ALIAS].connection is None:
            raise OperationalError("the database refused a connection moments ago")
        with self._lock:
            if self._abandoned:
                raise OperationalError("the caller stopped waiting for the database")
            self._wrappers = [connections[alias] for alias in connections]
            self._running = True

    def failed(self) -> None:
        """On the database thread, the work raised a DatabaseError."""
        if connections[DEFAULT_DB_ALIAS].connection is None:  # it could not connect
            _note_refused()

    def finished(self) -> None:
        with self._lock:
            self._running = False

    def break_off(self) -> None:
        """From the event loop: the caller gives up. A call not yet started
        never starts; a running one fails at its next read or write."""
        with self._lock:
            self._abandoned = True
            if self._running:
                for wrapper in self._wrappers:
                    _interrupt(wrapper)


@state.forgotten_when()
def forget_refusal() -> None:
    global _refused_at
    _refused_at = -REFUSED_SECONDS


def _connection_refused_lately() -> bool:
    return time.monotonic() - _refused_at < REFUSED_SECONDS


def _note_refused() -> None:
    global _refused_at
    _refused_at = time.monotonic()


def _interrupt(wrapper: Any) -> None:
    raw = wrapper.connection
    if raw is None:
        return
    with contextlib.suppress(Exception):  # closed meanwhile: nothing to break
        if wrapper.vendor == "sqlite":
            raw.interrupt()
        elif wrapper.vendor == "postgresql":
            # A copy of the descriptor: shutting it down ends the connection
            # for libpq too, closing the copy leaves libpq's own to psycopg.
            with socket.socket(fileno=os.dup(raw.pgconn.socket)) as sock:
                sock.shutdown(socket.SHUT_RDWR)
