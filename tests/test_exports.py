"""The Markdown export holds what users and the model wrote, rendered by a
real CommonMark renderer (markdown-it-py) as other tools would render it:
their Markdown stays Markdown, never HTML or the file's own structure."""

import json
import re

import pytest
from django.contrib.auth import get_user_model
from markdown_it import MarkdownIt

from conversations import selectors
from conversations.exports import export_json, export_markdown
from conversations.models import Conversation, StoredFile, Turn
from conversations.serializers import file_summary
from harness.fake_upstream import Behaviour

from .files import upload
from .helpers import exchange, send, tool_loop_answer

HOSTILE = (
    "Hi <script>alert(1)</script> and <img src=x onerror=alert(2)>\n"
    "\n"
    "## Assistant (gpt-4.1)\n"
    "\n"
    "You\n"
    "===\n"
    "\n"
    "<!-- a comment --> <https://example.com>\n"
    "> ## You\n"
    "- ## Assistant\n"
)
ANSWER = (
    "Here is a page:\n\n"
    '```html\n<div onclick="x">a < b</div>\n# not a heading\n```\n\n'
    "</details>\n\n"
    "# Summary\n\n"
    "Plain **bold**, a list:\n\n- one\n- two\n\n"
    "```\nleft open <script>alert(3)</script>\n## You"
)


def rendered(markdown: str) -> str:
    return MarkdownIt("commonmark").render(markdown)  # raw HTML on, as CommonMark has it


def headings(html: str, levels: str = "12") -> list[str]:
    return re.findall(rf"<h[{levels}]>(.*?)</h[{levels}]>", html)


def test_the_markdown_export_cannot_become_html_or_forge_turns(alice, upstream):
    upstream.behaviour = Behaviour(
        script=[{"reasoning_content": "I think </details><script>alert(4)</script>"}, {"content": ANSWER}]
    )
    conversation_id = alice.new_conversation()
    send(alice, conversation_id, HOSTILE)
    alice.client.patch(f"/api/conversations/{conversation_id}", json={"title": "<img src=y onerror=alert(5)>"})
    markdown = alice.client.get(f"/api/conversations/{conversation_id}/export", params={"format": "md"}).text
    html = rendered(markdown)

    assert not re.search(r"<(script|img|div|!--)", html), html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html and "&lt;img src=x onerror=alert(2)&gt;" in html
    # The title and the turns' headers are the only headings of levels 1 and 2.
    assert headings(html) == ["&lt;img src=y onerror=alert(5)&gt;", "You", "Assistant (fake-model)"]
    assert "<h4>Assistant (gpt-4.1)</h4>" in html and "<h3>Summary</h3>" in html  # their own, two levels down
    assert html.count("</details>") == 1  # only the export's own
    # Still Markdown: code kept as written, the rest rendered.
    assert (
        '<code class="language-html">&lt;div onclick=&quot;x&quot;&gt;a &lt; b&lt;/div&gt;\n# not a heading\n' in html
    )
    assert "<strong>bold</strong>" in html and "<li>two</li>" in html
    assert markdown.rstrip().endswith("## You\n```")  # the fence it left open is closed in its own turn


@pytest.mark.parametrize("field", ["content", "reasoning", "refusal"])
@pytest.mark.parametrize(
    "text",
    [
        "- item\n  ```\n<script>alert(1)</script>",  # an indented fence ends with its list item
        "> ```\n<script>alert(1)</script>",  # ... or its quote
        "```\na\n\t```\n<script>alert(1)</script>\n```",  # a tab-indented line does not close a fence
        "```js`\n<script>alert(1)</script>",  # a backtick fence's info string has no backtick
        "text\r<script>alert(1)</script>\r## You",  # a lone CR ends a line too
    ],
)
def test_fences_a_renderer_would_not_see_are_not_trusted(field, text):
    answer = Turn(role=Turn.Role.ASSISTANT, **{field: text})  # not saved: the export reads what it is given
    html = rendered(export_markdown(Conversation(title="T"), [answer]))
    assert "<script>" not in html and headings(html) == ["T", "Assistant"], html


@pytest.fixture
def tool_answer(owner, settings) -> Turn:
    settings.LLM_PRICES = {"m-2": {"input": 1, "output": 4}}
    return tool_loop_answer(owner, decider=get_user_model().objects.create_user("alice"))


def exported(turn: Turn, export) -> str:
    conversation = turn.conversation
    turns = list(conversation.turns.order_by("position"))
    if export is export_json:
        return export_json(conversation, turns, files=selectors.conversation_files(conversation=conversation))
    return export_markdown(conversation, turns)


