"""The audit record: one DataEvent for each export, erase, retention sweep
and conversation opened by staff in the admin. Counts, never content."""

import uuid
from collections.abc import Mapping

from django.contrib.auth.base_user import AbstractBaseUser

from ..models import DataEvent

Action = DataEvent.Action


def record(
    action: str,
    *,
    actor: AbstractBaseUser | None,
    subject: AbstractBaseUser | None,
    counts: Mapping[str, int] | None = None,
    conversation_id: uuid.UUID | None = None,
) -> DataEvent:
    return DataEvent.objects.create(
        action=action,
        actor_id=actor.pk if actor is not None else None,
        # Written before an account is deleted: the link empties then, the id stays.
        subject_id=subject.pk if subject is not None else None,
        subject_ref=str(subject.pk) if subject is not None else "",
        counts=dict(counts or {}),
        conversation_id=conversation_id,
    )
