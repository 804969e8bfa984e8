"""An incremental parser for `text/event-stream` bytes, as the WHATWG HTML
standard defines them (§9.2.6), returning each event's type and data.

The maintained SSE parsers for Python are tied to httpx (httpx-sse) or to a
sync client; the upstream client is aiohttp (chosen by measurement, see
providers/openai.py), so the event-stream grammar is parsed here: lines end in
CR, LF or CRLF, a blank line dispatches, `:` starts a comment, one space after
the colon is dropped, several `data` lines join with LF. Data stays bytes:
orjson parses bytes directly, and multi-byte characters split across reads
are never decoded half-way.
"""

from ..exceptions import UpstreamEventTooLarge

BOM = b"\xef\xbb\xbf"
Event = tuple[bytes, bytes]  # (event type, data)


class SSEParser:
    """Work linear in the bytes fed, however an event is cut into reads: an
    unfinished event's reads are kept as they came and joined once, by the
    read that ends it. (Joining the event so far to each read and splitting
    it again was quadratic: one 200 MB event took 140 s and 1.5 GB.)"""

    def __init__(self, *, max_event_bytes: int = 0) -> None:
        self._unfinished: list[bytes] = []  # the unfinished event's reads; no blank line in them
        self._unfinished_bytes = 0
        self._pending_cr = False  # a CR at a read's end may be half of a CRLF
        self._started = False
        self._max_event_bytes = max_event_bytes  # 0: no limit

    def feed(self, chunk: bytes) -> list[Event]:
        """The events completed by `chunk`, in order. Raises
        UpstreamEventTooLarge once an event is longer than the limit."""
        if not self._started or self._pending_cr or b"\r" in chunk:
            chunk = self._normalised(chunk)  # the hot path's events need none of it
            if not chunk:
                return []
        if self._unfinished:
            # Only the new bytes are searched for the blank line that ends the
            # event, or its two LFs either side of the reads' seam.
            if not (b"\n\n" in chunk or (chunk[:1] == b"\n" and self._unfinished[-1][-1] == 10)):  # 10: LF
                self._unfinished.append(chunk)
                self._unfinished_bytes += len(chunk)
                self._check_size(self._unfinished_bytes)
                return []
            self._unfinished.append(chunk)
            chunk = b"".join(self._unfinished)
            self._unfinished.clear()
        *blocks, rest = chunk.split(b"\n\n")
        if rest:
            self._unfinished.append(rest)
        self._unfinished_bytes = len(rest)
        if self._max_event_bytes and len(chunk) > self._max_event_bytes:
            self._check_size(max(len(block) for block in (*blocks, rest)))
        return [event for block in blocks if (event := parse_block(block)) is not None]

    def _normalised(self, chunk: bytes) -> bytes:
        """`chunk` with its line ends as LF, a trailing CR held for the next read."""
        if not self._started:
            self._started = True
            chunk = chunk.removeprefix(BOM)
        if self._pending_cr:
            chunk = b"\r" + chunk
            self._pending_cr = False
        if chunk.endswith(b"\r"):
            self._pending_cr = True
            chunk = chunk[:-1]
        if b"\r" in chunk:
            chunk = chunk.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        return chunk

    def _check_size(self, size: int) -> None:
        if self._max_event_bytes and size > self._max_event_bytes:
            raise UpstreamEventTooLarge(
                "The model server sent a part of the answer too large to read; the answer was stopped.",
                detail=f"an event of more than {self._max_event_bytes:,} bytes (LLM_MAX_EVENT_BYTES)",
            )


def parse_block(block: bytes) -> Event | None:
    """One event's lines (LF-separated, without the blank line); None when it
    has no data, which the standard says not to dispatch."""
    if block.startswith(b"data: ") and b"\n" not in block:
        return b"message", block[6:]  # the shape of nearly every OpenAI event
    event_type, data = b"message", []
    for line in block.split(b"\n"):
        if not line or line.startswith(b":"):
            continue
        name, colon, value = line.partition(b":")
        if colon and value.startswith(b" "):
            value = value[1:]
        if name == b"data":
            data.append(value)
        elif name == b"event":
            event_type = value
    if not data:
        return None
    return event_type, b"\n".join(data)
