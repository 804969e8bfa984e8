"""Share links: made from the branch a conversation shows (a snapshot),
listed with the conversation, found by their token, revoked by deleting.

A token is 256 random bits; a guess is a 404 like any other missing page.
It is found through the unique index, then compared in constant time, so
no timing says how much of a guess was right.
"""

import hmac
import re
import secrets
import uuid
from typing import Any

from django.contrib.auth.base_user import AbstractBaseUser

from .. import selectors
from ..models import SharedLink, Turn

DISPLAY_NAME_MAX_CHARS = 100
# What secrets.token_urlsafe makes: base64url, 43 characters for 32 bytes.
_TOKEN = re.compile(r"[A-Za-z0-9_-]{43}")


def share(
    *, owner: AbstractBaseUser, conversation_id: uuid.UUID, include_reasoning: bool, display_name: str
) -> SharedLink:
    """A new link to the conversation's shown branch as it is now (its saved
    turns; an answer still streaming is not in it). Raises
    Conversation.DoesNotExist for a missing or foreign id."""
    conversation, turns = selectors.conversation_with_turns(owner=owner, conversation_id=conversation_id)
    return SharedLink.objects.create(
        conversation=conversation,
        token=secrets.token_urlsafe(32),
        title=conversation.title,
        display_name=display_name,
        include_reasoning=include_reasoning,
        turns=[_shared_turn(turn, include_reasoning) for turn in turns],
    )


def _shared_turn(turn: Turn, include_reasoning: bool) -> dict[str, Any]:
    """What the page shows of a turn: never its ids, the owner, costs or traces."""
    shared = {
        "role": turn.role,
        "content": turn.content,
        "refusal": turn.refusal,
        "model": turn.model_name if turn.role == Turn.Role.ASSISTANT else "",
        "files": [file["name"] for file in turn.files],
        "tools": [call["name"] for call in turn.tool_calls],
        "created_at": turn.created_at.isoformat(),
    }
    if include_reasoning:
        shared["reasoning"] = turn.reasoning
    return shared


def is_token(text: str) -> bool:
    return _TOKEN.fullmatch(text) is not None


def links_of(conversation_id: uuid.UUID) -> list[SharedLink]:
    return list(SharedLink.objects.filter(conversation_id=conversation_id))


def revoke(*, owner: AbstractBaseUser, conversation_id: uuid.UUID, token: str | None) -> int:
    """Delete the conversation's link with this token, or all of its links:
    how many were deleted. Their pages are 404 from then on."""
    links = SharedLink.objects.filter(conversation_id=conversation_id, conversation__owner_id=owner.pk)
    if token is not None:
        links = links.filter(token=token)
    deleted, _ = links.delete()
    return deleted


def shared_by_token(token: str) -> SharedLink | None:
    if not is_token(token):  # nothing was ever made so: no query (a NUL would not even reach the database)
        return None
    link = SharedLink.objects.filter(token=token).first()
    if link is None or not hmac.compare_digest(link.token.encode(), token.encode()):
        return None
    return link
