"""Files: uploaded (`POST api/files`), described, served and deleted, each
only to its owner (another user's id is a 404, as if it did not exist)."""

import asyncio
import uuid

from django.http import HttpRequest, HttpResponse, HttpResponseBase, JsonResponse

from ..files import serving, storage, uploads
from ..models import StoredFile
from ..serializers import file_json
from ..storage.threads import run_db
from .errors import api_view, not_found, parse_id


@api_view("POST", upload=True)
async def files(request: HttpRequest, user) -> HttpResponse:
    """Take one upload: 201 with what it is."""
    upload = await asyncio.to_thread(uploads.received_file, request)
    return JsonResponse(file_json(await take_upload(upload, user)), status=201)


async def take_upload(upload, user) -> StoredFile:
    """An upload within the user's quota, stored, and its row: the bytes are
    deleted again if the row is not written."""
    await run_db(uploads.refuse_over_quota, user.pk, upload.size or 0)
    stored = await _stored(upload, user.pk)
    try:
        return await run_db(uploads.record, user, stored)
    except BaseException:
        await asyncio.shield(asyncio.to_thread(storage.delete_paths, stored.paths))
        raise


async def _stored(upload, owner_id) -> uploads.Stored:
    """The upload in storage; a client that leaves meanwhile leaves no
    bytes behind (the thread finishes, then its files are deleted)."""
    storing = asyncio.ensure_future(asyncio.to_thread(uploads.store, upload, owner_id))
    try:
        return await asyncio.shield(storing)
    except asyncio.CancelledError:
        storing.add_done_callback(_delete_if_stored)
        raise


def _delete_if_stored(storing: asyncio.Future) -> None:
    if not storing.cancelled() and storing.exception() is None:
        # On the executor's thread, which holds the work: no task to be lost.
        asyncio.get_running_loop().run_in_executor(None, storage.delete_paths, storing.result().paths)


@api_view("GET", "DELETE")
async def file(request: HttpRequest, user, file_id: str) -> HttpResponse:
    found = await run_db(_owned, user, parse_id(file_id, "file"))
    if request.method == "DELETE":
        await run_db(found.delete)  # its bytes go after the commit (files/cleanup.py)
        return HttpResponse(status=204)
    return JsonResponse(file_json(found))


@api_view("GET")
async def file_content(request: HttpRequest, user, file_id: str) -> HttpResponseBase:
    """The file's bytes, as stored, with the type read at upload."""
    found = await run_db(_owned, user, parse_id(file_id, "file"))
    try:
        opened = await asyncio.to_thread(storage.file_storage().open, found.path, "rb")
    except FileNotFoundError:
        raise not_found("file") from None
    response = serving.content_response(found, opened)
    response["Cache-Control"] = "private, max-age=3600"  # the bytes under an id never change
    return response


def _owned(user, pk: uuid.UUID) -> StoredFile:
    try:
        return StoredFile.objects.get(pk=pk, owner_id=user.pk)
    except StoredFile.DoesNotExist:
        raise not_found("file") from None
