"""An upload taken in: its size held to the limit as it streams, its type
read from its content, its bytes stored, a PDF's text read once, and its row
written within the owner's quota.

The view (views/files.py) runs these steps: parsing and storing on a thread
of their own (file I/O, perhaps a network storage), the row through run_db.
"""

import codecs
import os
from dataclasses import dataclass, field

from django.contrib.auth import get_user_model
from django.core.files.base import ContentFile
from django.core.files.uploadedfile import UploadedFile
from django.core.files.uploadhandler import TemporaryFileUploadHandler
from django.db import transaction
from django.db.models import Sum

from ..conf import conf
from ..exceptions import ApiError
from ..models import StoredFile
from . import cleanup, kinds, pdf, storage
from .limits import file_too_large

# A document's text kept for the model: past any prompt budget (about 250k tokens).
MAX_TEXT_CHARS = 1_000_000
NAME_MAX_CHARS = 255


class LimitedUploadHandler(TemporaryFileUploadHandler):
    """Django's upload to a temporary file (memory stays flat whatever the
    size), stopped as soon as the file passes CHATSTREAM_MAX_FILE_BYTES: a
    chunked body announces no length to refuse it by."""

    def new_file(self, *args, **kwargs) -> None:
        self.received = 0
        super().new_file(*args, **kwargs)

    def receive_data_chunk(self, raw_data: bytes, start: int) -> bytes | None:
        self.received += len(raw_data)
        if self.received > conf.CHATSTREAM_MAX_FILE_BYTES:
            self.file.close()
            raise file_too_large()
        return super().receive_data_chunk(raw_data, start)


def received_file(request) -> UploadedFile:
    """The request's one `file` part (the multipart body parsed on this
    thread, to a temporary file)."""
    files = request.FILES.getlist("file")
    if len(files) != 1:
        raise ApiError(400, "no_file", 'Send one file as the multipart field "file".')
    return files[0]


@dataclass
class Stored:
    """An upload's bytes (and a document's text) in storage: what its row records."""

    name: str
    kind: str
    content_type: str
    size: int
    path: str
    width: int | None = None
    height: int | None = None
    text_path: str = ""
    text_chars: int = 0
    pages: int | None = None
    pages_read: int | None = None
    paths: list[str] = field(default_factory=list)  # everything written, to delete if the row is not

    def row_fields(self) -> dict:
        fields = dict(vars(self))
        del fields["paths"]
        return fields


def store(upload: UploadedFile, owner_id: object) -> Stored:
    """Sniff, read and store an upload (blocking: on a thread). ApiError 415
    for a type not taken, 422 for a PDF that cannot be read."""
    name = display_name(upload.name or "")
    found = kinds.sniff(upload, name)
    if found is None:
        raise ApiError(
            415, "unsupported_file_type", "Send an image (PNG, JPEG, WebP, GIF), a PDF or a UTF-8 text file."
        )
    stored = Stored(name, found.kind, found.content_type, upload.size or 0, "", found.width, found.height)
    if found.kind == StoredFile.Kind.PDF:
        _read_pdf(upload, stored, owner_id)
    elif found.kind == StoredFile.Kind.TEXT:
        stored.text_chars = _count_chars(upload)
    files = storage.file_storage()
    stored.path = files.save(storage.new_path(owner_id), upload)
    stored.paths.insert(0, stored.path)
    return stored


def _read_pdf(upload: UploadedFile, stored: Stored, owner_id: object) -> None:
    """A PDF's text, read once now (in a child process, within the page and
    time limits) and kept beside it: every prompt that carries the file reads
    that, never the PDF."""
    try:
        read = pdf.pdf_text(
            upload.temporary_file_path(),  # type: ignore[attr-defined]  # LimitedUploadHandler's files have one
            max_pages=conf.CHATSTREAM_PDF_MAX_PAGES,
            timeout=conf.CHATSTREAM_PDF_TIMEOUT_SECONDS,
            max_chars=MAX_TEXT_CHARS,
        )
    except pdf.UnreadablePdf as unreadable:
        raise ApiError(422, "unreadable_file", unreadable.message, details={"reason": unreadable.code}) from None
    stored.pages, stored.pages_read, stored.text_chars = read.pages, read.pages_read, len(read.text)
    stored.text_path = storage.file_storage().save(storage.new_path(owner_id, ".txt"), ContentFile(read.text.encode()))
    stored.paths.append(stored.text_path)


def _count_chars(upload: UploadedFile) -> int:
    """A text file's length in characters (undecodable bytes count as one
    replacement character each, as the model will be given them)."""
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    upload.seek(0)
    chars = sum(len(decoder.decode(chunk)) for chunk in upload.chunks())
    upload.seek(0)
    return min(chars + len(decoder.decode(b"", final=True)), MAX_TEXT_CHARS)


def display_name(name: str) -> str:
    """The client's name for the file, for display only: its last path
    part, without control characters, at most 255 characters."""
    base = os.path.basename(name.replace("\\", "/"))
    cleaned = "".join(ch for ch in base if ch.isprintable()).strip()
    return (cleaned or "file")[-NAME_MAX_CHARS:]


# --- the quota and the row (database threads) -----------------------------------------


def stored_bytes(owner_id: int) -> int:
    return StoredFile.objects.filter(owner_id=owner_id).aggregate(total=Sum("size"))["total"] or 0


def refuse_over_quota(owner_id: int, adding: int) -> None:
    used = stored_bytes(owner_id)
    quota = conf.CHATSTREAM_USER_FILE_QUOTA_BYTES
    if used + adding > quota:
        raise ApiError(
            413,
            "quota_exceeded",
            f"Your files take {used} of your {quota} bytes; this one would pass that. Delete some first.",
            details={"used": used, "quota": quota},
        )


@transaction.atomic
def record(owner, stored: Stored) -> StoredFile:
    """The upload's row, within the owner's quota: the owner's row is locked
    first, so two uploads at once cannot both fit in the same space."""
    list(get_user_model().objects.select_for_update().filter(pk=owner.pk).values_list("pk"))
    refuse_over_quota(owner.pk, stored.size)
    row = StoredFile.objects.create(owner=owner, **stored.row_fields())
    cleanup.expire_unsent_later(row)  # queued in the same transaction: no row without its sweep
    return row
