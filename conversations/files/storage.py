"""Where files' bytes live: Django's storage API, so local disk, S3 or Azure
is the project's choice (django-storages), never a database column.

`STORAGES["chatstream"]` when the project defines it, else its default
storage. Names are chatstream's own (`chatstream/<user>/<uuid>`): nothing
the client sends reaches a path.
"""

import uuid

from django.conf import settings
from django.core.files.storage import Storage, default_storage, storages

ALIAS = "chatstream"


def file_storage() -> Storage:
    return storages[ALIAS] if ALIAS in settings.STORAGES else default_storage


def new_path(owner_id: object, suffix: str = "") -> str:
    return f"chatstream/{owner_id}/{uuid.uuid4().hex}{suffix}"


def delete_paths(paths: list[str]) -> int:
    """Delete these stored files (a missing one is no error): how many went."""
    storage = file_storage()
    deleted = 0
    for path in filter(None, paths):
        if storage.exists(path):
            storage.delete(path)
            deleted += 1
    return deleted
