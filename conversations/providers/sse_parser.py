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

BOM = b"\xef\xbb\xbf"
Event = tuple[bytes, bytes]  # (event type, data)


class SSEParser:
    def __init__(self) -> None:
        self._buffer = b""
        self._pending_cr = False  # a CR at a read's end may be half of a CRLF
        self._started = False

    def feed(self, chunk: bytes) -> list[Event]:
        """The events completed by `chunk`, in order."""
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
        *blocks, self._buffer = (self._buffer + chunk).split(b"\n\n")
        return [event for block in blocks if (event := parse_block(block)) is not None]


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
