"""A message's files: checked when it is sent, claimed for its conversation
in the transaction that saves it, and found in storage for its prompt."""

import uuid
from typing import Any

from ..catalogue import ModelEntry
from ..exceptions import ApiError
from ..models import StoredFile
from ..providers.base import Message
from ..serializers import file_summary
from . import parts


def file_not_found() -> ApiError:
    return ApiError(404, "file_not_found", "No file with that id belongs to you (uploads are kept a day unless sent).")


def attachable(*, owner_id: int, conversation_id: uuid.UUID, ids: tuple[uuid.UUID, ...]) -> tuple[dict, ...]:
    """The files a message names, as its turn keeps them (in the order
    named): 404 for any that is not the sender's, 400 for one sent in
    another conversation already (its life is that conversation's)."""
    found = {file.pk: file for file in StoredFile.objects.filter(pk__in=ids, owner_id=owner_id)}
    if len(found) != len(ids):
        raise file_not_found()
    elsewhere = [file.name for file in found.values() if file.conversation_id not in (None, conversation_id)]
    if elsewhere:
        raise ApiError(
            400,
            "file_in_another_conversation",
            f"{elsewhere[0]!r} was sent in another conversation; upload it again to send it here.",
        )
    return tuple(file_summary(found[pk]) for pk in ids)


def claim(*, owner_id: int, conversation_id: uuid.UUID, files: tuple[dict, ...]) -> None:
    """Make the message's files its conversation's, in the transaction that
    saves it: one deleted or expired since it was checked fails the message
    (404, and the transaction rolls back)."""
    ids = [file["id"] for file in files]
    mine = StoredFile.objects.filter(pk__in=ids, owner_id=owner_id)
    mine.filter(conversation=None).update(conversation_id=conversation_id)
    if mine.filter(conversation_id=conversation_id).count() != len(ids):
        raise file_not_found()


def refuse_images_unseen(model: ModelEntry, *, images: bool) -> None:
    if images and not model.vision:
        raise ApiError(
            400,
            "model_cannot_see_images",
            f"{model.name!r} cannot see images; choose a model with vision (GET api/models) or send no image.",
        )


def sends_images(files: tuple[dict, ...] | list[dict]) -> bool:
    return any(file["kind"] == StoredFile.Kind.IMAGE for file in files)


def located(messages: list[Message]) -> list[Message]:
    """The prompt's file placeholders told where each file is stored (a
    file deleted since is told nothing, and becomes a note)."""
    ids = {part["file"]["id"] for message in messages for part in parts.placeholders(message)}
    if not ids:
        return messages
    rows = StoredFile.objects.filter(pk__in=ids).values_list("pk", "path", "text_path")
    where: dict[str, Any] = {str(pk): (path, text_path) for pk, path, text_path in rows}
    return parts.located(messages, where)
