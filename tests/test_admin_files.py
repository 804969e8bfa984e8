"""Files in the admin: the uploads list, the storage each user takes, a
file's page with its preview, the staff-only view of its bytes, a message's
files on its turn's page, and a delete that takes the bytes too."""

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.core.files.base import ContentFile
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from conversations import services
from conversations.admin_files import storage_by_user
from conversations.files import storage
from conversations.models import Conversation, StoredFile, Turn
from conversations.serializers import file_summary

from .files import on_disk, png, upload
from .helpers import api_client, exchange, log_in, send
from .test_memory import run_worker

FILES = reverse("admin:conversations_storedfile_changelist")


def stored_file(owner, name: str, content: bytes, *, conversation=None, text: str | None = None) -> StoredFile:
    """A file as an upload leaves one, its bytes (and a PDF's text) in storage."""
    kind, content_type, width, height = {
        ".png": ("image", "image/png", 320, 160),
        ".pdf": ("pdf", "application/pdf", None, None),
    }.get(name[-4:], ("text", "text/plain", None, None))
    files = storage.file_storage()
    path = files.save(storage.new_path(owner.pk), ContentFile(content))
    text_path = files.save(storage.new_path(owner.pk, ".txt"), ContentFile(text.encode())) if text else ""
    return StoredFile.objects.create(
        owner=owner,
        conversation=conversation,
        name=name,
        kind=kind,
        content_type=content_type,
        size=len(content),
        width=width,
        height=height,
        path=path,
        text_path=text_path,
        text_chars=len(text or (content.decode() if kind == "text" else "")),
    )


@pytest.fixture
def carol(db):
    return get_user_model().objects.create_user("carol")


@pytest.fixture
def some_files(owner, carol, conversation, stored_in) -> dict[str, StoredFile]:
    """owner: a sent image and an unsent text file; carol: a sent PDF."""
    theirs = services.create_conversation(owner=carol)
    return {
        "cat": stored_file(owner, "cat.png", png(320, 160), conversation=conversation),
        "notes": stored_file(owner, "notes.txt", b"some notes\n" * 300),
        "report": stored_file(carol, "report.pdf", b"%PDF-1.7 " + b"x" * 5000, conversation=theirs, text="Page one."),
    }


def names(response) -> list[str]:
    return sorted(stored.name for stored in response.context["cl"].result_list)


def test_the_files_list_filters_and_searches(staff_client, some_files, owner, conversation):
    page = staff_client.get(FILES)
    assert page.status_code == 200 and names(page) == ["cat.png", "notes.txt", "report.pdf"]
    for column in ("column-owner", "column-kind", "column-content_type", "column-size_shown", "column-sent"):
        assert column in page.text
    assert "3.2\u00a0KB" in page.text  # notes.txt, 3,300 bytes
    assert reverse("admin:conversations_conversation_change", args=[conversation.pk]) in page.text
    assert names(staff_client.get(FILES, {"kind": "image"})) == ["cat.png"]
    assert names(staff_client.get(FILES, {"content_type": "application/pdf"})) == ["report.pdf"]
    assert names(staff_client.get(FILES, {"sent": "no"})) == ["notes.txt"]
    assert names(staff_client.get(FILES, {"sent": "yes"})) == ["cat.png", "report.pdf"]
    assert names(staff_client.get(FILES, {"q": "notes"})) == ["notes.txt"]
    assert names(staff_client.get(FILES, {"q": "carol"})) == ["report.pdf"]
    assert names(staff_client.get(FILES, {"owner__id__exact": owner.pk})) == ["cat.png", "notes.txt"]


def test_the_files_list_takes_as_many_queries_for_many_files_as_for_few(staff_client, owner, carol, stored_in):
    def queries() -> int:
        with CaptureQueriesContext(connection) as captured:
            assert staff_client.get(FILES).status_code == 200
        return len(captured)

    for who in (owner, carol):
        stored_file(who, "a.txt", b"a", conversation=services.create_conversation(owner=who))
    few = queries()
    for n in range(10):
        who = owner if n % 2 else carol
        stored_file(who, f"{n}.txt", b"b", conversation=services.create_conversation(owner=who))
    assert queries() == few


