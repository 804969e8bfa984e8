"""A message a guardrail's before() refused: its question is kept with the
reason, and its answer's turn is written at once, failed as
`guardrail_refused` with the same reason, so the conversation's branch ends
where the client was told it ends. No model is called, nothing is priced
and no memory update is queued: nothing is paid for."""

from django.db import connection, transaction

from ..exceptions import GuardrailRefused
from ..models import Turn
from ..storage import sql
from ..storage.rows import RowInsert
from ..stream.answer import PreparedTurn
from ..stream.events import FinishReason

CODE = GuardrailRefused.code

_insert_turn = RowInsert(Turn)


@transaction.atomic
def record_refusal(*, prepared: PreparedTurn, reason: str, trace_id: str, question: bool = True) -> None:
    """`question`: mark the question refused too (a new one; a question asked
    again keeps its earlier answers, and so its place in later prompts)."""
    if question:
        Turn.objects.filter(pk=prepared.user_turn_id).update(error_code=CODE, error_detail=reason)
    with connection.cursor() as cursor:
        if not sql.touch_conversation(cursor, prepared.conversation_id):
            return  # deleted meanwhile
        _insert_turn(
            cursor,
            id=prepared.answer_turn_id,
            conversation_id=prepared.conversation_id,
            position=prepared.answer_position,
            parent=prepared.parent_id,
            role=Turn.Role.ASSISTANT,
            status=Turn.Status.FAILED,
            finish_reason=FinishReason.ERROR,
            error_code=CODE,
            error_detail=reason,
            model_name=prepared.model_name,
            trace_id=trace_id,
            usage_source=Turn.UsageSource.NONE,
            prompt_turns=prepared.prompt_turns,
            prompt_tokens=prepared.prompt_tokens,
            api_key_id=prepared.api_key_id,
        )
