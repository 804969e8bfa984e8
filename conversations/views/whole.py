"""An answer as one JSON object once it has ended (`Accept:
application/json`), for batch clients that want no stream. The answer runs
and is saved as a streamed one is, within the same limits and budgets; the
request follows it as a reader, so a client that leaves before the end
cancels it like any other (saved as `client_disconnected`)."""

from contextlib import aclosing

from django.http import HttpRequest, JsonResponse

from ..live import LiveAnswer
from ..models import Turn
from ..serializers import turn_json
from ..storage.threads import run_db
from ..stream.events import DONE, ERROR
from ..wire.events import NDJSON_CONTENT_TYPE, SSE_CONTENT_TYPE
from .streaming import accepted_quality

# An upstream failure is the gateway's: which one says what went wrong.
ERROR_STATUS = {"upstream_timeout": 504, "server_shutdown": 503}


def wants_whole_answer(request: HttpRequest) -> bool:
    """JSON only when Accept rates it above both streams (curl's */* streams)."""
    json = accepted_quality(request, "application/json")
    return json > 0 and json > max(
        accepted_quality(request, SSE_CONTENT_TYPE), accepted_quality(request, NDJSON_CONTENT_TYPE)
    )


async def whole_answer_response(answer: LiveAnswer | Turn) -> JsonResponse:
    if not isinstance(answer, Turn):
        answer = await finished_turn(answer)
    if answer.status != Turn.Status.FAILED:
        return JsonResponse(turn_json(answer))
    error = {"code": answer.error_code, "message": answer.error_detail, "turn": turn_json(answer)}
    return JsonResponse({"error": error}, status=ERROR_STATUS.get(answer.error_code, 502))


async def finished_turn(answer: LiveAnswer) -> Turn:
    """The answer's row, once it has ended (followed as a reader until then)."""
    try:
        async with aclosing(answer.follow(None)) as events:
            async for kind, _, _ in events:
                if kind in (DONE, ERROR):  # sent once the row is committed
                    break
    finally:
        await answer.close()  # the client left first: the disconnect policy applies
    return await run_db(Turn.objects.get, pk=answer.turn_id)