def test_the_markdown_export_shows_tool_calls_decisions_and_results_in_order(tool_answer):
    markdown = exported(tool_answer, export_markdown)
    pieces = [
        "Let me work it out.",
        "**Tool call** `add`",
        '"a": 2',
        "**Tool call** `lookup_order`",
        "**Denied** by alice at ",
        ": Not today",
        "**Result** of `add` (12 ms):",
        "<script>alert(1)</script>5",  # in a code block: text, never HTML
        "**Error** from `lookup_order` (0 ms):",
        "_Model call 2_",
        "Now the weather.",
        "**Error** from `weather` (30000 ms):",
        "Timed out <b>badly</b>",
        "_Model call 3_",
        "2 + 3 = 5",
    ]
    places = [markdown.find(piece) for piece in pieces]
    assert -1 not in places and places == sorted(places), markdown
    html = rendered(markdown)
    assert "<script>" not in html and "<b>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;5" in html


def test_the_json_export_holds_tool_calls_results_and_decisions(tool_answer):
    document = json.loads(exported(tool_answer, export_json))
    answer = document["turns"][1]
    assert [call["name"] for call in answer["tool_calls"]] == ["add", "lookup_order", "weather"]
    assert answer["tool_results"][0] == {
        "id": "call_1",
        "name": "add",
        "output": "<script>alert(1)</script>5",
        "duration_ms": 12,
    }
    assert answer["tool_results"][2]["error"] == "Timed out <b>badly</b>"
    [decision] = answer["approvals"]
    assert (decision["id"], decision["approved"], decision["decided_by"], decision["reason"]) == (
        "call_2",
        False,
        "alice",
        "Not today",
    )


def a_file(conversation: Conversation | None, owner, name: str, content_type: str, size: int) -> StoredFile:
    """A file's row; the exports never read its bytes."""
    kind = content_type.split("/")[0] if content_type.startswith("image/") else "pdf"
    return StoredFile.objects.create(
        owner=owner, conversation=conversation, name=name, kind=kind, content_type=content_type, size=size, path="x"
    )


@pytest.fixture
def with_files(owner, conversation) -> tuple[Conversation, list[StoredFile]]:
    """A message sent with an image, a PDF and a file deleted since (its name hostile)."""
    cat = a_file(conversation, owner, "cat.png", "image/png", 12_345)
    report = a_file(conversation, owner, "report.pdf", "application/pdf", 1_250_000)
    a_file(None, owner, "unsent.png", "image/png", 10)  # the owner's, in no conversation
    gone = {**file_summary(cat), "id": "11111111-1111-1111-1111-111111111111", "name": "<img src=x onerror=1>.png"}
    exchange(owner, conversation, "What do these say?")
    Turn.objects.filter(role=Turn.Role.USER).update(files=[file_summary(cat), file_summary(report), gone])
    return conversation, [cat, report]


def test_the_json_export_carries_the_conversations_files_and_each_messages(with_files):
    conversation, files = with_files
    turns = list(conversation.turns.order_by("position"))
    stored = selectors.conversation_files(conversation=conversation)
    document = json.loads(export_json(conversation, turns, files=stored))
    assert [entry["name"] for entry in document["files"]] == ["cat.png", "report.pdf"]
    assert document["files"][1] == {
        "id": str(files[1].pk),
        "name": "report.pdf",
        "size": 1_250_000,
        "content_type": "application/pdf",
        "kind": "pdf",
        "width": None,
        "height": None,
        "text_chars": 0,
        "created_at": files[1].created_at.isoformat(),
        "conversation_id": str(conversation.pk),
    }
    message, answer = document["turns"]
    assert [entry["name"] for entry in message["files"]] == ["cat.png", "report.pdf", "<img src=x onerror=1>.png"]
    assert answer["files"] == []


def test_the_markdown_export_names_a_messages_files_under_its_text(with_files):
    conversation, _ = with_files
    markdown = export_markdown(conversation, list(conversation.turns.order_by("position")))
    attached = (
        "Attached: cat.png (image/png, 12 KB), report.pdf (application/pdf, 1.2 MB), "
        "&lt;img src=x onerror=1>.png (image/png, 12 KB)"  # as the module writes every `<`
    )
    assert f"## You\n\nWhat do these say?\n\n{attached}\n\n## Assistant" in markdown
    assert "<img" not in rendered(markdown)


def test_the_api_exports_the_files_a_message_was_sent_with(alice, upstream, stored_in):
    conversation_id = alice.new_conversation()
    file_id = upload(alice, "notes.txt", b"some notes").json()["id"]
    assert send(alice, conversation_id, "Look", files=[file_id]).status_code == 200
    upload(alice, "unsent.txt", b"not sent")
    exported = alice.client.get(f"/api/conversations/{conversation_id}/export", params={"format": "json"})
    assert exported.status_code == 200  # and it matches the API's description (alice's client checks)
    assert [entry["id"] for entry in exported.json()["files"]] == [file_id]
    assert [entry["name"] for entry in exported.json()["turns"][0]["files"]] == ["notes.txt"]
    markdown = alice.client.get(f"/api/conversations/{conversation_id}/export", params={"format": "md"}).text
    assert "Look\n\nAttached: notes.txt (text/plain, 10 bytes)\n" in markdown