def test_the_storage_summary_counts_each_users_files_and_bytes(staff_client, some_files, settings, carol):
    settings.CHATSTREAM_USER_FILE_QUOTA_BYTES = 10_000
    stored_file(carol, "more.txt", b"m" * 1000)
    with CaptureQueriesContext(connection) as captured:
        rows = storage_by_user()
    assert len(captured) == 1
    figures = [(row["user"], row["files"], row["bytes"], row["percent"]) for row in rows]
    cat = len(png(320, 160))
    assert figures == [("carol", 2, 6009, 60.1), ("owner", 2, 3300 + cat, round((3300 + cat) / 100, 1))]
    page = staff_client.get(FILES).text
    assert "Storage used per user" in page and "9.8 KB" in page  # the quota
    assert "5.9 KB" in page and "60.1%" in page  # carol's


def test_a_files_page_is_read_only_with_a_preview(staff_client, some_files):
    cat, notes, report = some_files["cat"], some_files["notes"], some_files["report"]
    change = "admin:conversations_storedfile_change"
    image_page = staff_client.get(reverse(change, args=[cat.pk])).text
    content = reverse("admin:conversations_storedfile_content", args=[cat.pk])
    assert f'<img class="file-preview" src="{content}"' in image_page
    assert 'name="_save"' not in image_page  # nothing to edit
    text_page = staff_client.get(reverse(change, args=[notes.pk])).text
    assert "some notes\n" * 181 + "some note…" in text_page  # its first 2,000 characters
    assert "some notes\n" * 182 not in text_page
    assert "Page one." in staff_client.get(reverse(change, args=[report.pk])).text  # a PDF's text, kept beside it
    assert staff_client.get(reverse("admin:conversations_storedfile_add")).status_code == 403


def test_a_text_preview_is_escaped(staff_client, owner, stored_in):
    hostile = stored_file(owner, "x.txt", b"<script>alert(1)</script>")
    page = staff_client.get(reverse("admin:conversations_storedfile_change", args=[hostile.pk])).text
    assert "<script>alert(1)" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page


def test_the_content_view_is_for_staff_who_may_view_files(client, some_files):
    content = reverse("admin:conversations_storedfile_content", args=[some_files["cat"].pk])
    assert client.get(content).status_code == 302  # to the admin's login
    client.force_login(get_user_model().objects.create_user("user"))
    assert client.get(content).status_code == 302
    staff = get_user_model().objects.create_user("staff", is_staff=True)
    client.force_login(staff)
    assert client.get(content).status_code == 403  # staff, not allowed to view files
    staff.user_permissions.add(Permission.objects.get(codename="view_storedfile"))
    missing = reverse("admin:conversations_storedfile_content", args=["00000000-0000-0000-0000-000000000000"])
    assert client.get(missing).status_code == 404


@pytest.fixture
def staff_http(live):
    """A staff member logged in to the admin on the real ASGI server (the
    content view streams as it does in production)."""
    get_user_model().objects.create_superuser("root", "root@example.com", "pw")
    with api_client(live.url) as client:
        assert log_in(client, "/admin/login/", "root", "pw").status_code == 302
        yield client


def test_staff_get_a_files_bytes_sandboxed_images_inline(alice, staff_http, stored_in):
    image, text = png(7, 3), b"<html><script>alert(1)</script></html>\n"
    for name, sent, disposition in (("cat.png", image, "inline"), ("page.html", text, "attachment")):
        file_id = upload(alice, name, sent).json()["id"]
        served = staff_http.get(reverse("admin:conversations_storedfile_content", args=[file_id]))
        assert served.status_code == 200 and served.content == sent
        assert served.headers["x-content-type-options"] == "nosniff"
        assert served.headers["content-security-policy"] == "default-src 'none'; sandbox"
        assert served.headers["content-disposition"].startswith(disposition)


