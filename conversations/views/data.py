"""What a user owns: all of it as a zip (`GET api/me/export`), or erased
(`DELETE api/me/data`). data/ does the work; docs/data.md says what each holds."""

from django.http import HttpRequest, HttpResponse, HttpResponseBase, JsonResponse, StreamingHttpResponse
from django.utils import timezone
from django.utils.http import content_disposition_header

from ..data.erase import erase_user_data
from ..data.export import audited_export
from ..exceptions import ApiError
from .bodies import json_body
from .errors import api_view


@api_view("GET")
async def export(request: HttpRequest, user) -> HttpResponseBase:
    """A zip streamed as it is made; no Content-Length (its size is not known)."""
    response = StreamingHttpResponse(audited_export(user), content_type="application/zip")
    name = f"chatstream-{user.get_username()}-{timezone.now():%Y%m%d}.zip"
    response["Content-Disposition"] = content_disposition_header(True, name)
    return response


@api_view("DELETE")
async def erase(request: HttpRequest, user) -> HttpResponse:
    """`{"confirm": "<username>", "account"?: bool}`: every answer of the
    user's stopped, then everything they own erased; 200 with the counts."""
    body = json_body(request)
    if body.get("confirm") != user.get_username():
        message = 'Send {"confirm": "<your username>"} to erase everything you own; it cannot be undone.'
        raise ApiError(400, "confirmation_required", message)
    account = body.get("account", False)
    if not isinstance(account, bool):
        raise ApiError(400, "invalid_account", '"account" must be true or false.')
    counts = await erase_user_data(actor=user, subject=user, account=account)
    return JsonResponse({"erased": counts})
