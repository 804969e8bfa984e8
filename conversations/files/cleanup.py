"""Files' bytes deleted once their rows are: a file deleted through the API,
a conversation (its files go with it, by cascade), a user. The rows go in
the deleting transaction; the bytes after it commits, through the worker,
so a rollback never leaves a row without its bytes and a slow storage never
holds a request. Uploads no message named are deleted after
CHATSTREAM_UPLOAD_TTL_HOURS, by a task queued with each upload.
"""

from datetime import timedelta

from django.db import transaction
from django.db.models.signals import post_delete
from django.dispatch import receiver
from django.utils import timezone

from ..conf import conf
from ..models import StoredFile
from . import storage

try:
    from django.tasks import task  # Django 6.0 and later
except ImportError:
    from django_tasks import task  # type: ignore[no-redef,unused-ignore]  # the backport, on Django 5.2


@task()
def delete_stored_files(paths: list[str]) -> dict[str, int]:
    return {"deleted": storage.delete_paths(paths)}


@task()
def delete_unsent_uploads() -> dict[str, int]:
    """Every upload older than the TTL that no message has named: the rows
    (their bytes follow, by the receiver below)."""
    cutoff = timezone.now() - timedelta(hours=conf.CHATSTREAM_UPLOAD_TTL_HOURS)
    expired = StoredFile.objects.filter(conversation=None, created_at__lt=cutoff)
    deleted = 0
    for stored in expired.iterator():
        deleted += stored.delete()[0]
    return {"deleted": deleted}


def expire_unsent_later(stored: StoredFile) -> None:
    """Queue the sweep for when this upload's TTL has passed (a second after,
    so its own row is among the expired)."""
    run_after = stored.created_at + timedelta(hours=conf.CHATSTREAM_UPLOAD_TTL_HOURS, seconds=1)
    delete_unsent_uploads.using(run_after=run_after).enqueue()


@receiver(post_delete, sender=StoredFile, dispatch_uid="chatstream-file-bytes")
def _delete_bytes_after_commit(sender, instance: StoredFile, using: str, **kwargs) -> None:
    paths = [path for path in (instance.path, instance.text_path) if path]
    transaction.on_commit(lambda: delete_stored_files.enqueue(paths), using=using)