def test_a_turns_page_shows_its_files_and_an_answers_cuts(staff_client, owner, conversation, stored_in):
    cat = stored_file(owner, "cat.png", png(320, 160), conversation=conversation)
    report = stored_file(owner, "report.pdf", b"%PDF-1.7 " + b"x" * 1200, conversation=conversation, text="Hi")
    gone = {**file_summary(cat), "id": "11111111-1111-1111-1111-111111111111", "name": "old <b>.png"}
    exchange(owner, conversation, "Look at these")
    message = Turn.objects.get(role=Turn.Role.USER)
    message.files = [file_summary(cat), file_summary(report), gone]
    message.save(update_fields=["files"])
    Turn.objects.filter(role=Turn.Role.ASSISTANT).update(
        file_cuts=[{"id": str(report.pk), "name": "report.pdf", "chars": 48000, "chars_sent": 12000}]
    )

    page = staff_client.get(reverse("admin:conversations_turn_change", args=[message.pk])).text
    content = reverse("admin:conversations_storedfile_content", args=[cat.pk])
    assert f'<img class="file-thumbnail" src="{content}" alt="cat.png" width="160" height="80">' in page
    assert reverse("admin:conversations_storedfile_content", args=[report.pk]) in page  # a document: a link
    assert "application/pdf, 1.2 KB" in page
    assert 'old &lt;b&gt;.png <span class="file-deleted">(deleted)</span>' in page
    answer = Turn.objects.get(role=Turn.Role.ASSISTANT)
    answer_page = staff_client.get(reverse("admin:conversations_turn_change", args=[answer.pk])).text
    assert "report.pdf: 12,000 of 48,000 characters sent (25%)" in answer_page
    assert "Files sent" not in answer_page


def test_a_message_sent_with_an_image_shows_it_on_its_turns_page(alice, upstream, staff_client, stored_in, settings):
    settings.LLM_VISION = True  # the fake upstream's model sees images
    conversation_id = alice.new_conversation()
    file_id = upload(alice, "wide.png", png(800, 200)).json()["id"]
    assert send(alice, conversation_id, "What is this?", files=[file_id]).status_code == 200
    message = Turn.objects.get(conversation_id=conversation_id, role=Turn.Role.USER)
    page = staff_client.get(reverse("admin:conversations_turn_change", args=[message.pk])).text
    content = reverse("admin:conversations_storedfile_content", args=[file_id])
    assert f'<img class="file-thumbnail" src="{content}" alt="wide.png" width="160" height="40">' in page


def test_a_conversations_page_lists_its_files(staff_client, owner, conversation, stored_in):
    cat = stored_file(owner, "cat.png", png(), conversation=conversation)
    stored_file(owner, "elsewhere.txt", b"not here")
    page = staff_client.get(reverse("admin:conversations_conversation_change", args=[conversation.pk])).text
    assert "cat.png" in page and reverse("admin:conversations_storedfile_change", args=[cat.pk]) in page
    assert "elsewhere.txt" not in page


def test_a_file_deleted_in_the_admin_takes_its_bytes(alice, staff_client, stored_in):
    file_id = upload(alice, "cat.png", png()).json()["id"]
    assert len(on_disk(stored_in)) == 1
    delete = reverse("admin:conversations_storedfile_delete", args=[file_id])
    assert staff_client.post(delete, {"post": "yes"}).status_code == 302
    assert not StoredFile.objects.exists()
    run_worker()  # the bytes go after the commit, through the worker
    assert on_disk(stored_in) == []


def test_files_selected_in_the_list_are_deleted_with_their_bytes(alice, staff_client, stored_in):
    ids = [upload(alice, f"{n}.txt", b"words %d" % n).json()["id"] for n in range(3)]
    staff_client.post(FILES, {"action": "delete_selected", "_selected_action": ids[:2], "post": "yes"})
    assert [str(pk) for pk in StoredFile.objects.values_list("pk", flat=True)] == ids[2:]
    run_worker()
    assert [path.read_bytes() for path in on_disk(stored_in)] == [b"words 2"]


def test_a_conversation_deleted_in_the_admin_takes_its_files(
    transactional_db, staff_client, owner, conversation, stored_in
):
    stored_file(owner, "cat.png", png(), conversation=conversation)
    delete = reverse("admin:conversations_conversation_delete", args=[conversation.pk])
    assert staff_client.post(delete, {"post": "yes"}).status_code == 302
    assert not Conversation.objects.exists() and not StoredFile.objects.exists()
    run_worker()
    assert on_disk(stored_in) == []
