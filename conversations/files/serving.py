"""A stored file's bytes as a response, the same wherever they are served:
to their owner by the API (views/files.py) and to staff by the admin
(admin_files.py). Images open inline; every other type is a download, so a
file never runs as a page of the app's origin."""

import asyncio
from collections.abc import AsyncIterator

from django.core.files import File
from django.http import StreamingHttpResponse
from django.utils.http import content_disposition_header

from ..models import StoredFile

CHUNK_BYTES = 256 * 1024
INLINE_TYPES = {"image/png", "image/jpeg", "image/gif", "image/webp"}


def content_response(found: StoredFile, opened: File) -> StreamingHttpResponse:
    """`opened` (found's bytes, opened from storage) streamed with the type
    read at upload; closed with the response."""
    response = StreamingHttpResponse(Chunks(opened), content_type=found.content_type)
    inline = found.content_type in INLINE_TYPES
    response["Content-Disposition"] = content_disposition_header(not inline, found.name) or "attachment"
    response["Content-Length"] = str(found.size)
    response["X-Content-Type-Options"] = "nosniff"
    response["Content-Security-Policy"] = "default-src 'none'; sandbox"
    return response


class Chunks:
    """The file's bytes, read on a thread a chunk at a time (a storage may
    be a network away), never all in memory; closed with the response,
    however it ends."""

    def __init__(self, opened) -> None:
        self.opened = opened

    async def __aiter__(self) -> AsyncIterator[bytes]:
        while chunk := await asyncio.to_thread(self.opened.read, CHUNK_BYTES):
            yield chunk

    def close(self) -> None:
        self.opened.close()
