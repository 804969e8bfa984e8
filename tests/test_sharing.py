"""Share links: a read-only page of a conversation's branch as it was when
shared, for anyone holding the link, revoked at once, never guessed."""

import httpx
import pytest

from conversations.models import SharedLink
from harness.fake_upstream import Behaviour, reasoning_script

from .files import error_code
from .helpers import send


@pytest.fixture
def shared_conversation(alice, upstream):
    upstream.behaviour = Behaviour(script=reasoning_script(["Secret ", "thoughts."], ["**Bold** <script>x()</script>"]))
    conversation_id = alice.new_conversation()
    send(alice, conversation_id, "Is 1 < 2?\nSay so.")
    return conversation_id


def share(api_user, conversation_id: str, **body) -> httpx.Response:
    return api_user.client.post(f"/api/conversations/{conversation_id}/share", json=body)


def page(live, url: str) -> httpx.Response:
    """The link as someone without an account opens it."""
    with httpx.Client(base_url=live.url) as anonymous:
        return anonymous.get(httpx.URL(url).raw_path.decode())


def test_a_link_shows_the_branch_to_anyone_without_the_owner(live, alice, shared_conversation):
    made = share(alice, shared_conversation, display_name="A. Colleague")
    assert made.status_code == 201, made.text
    link = made.json()
    assert link["turns"] == 2 and link["include_reasoning"] is False and link["url"].endswith(link["token"])
    shown = page(live, link["url"])
    assert shown.status_code == 200
    html = shown.text
    assert "Is 1 &lt; 2?<br>Say so." in html  # a question as typed, escaped
    assert "<strong>Bold</strong> &lt;script&gt;x()&lt;/script&gt;" in html  # markdown, never raw HTML
    assert "A. Colleague" in html and "alice" not in html and "Secret" not in html
    assert shared_conversation not in html  # no ids of the owner's
    assert shown.headers["X-Robots-Tag"] == "noindex, nofollow" and '<meta name="robots" content="noindex' in html
    assert shown.headers["Referrer-Policy"] == "no-referrer" and shown.headers["Cache-Control"] == "no-store"
    assert "script-src" not in shown.headers["Content-Security-Policy"] and "<script" not in html


def test_reasoning_is_shown_only_when_chosen(live, alice, shared_conversation):
    link = share(alice, shared_conversation, include_reasoning=True).json()
    assert "Secret thoughts." in page(live, link["url"]).text


def test_a_link_is_a_snapshot(live, alice, upstream, shared_conversation):
    link = share(alice, shared_conversation).json()
    send(alice, shared_conversation, "A later question")
    assert "A later question" not in page(live, link["url"]).text


def test_revoking_makes_the_page_404_at_once(live, alice, shared_conversation):
    first, second = (share(alice, shared_conversation).json() for _ in range(2))
    listed = alice.client.get(f"/api/conversations/{shared_conversation}").json()["shared_links"]
    assert [link["token"] for link in listed] == [second["token"], first["token"]]
    revoked = alice.client.request(
        "DELETE", f"/api/conversations/{shared_conversation}/share", json={"token": first["token"]}
    )
    assert revoked.status_code == 204
    assert page(live, first["url"]).status_code == 404 and page(live, second["url"]).status_code == 200
    assert alice.client.delete(f"/api/conversations/{shared_conversation}/share").status_code == 204  # all
    assert page(live, second["url"]).status_code == 404 and not SharedLink.objects.exists()


def test_a_guessed_or_mangled_token_is_404(live, alice, shared_conversation):
    token = share(alice, shared_conversation).json()["token"]
    for guess in ("x" * len(token), token[:-1], token + "a", token.upper(), "%00"):
        assert page(live, f"/shared/{guess}").status_code == 404
    for guess in ("x" * len(token), "\x00"):
        url = f"/api/conversations/{shared_conversation}/share"
        revoked = alice.client.request("DELETE", url, json={"token": guess})
        assert (revoked.status_code, error_code(revoked)) == (404, "link_not_found")


def test_only_the_owner_shares_or_revokes(alice, bob, shared_conversation):
    assert error_code(share(bob, shared_conversation)) == "conversation_not_found"
    token = share(alice, shared_conversation).json()["token"]
    gone = bob.client.request("DELETE", f"/api/conversations/{shared_conversation}/share", json={"token": token})
    assert gone.status_code == 404 and SharedLink.objects.count() == 1


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"include_reasoning": "yes"}, "invalid_include_reasoning"),
        ({"display_name": "x" * 101}, "invalid_display_name"),
        ({"display_name": 7}, "invalid_display_name"),
    ],
)
def test_a_wrong_body_is_a_400(alice, shared_conversation, body, code):
    response = share(alice, shared_conversation, **body)
    assert (response.status_code, error_code(response)) == (400, code)


def test_a_link_goes_with_its_conversation(live, alice, shared_conversation):
    link = share(alice, shared_conversation).json()
    assert alice.client.delete(f"/api/conversations/{shared_conversation}").status_code == 204
    assert page(live, link["url"]).status_code == 404
