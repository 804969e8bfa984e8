"""A share link's page: the shared branch rendered on the server, for
anyone holding the link, with no script and nothing of the owner's but the
name they chose. Answers are markdown rendered without raw HTML (markdown-it
escapes it, and refuses javascript: links); questions are shown as typed."""

from functools import cache
from typing import TYPE_CHECKING

from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils.safestring import mark_safe

from ..storage.threads import run_db
from .links import shared_by_token

if TYPE_CHECKING:
    from markdown_it import MarkdownIt

# No script at all, styles from the app, images only from the app (none are
# shown yet), and nothing that could carry the token elsewhere.
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; style-src 'self'; img-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)


@cache
def _markdown() -> "MarkdownIt":
    from markdown_it import MarkdownIt  # imported by the first shared page, not by every process

    return MarkdownIt("commonmark", {"html": False}).enable(["table", "strikethrough"])


async def shared_page(request: HttpRequest, token: str) -> HttpResponse:
    link = await run_db(shared_by_token, token)
    if link is None:
        raise Http404("No such link")  # a revoked link, a guess: the same answer
    turns = [{**turn, "html": _rendered(turn)} for turn in link.turns]
    response = render(request, "conversations/shared.html", {"link": link, "turns": turns})
    response["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
    response["X-Robots-Tag"] = "noindex, nofollow"
    response["Referrer-Policy"] = "no-referrer"  # a link followed from the page must not carry the token
    response["Cache-Control"] = "no-store"  # revoked means gone, from every cache too
    return response


def _rendered(turn: dict) -> str:
    if turn["role"] != "assistant":
        return ""
    return mark_safe(_markdown().render(turn["content"]))  # noqa: S308  # markdown-it escapes all HTML
