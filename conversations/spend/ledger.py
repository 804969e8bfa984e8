"""The spend ledger: what every model call cost, for its user and API key.

Answers, the router's classifier and memory updates each write a `Spend` row
(models.py) when their call ends, however it ends; budgets (budgets.py) read
only these rows. The rows name their conversation and turn by id, not by
foreign key, so deleting a conversation, even while its answer streams,
takes none of its cost with it. An answer's row is written in the same
transaction as its turn and at most once per turn id (a unique constraint,
inserts that conflict are ignored), whichever process saves it.
"""

import logging
import uuid
from decimal import Decimal

from django.db import connection

from ..models import Spend
from ..providers import Completion
from ..storage.rows import RowInsert
from ..stream.answer import Answer, PreparedTurn
from . import pricing

logger = logging.getLogger(__name__)

# Written as the turns are (storage/rows.py): the ORM's INSERT cost ~0.35 ms
# of CPU per answer, on the path every answer takes.
_insert_spend = RowInsert(Spend, unless_present=True)


def price(model: str, *, tokens_in: int | None, tokens_cached: int | None, tokens_out: int | None) -> Decimal | None:
    """What the counts cost (pricing.py); None, logged, if pricing fails: a
    call's row and its turn are saved whatever the prices say."""
    try:
        return pricing.cost(model, tokens_in=tokens_in, tokens_cached=tokens_cached, tokens_out=tokens_out)
    except Exception:
        logger.exception("could not price a call to %s", model)
        return None


def record(
    *,
    kind: str,
    user_id: int,
    model: str,
    tokens_in: int | None,
    tokens_out: int | None,
    tokens_cached: int | None = None,
    estimated: bool = False,
    cost: Decimal | None = None,
    api_key_id: int | None = None,
    conversation_id: uuid.UUID | str | None = None,
    turn_id: uuid.UUID | str | None = None,
) -> None:
    """One call's row, with the `cost` its caller priced (None: the model has
    no price). A call that never reached the model (no counts at all) costs
    nothing and writes nothing."""
    if tokens_in is None and tokens_out is None:
        return
    with connection.cursor() as cursor:
        _insert_spend(  # an answer's second save adds nothing
            cursor,
            user_id=user_id,
            api_key_id=api_key_id,
            kind=kind,
            model=model,
            conversation_id=conversation_id,
            turn_id=turn_id,
            tokens_in=tokens_in,
            tokens_cached=tokens_cached,
            tokens_out=tokens_out,
            tokens_estimated=estimated,
            cost=cost,
        )


def record_answer(prepared: PreparedTurn, answer: Answer) -> None:
    """An answer's row, priced as its turn is (services.record_answer)."""
    record(
        kind=Spend.Kind.ANSWER,
        user_id=prepared.owner_id,
        api_key_id=prepared.api_key_id,
        model=answer.model,
        conversation_id=prepared.conversation_id,
        turn_id=prepared.answer_turn_id,
        tokens_in=answer.tokens_in,
        tokens_cached=answer.tokens_cached,
        tokens_out=answer.tokens_out,
        estimated=answer.tokens_estimated,
        cost=answer.cost,
    )


def record_call(*, kind: str, user_id: int, completion: Completion, **ids: uuid.UUID | str | int | None) -> None:
    """A whole (not streamed) call, such as the classifier's or the memory's,
    with the counts its completion holds (reported, or settled as estimates)."""
    tokens_in, tokens_out, tokens_cached = completion.tokens_in, completion.tokens_out, completion.tokens_cached
    record(
        kind=kind,
        user_id=user_id,
        model=completion.model,
        tokens_in=tokens_in,
        tokens_out=tokens_out,
        tokens_cached=tokens_cached,
        estimated=not completion.usage_reported,
        cost=price(completion.model, tokens_in=tokens_in, tokens_cached=tokens_cached, tokens_out=tokens_out),
        **ids,  # type: ignore[arg-type]
    )
