"""Everything a user owns, as one zip streamed while it is made: never
whole in memory, nor on disk.

Python's zipfile writes to a stream it cannot seek (each member's sizes and
CRC then follow its data, in a data descriptor, and the central directory
comes last), so the archive is written into `Pipe`, which holds only what
was written since it was last drained: one chunk of a file, one
conversation's JSON. Rows are read a conversation at a time through run_db
and files' bytes a chunk at a time on a thread, so no database connection
is held while the response streams.

    account.json            who, and when the export was made
    conversations/<title>-<id>.json   every turn (every version), files' metadata
    conversations/<title>-<id>.md     the branch shown, to read
    files/<id>-<name>       each stored file's bytes
    feedback.json           the user's ratings of answers
    api_keys.json           names, prefixes and dates (never a hash)
    spend.jsonl             the ledger: one row per model call, tokens and cost
"""

import asyncio
import json
import logging
import re
import zipfile
from collections.abc import AsyncIterator
from typing import Any

from django.contrib.auth.base_user import AbstractBaseUser
from django.utils import timezone

from .. import exports, selectors
from ..files.serving import CHUNK_BYTES
from ..files.storage import file_storage
from ..models import ApiKey, Conversation, Feedback, Spend, StoredFile
from ..storage.threads import run_db
from . import audit

logger = logging.getLogger(__name__)

SPEND_ROWS_PER_READ = 1000


class Pipe:
    """A write-only file for ZipFile: keeps what was written until drained."""

    def __init__(self) -> None:
        self.parts: list[bytes] = []

    def write(self, data: bytes) -> int:
        self.parts.append(bytes(data))
        return len(data)

    def flush(self) -> None:
        pass

    def close(self) -> None:
        pass

    def drain(self) -> bytes:
        data, self.parts = b"".join(self.parts), []
        return data


