"""How each door writes an answer's events on the wire.

    events.py        chatstream's own: SSE and NDJSON, one event per relay event
    openai_chunks.py OpenAI's `chat.completion.chunk`s, for the OpenAI door

A `Wire` is what a stream response (views/streaming.py) needs from a format:
its content type, the bytes sent the moment the response starts, and one
event written as bytes, a heartbeat included. The live body and the saved
body are the same for every wire; only the encoding differs.
"""

from typing import Protocol

from ..stream.events import Event


class Wire(Protocol):
    content_type: str
    opening: bytes  # sent at once, before the model has said anything (may be empty)

    def encode(self, event: Event) -> bytes:
        """One relay event (a heartbeat included) as bytes on the wire."""
        ...
