"""Share links to a conversation: made (`POST …/share`) and revoked
(`DELETE …/share`) by its owner; the page itself is sharing/page.py."""

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.urls import reverse

from ..exceptions import ApiError
from ..models import Conversation, SharedLink
from ..sharing import links
from ..storage.threads import run_db
from .bodies import json_body
from .errors import api_view, not_found, parse_id


@api_view("POST", "DELETE")
async def share(request: HttpRequest, user, conversation_id: str) -> HttpResponse:
    """POST `{"include_reasoning"?, "display_name"?}`: 201 with the new link's
    URL. DELETE `{"token"?}`: that link, or every link of the conversation,
    revoked (204)."""
    pk = parse_id(conversation_id)
    body = json_body(request)
    try:
        if request.method == "DELETE":
            await run_db(_revoke, user, pk, _token(body))
            return HttpResponse(status=204)
        link = await run_db(
            links.share,
            owner=user,
            conversation_id=pk,
            include_reasoning=_flag(body, "include_reasoning"),
            display_name=_display_name(body),
        )
    except Conversation.DoesNotExist:
        raise not_found() from None
    return JsonResponse(shared_link_json(request, link), status=201)


def shared_link_json(request: HttpRequest, link: SharedLink) -> dict:
    return {
        "id": str(link.pk),
        "token": link.token,
        "url": request.build_absolute_uri(reverse("conversations:shared", args=[link.token])),
        "display_name": link.display_name,
        "include_reasoning": link.include_reasoning,
        "turns": len(link.turns),
        "created_at": link.created_at.isoformat(),
    }


def _revoke(user, conversation_id, token: str | None) -> None:
    if not Conversation.objects.filter(pk=conversation_id, owner_id=user.pk).exists():
        raise Conversation.DoesNotExist
    if token is not None and not links.is_token(token):
        raise not_found("link")  # no link was ever made with it
    if not links.revoke(owner=user, conversation_id=conversation_id, token=token) and token is not None:
        raise not_found("link")


def _flag(body: dict, name: str) -> bool:
    value = body.get(name, False)
    if not isinstance(value, bool):
        raise ApiError(400, f"invalid_{name}", f'"{name}" must be true or false.')
    return value


def _display_name(body: dict) -> str:
    name = body.get("display_name", "")
    if not isinstance(name, str) or len(name) > links.DISPLAY_NAME_MAX_CHARS or "\x00" in name:
        limit = links.DISPLAY_NAME_MAX_CHARS
        raise ApiError(400, "invalid_display_name", f'"display_name" must be text of up to {limit} characters.')
    return name.strip()


def _token(body: dict) -> str | None:
    token = body.get("token")
    if token is not None and not isinstance(token, str):
        raise ApiError(400, "invalid_token", '"token" must be a string.')
    return token