class ExportZip:
    """One user's zip, as an async iterator of bytes; `counts` says what it
    held once it has been read through."""

    def __init__(self, user: AbstractBaseUser) -> None:
        self.user = user
        self.counts = {"conversations": 0, "files": 0, "feedback": 0, "api_keys": 0, "spend_rows": 0}
        self.pipe = Pipe()
        self.zip = zipfile.ZipFile(self.pipe, "w", zipfile.ZIP_DEFLATED)

    async def __aiter__(self) -> AsyncIterator[bytes]:
        self._text("account.json", await run_db(self._account))
        yield self.pipe.drain()
        for conversation_id in await run_db(self._conversation_ids):
            for name, text in await run_db(self._conversation, conversation_id):
                self._text(name, text)
            yield self.pipe.drain()
        for stored in await run_db(self._files):
            async for chunk in self._file(stored):
                yield chunk
        for name, text in await run_db(self._records):
            self._text(name, text)
            yield self.pipe.drain()
        async for chunk in self._spend():
            yield chunk
        self.zip.close()
        yield self.pipe.drain()

    # --- members ---------------------------------------------------------------------

    def _text(self, name: str, text: str) -> None:
        self.zip.writestr(name, text.encode())

    async def _file(self, stored: StoredFile) -> AsyncIterator[bytes]:
        try:
            opened = await asyncio.to_thread(file_storage().open, stored.path, "rb")
        except OSError:  # its bytes lost from storage: the rest of the zip still comes
            logger.warning("export: the bytes of file %s are missing from storage", stored.pk)
            self.counts["files_missing"] = self.counts.get("files_missing", 0) + 1
            return
        try:
            info = zipfile.ZipInfo(f"files/{stored.pk}-{_safe(stored.name)}", _zip_time(stored.created_at))
            info.compress_type = zipfile.ZIP_DEFLATED
            info.file_size = stored.size  # so zipfile picks ZIP64 itself for a file past 2 GiB
            with self.zip.open(info, "w") as member:
                while chunk := await asyncio.to_thread(opened.read, CHUNK_BYTES):
                    member.write(chunk)
                    yield self.pipe.drain()
        finally:
            await asyncio.to_thread(opened.close)
        self.counts["files"] += 1
        yield self.pipe.drain()

    async def _spend(self) -> AsyncIterator[bytes]:
        with self.zip.open("spend.jsonl", "w", force_zip64=True) as member:
            after = 0
            while rows := await run_db(self._spend_rows, after):
                member.write("".join(json.dumps(row) + "\n" for row in rows).encode())
                self.counts["spend_rows"] += len(rows)
                after = rows[-1]["id"]
                yield self.pipe.drain()

    # --- reads, each on a database thread ---------------------------------------------

    def _account(self) -> str:
        user = self.user
        return _json({"id": str(user.pk), "username": user.get_username(), "exported_at": timezone.now().isoformat()})

    def _conversation_ids(self) -> list:
        return list(
            Conversation.objects.filter(owner_id=self.user.pk).order_by("created_at", "pk").values_list("pk", flat=True)
        )

    def _conversation(self, conversation_id) -> list[tuple[str, str]]:
        """Both renderings of one conversation (exports.py): the JSON with
        every turn, the Markdown with the branch shown."""
        try:
            conversation, shown = selectors.conversation_with_turns(owner=self.user, conversation_id=conversation_id)
        except Conversation.DoesNotExist:  # deleted since the list was read
            return []
        every_turn = list(conversation.turns.select_related("feedback"))
        files = selectors.conversation_files(conversation=conversation)
        name = f"conversations/{exports.file_name(conversation)[:60]}-{conversation.pk}"
        self.counts["conversations"] += 1
        return [
            (f"{name}.json", exports.export_json(conversation, every_turn, files=files)),
            (f"{name}.md", exports.export_markdown(conversation, shown)),
        ]

    def _files(self) -> list[StoredFile]:
        return list(StoredFile.objects.filter(owner_id=self.user.pk).order_by("created_at", "pk"))

    def _records(self) -> list[tuple[str, str]]:
        feedback = [
            {
                "turn_id": str(row.turn_id),
                "conversation_id": str(row.turn.conversation_id),
                "rating": row.rating,
                "comment": row.comment,
                "created_at": row.created_at.isoformat(),
                "updated_at": row.updated_at.isoformat(),
            }
            for row in Feedback.objects.filter(turn__conversation__owner_id=self.user.pk).select_related("turn")
        ]
        keys = [
            {
                "name": key.name,
                "prefix": key.prefix,
                "created_at": key.created_at.isoformat(),
                "last_used_at": _iso(key.last_used_at),
                "revoked_at": _iso(key.revoked_at),
            }
            for key in ApiKey.objects.filter(user_id=self.user.pk).order_by("created_at")
        ]
        self.counts["feedback"], self.counts["api_keys"] = len(feedback), len(keys)
        return [("feedback.json", _json(feedback)), ("api_keys.json", _json(keys))]

    def _spend_rows(self, after: int) -> list[dict[str, Any]]:
        rows = Spend.objects.filter(user_id=self.user.pk, pk__gt=after).order_by("pk")[:SPEND_ROWS_PER_READ]
        return [_spend_json(row) for row in rows.select_related("api_key")]


def _spend_json(row: Spend) -> dict[str, Any]:
    return {
        "id": row.pk,
        "created_at": row.created_at.isoformat(),
        "kind": row.kind,
        "model": row.model,
        "api_key": row.api_key.name if row.api_key else None,
        "conversation_id": str(row.conversation_id) if row.conversation_id else None,
        "turn_id": str(row.turn_id) if row.turn_id else None,
        "tokens_in": row.tokens_in,
        "tokens_cached": row.tokens_cached,
        "tokens_out": row.tokens_out,
        "tokens_estimated": row.tokens_estimated,
        "cost": str(row.cost) if row.cost is not None else None,
    }


def _json(data: Any) -> str:
    return json.dumps(data, ensure_ascii=False, indent=2) + "\n"


def _iso(moment) -> str | None:
    return moment.isoformat() if moment else None


def _safe(name: str) -> str:
    """A file's own name, kept to one path segment inside the zip."""
    return re.sub(r"[\\/\x00-\x1f]+", "_", name).lstrip(".") or "file"


def _zip_time(moment) -> tuple[int, int, int, int, int, int]:
    moment = max(moment, moment.replace(year=1980, month=1, day=1))
    return moment.timetuple()[:6]


async def audited_export(user: AbstractBaseUser) -> AsyncIterator[bytes]:
    """The user's zip, recorded in the audit when it starts (so an export
    cut short is recorded too) and given its counts when it ends."""
    event = await run_db(audit.record, audit.Action.EXPORT, actor=user, subject=user, counts={"complete": 0})
    archive = ExportZip(user)
    async for chunk in archive:
        if chunk:
            yield chunk
    event.counts = {**archive.counts, "complete": 1}
    await run_db(event.save, update_fields=["counts"])
