"""What a file is, read from its first bytes: never the client's word.

Images (PNG, JPEG, WebP, GIF) are recognised by their signature and opened
by Pillow for their size; a PDF by its header; text is whatever decodes as
UTF-8 without control characters, and its name only chooses which kind of
text (Markdown, CSV, JSON, source code) it is called. Anything else is not
taken.
"""

import codecs
from dataclasses import dataclass
from pathlib import PurePath
from typing import IO

from ..models import StoredFile

HEAD_BYTES = 64 * 1024  # how much of a file is read to tell text from binary

IMAGE_SIGNATURES = {
    b"\x89PNG\r\n\x1a\n": "image/png",
    b"\xff\xd8\xff": "image/jpeg",
    b"GIF87a": "image/gif",
    b"GIF89a": "image/gif",
}
# Pillow's name for each format it may open here: no other decoder is tried.
PILLOW_FORMATS = {"image/png": "PNG", "image/jpeg": "JPEG", "image/gif": "GIF", "image/webp": "WEBP"}

TEXT_TYPES = {
    ".md": "text/markdown",
    ".markdown": "text/markdown",
    ".csv": "text/csv",
    ".tsv": "text/tab-separated-values",
    ".json": "application/json",
    ".html": "text/html",
    ".css": "text/css",
    ".xml": "text/xml",
    ".yaml": "text/yaml",
    ".yml": "text/yaml",
    ".js": "text/javascript",
    ".ts": "text/x-typescript",
    ".py": "text/x-python",
}
# Control characters text never has (tab, newline, carriage return and form feed are fine).
BINARY_BYTES = bytes(set(range(32)) - {9, 10, 12, 13}) + b"\x7f"


@dataclass(frozen=True)
class FileKind:
    kind: str  # StoredFile.Kind
    content_type: str
    width: int | None = None
    height: int | None = None


def sniff(upload: IO[bytes], name: str) -> FileKind | None:
    """What `upload` holds (read from its start; left at its start), or None
    for anything chatstream does not take."""
    upload.seek(0)
    head = upload.read(HEAD_BYTES)
    upload.seek(0)
    image_type = _image_type(head)
    if image_type is not None:
        return _image(upload, image_type)
    if head.startswith(b"%PDF-"):
        return FileKind(StoredFile.Kind.PDF, "application/pdf")
    if _is_text(head):
        return FileKind(StoredFile.Kind.TEXT, TEXT_TYPES.get(PurePath(name).suffix.lower(), "text/plain"))
    return None


def _image_type(head: bytes) -> str | None:
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "image/webp"
    return next((kind for signature, kind in IMAGE_SIGNATURES.items() if head.startswith(signature)), None)


def _image(upload: IO[bytes], content_type: str) -> FileKind | None:
    """An image Pillow can open as the format its signature claims (its
    header only: the pixels are the model's business), with its size."""
    from PIL import Image, UnidentifiedImageError  # imported by the first image, not by every process

    try:
        with Image.open(upload, formats=[PILLOW_FORMATS[content_type]]) as image:
            width, height = image.size
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError):
        return None
    finally:
        upload.seek(0)
    return FileKind(StoredFile.Kind.IMAGE, content_type, width, height)


def _is_text(head: bytes) -> bool:
    if not head or len(head.translate(None, BINARY_BYTES)) != len(head):
        return False
    decoder = codecs.getincrementaldecoder("utf-8")()  # a character cut at HEAD_BYTES is not an error
    try:
        decoder.decode(head.removeprefix(codecs.BOM_UTF8))
    except UnicodeDecodeError:
        return False
    return True
