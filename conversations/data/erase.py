"""A user's data erased, at their request (`DELETE api/me/data`) or staff's
(the admin's action on users): their answers still streaming stopped first,
then every conversation (with all that belongs to it), file, API key and the
ledger's links to content; the account too if asked. Recorded in the audit."""

import logging
import uuid
from collections import Counter

from django.contrib.auth.base_user import AbstractBaseUser
from django.db import transaction

from ..live import live_answers
from ..models import ApiKey, Conversation, Spend, StoredFile
from ..storage.threads import run_db
from . import audit, erasing

logger = logging.getLogger(__name__)


async def erase_user_data(*, actor: AbstractBaseUser, subject: AbstractBaseUser, account: bool = False) -> dict:
    """Stop the subject's answers, erase what they own; the counts."""
    subject_id, conversation_ids = subject.pk, await run_db(conversations_of, subject)
    stopped = await stop_answers_in(subject_id, conversation_ids)
    owned = Conversation.objects.filter(owner_id=subject_id)
    erased: Counter = Counter()
    while batch := await run_db(erasing.erase_next_batch, owned):  # each batch a call of its own
        erased += batch
    counts = await run_db(erase_the_rest, actor=actor, subject=subject, account=account, counts=erased)
    # One that started meanwhile (a queued message, taken up when the answer
    # before it was stopped) is stopped now: its turn has nowhere to go, and
    # its cost's row is unlinked like the others.
    if late := await stop_answers_in(subject_id, conversation_ids):
        stopped += late
        await run_db(erasing.unlink_spend, Spend.objects.filter(conversation_id__in=conversation_ids))
    return {**counts, "answers_stopped": stopped}


def conversations_of(user: AbstractBaseUser) -> list[uuid.UUID]:
    return list(Conversation.objects.filter(owner_id=user.pk).values_list("pk", flat=True))


async def stop_answers_in(owner_id: object, conversation_ids: list[uuid.UUID]) -> int:
    """Every answer of the user's being generated in these conversations,
    here or in another process, stopped and saved (to be erased with the
    rest); how many."""
    stopped = 0
    for conversation_id in conversation_ids:
        for generating in await live_answers().generating_in(conversation_id):
            answer = await live_answers().find(uuid.UUID(generating["turn_id"]))
            if answer is not None and answer.owner_id == owner_id:
                await answer.stop()
                stopped += 1
    return stopped


def erase_owned(*, actor: AbstractBaseUser, subject: AbstractBaseUser, account: bool) -> dict:
    """The rows, in one sync call (the admin's): conversations in batches
    (erasing.py), then the rest."""
    counts = erasing.erase_conversations(Conversation.objects.filter(owner_id=subject.pk))
    return erase_the_rest(actor=actor, subject=subject, account=account, counts=counts)


def erase_the_rest(*, actor: AbstractBaseUser, subject: AbstractBaseUser, account: bool, counts: Counter) -> dict:
    """In one transaction, once the conversations are gone: uploads, API
    keys, the ledger's links, the audit row, and the account if asked."""
    subject_id = subject.pk
    with transaction.atomic():
        # Uploads no message named yet: their bytes follow after the commit.
        counts += erasing.counted(StoredFile.objects.filter(owner_id=subject.pk).delete()[1])
        counts += erasing.counted(ApiKey.objects.filter(user_id=subject.pk).delete()[1])
        counts["spend_rows_unlinked"] += erasing.unlink_spend(Spend.objects.filter(user_id=subject.pk))
        result = dict(sorted(counts.items())) | {"account": account}
        audit.record(audit.Action.ERASE, actor=actor, subject=subject, counts=counts)
        if account:
            subject.delete()  # its ledger rows go with it (Spend.user cascades)
    logger.info("user %s's data erased by %s: %s", subject_id, actor.pk, result)
    return result
