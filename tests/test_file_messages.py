"""Messages that send files, through a real server to the fake upstream,
which records what the model is sent: images as image_url parts, documents
as text headed by their names, within the prompt's budget."""

import base64

import openai
import pytest
from django.core.files.storage import storages

from conversations.models import StoredFile, Turn

from .files import error_code, on_disk, png, upload
from .helpers import send
from .pdfs import encrypt, make_pdf
from .test_memory import run_worker


@pytest.fixture
def seeing(upstream, settings):
    """The one model of the fake upstream, able to see images."""
    settings.LLM_VISION = True
    return upstream


def sent_parts(upstream, call: int = -1) -> list[dict]:
    """The content parts of the last user message of an upstream call."""
    user = [m for m in upstream.calls[call].body["messages"] if m["role"] == "user"]
    return user[-1]["content"]


def test_an_image_and_a_document_reach_the_model_as_content_parts(alice, seeing, stored_in):
    picture = png(6, 4)
    image_id = upload(alice, "cat.png", picture).json()["id"]
    notes_id = upload(alice, "notes.md", b"# Plan\n\nShip on Friday.\n").json()["id"]
    conversation_id = alice.new_conversation()
    response = send(alice, conversation_id, "What are these?", files=[image_id, notes_id])
    assert response.status_code == 200, response.text

    parts = sent_parts(seeing)
    assert parts[0] == {"type": "text", "text": "What are these?"}
    assert parts[1] == {"type": "text", "text": f"Image: cat.png (image/png, 6×4, {len(picture)} bytes)"}
    assert parts[2]["image_url"]["url"] == "data:image/png;base64," + base64.b64encode(picture).decode()
    assert parts[3]["type"] == "text" and parts[3]["text"].startswith("File: notes.md (text/markdown, 24 bytes)\n")
    assert parts[3]["text"].endswith("# Plan\n\nShip on Friday.\n")

    question = Turn.objects.get(conversation_id=conversation_id, role="user")
    assert [file["name"] for file in question.files] == ["cat.png", "notes.md"]
    assert set(StoredFile.objects.values_list("conversation_id", flat=True)) == {question.conversation_id}
    detail = alice.client.get(f"/api/conversations/{conversation_id}").json()
    assert [file["id"] for file in detail["turns"][0]["files"]] == [image_id, notes_id]


def test_a_message_of_files_alone_is_sent(alice, seeing, stored_in):
    file_id = upload(alice, "a.txt", b"just this").json()["id"]
    conversation_id = alice.new_conversation()
    assert send(alice, conversation_id, "", files=[file_id]).status_code == 200
    assert sent_parts(seeing)[0]["text"].startswith("File: a.txt")
    assert send(alice, conversation_id, "").status_code == 400  # without files, a message needs words


def test_a_pdf_is_sent_as_its_text(alice, seeing, stored_in):
    response = upload(alice, "report.pdf", make_pdf(["Quarterly revenue grew.", "Costs fell."]))
    assert response.status_code == 201, response.text
    assert response.json()["kind"] == "pdf"
    send(alice, alice.new_conversation(), "Summarise", files=[response.json()["id"]])
    text = sent_parts(seeing)[1]["text"]
    assert text.startswith("File: report.pdf (application/pdf,") and "Quarterly revenue grew." in text
    assert "Costs fell." in text


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (encrypt(make_pdf(["secret"]), user_password="pw", algorithm="RC4-128"), "pdf_encrypted"),
        (b"%PDF-1.7\n" + b"\x00garbage" * 50, "pdf_malformed"),
    ],
)
def test_a_pdf_that_cannot_be_read_is_a_clear_422(alice, stored_in, content, reason):
    response = upload(alice, "bad.pdf", content)
    assert (response.status_code, error_code(response)) == (422, "unreadable_file")
    assert response.json()["error"]["reason"] == reason
    assert on_disk(stored_in) == [] and not StoredFile.objects.exists()


def test_an_image_to_a_model_that_cannot_see_is_400_and_nothing_is_saved(alice, upstream, stored_in):
    file_id = upload(alice, "cat.png", png()).json()["id"]
    conversation_id = alice.new_conversation()
    response = send(alice, conversation_id, "Look", files=[file_id])
    assert (response.status_code, error_code(response)) == (400, "model_cannot_see_images")
    assert not Turn.objects.exists() and upstream.calls == []
    assert StoredFile.objects.get().conversation_id is None  # still unsent: it may go to another model
    models = alice.client.get("/api/models").json()["models"]
    assert models[0]["vision"] is False


def test_auto_sends_a_message_with_an_image_to_the_model_that_sees(alice, two_models, settings, stored_in):
    settings.LLM_MODELS["big"]["vision"] = True
    settings.LLM_ROUTER = {"small": "small", "big": "big"}
    file_id = upload(alice, "cat.png", png()).json()["id"]
    conversation_id = alice.new_conversation()
    assert send(alice, conversation_id, "hi", model="auto", files=[file_id]).status_code == 200
    answer = Turn.objects.get(conversation_id=conversation_id, role="assistant")
    assert answer.model_name == "big" and "images" in answer.route["reason"]
    assert send(alice, conversation_id, "hi again", model="auto").status_code == 200  # no image: the rules
    assert Turn.objects.filter(role="assistant").order_by("position")[1].model_name == "small"


def test_a_document_too_long_for_the_budget_is_cut_and_the_cut_recorded(alice, seeing, stored_in, settings):
    settings.LLM_CONTEXT_TOKENS = 600
    words = "word " * 4000  # 20,000 characters: about 5,000 tokens
    file_id = upload(alice, "long.txt", words.encode()).json()["id"]
    conversation_id = alice.new_conversation()
    send(alice, conversation_id, "Read this", files=[file_id])
    text = sent_parts(seeing)[1]["text"]
    assert "[… cut here:" in text and len(text) < 3000
    answer = Turn.objects.get(conversation_id=conversation_id, role="assistant")
    [cut] = answer.file_cuts
    assert (cut["id"], cut["name"], cut["chars"]) == (file_id, "long.txt", 20000) and 0 < cut["chars_sent"] < 3000


def test_later_prompts_carry_earlier_documents_but_not_earlier_images(alice, seeing, stored_in, settings):
    image_id = upload(alice, "cat.png", png()).json()["id"]
    notes_id = upload(alice, "notes.txt", b"The code word is heron.").json()["id"]
    conversation_id = alice.new_conversation()
    send(alice, conversation_id, "Keep these", files=[image_id, notes_id])
    send(alice, conversation_id, "What was the code word?")
    first = [m for m in seeing.calls[-1].body["messages"] if m["role"] == "user"][0]["content"]
    texts = [part.get("text", "") for part in first]
    assert not any(part["type"] == "image_url" for part in first)
    assert any("cat.png" in text and "not repeated" in text for text in texts)
    assert any("The code word is heron." in text for text in texts)

    settings.CHATSTREAM_IMAGES_IN_HISTORY = True
    send(alice, conversation_id, "And the picture?")
    first = [m for m in seeing.calls[-1].body["messages"] if m["role"] == "user"][0]["content"]
    assert any(part["type"] == "image_url" for part in first)


def test_regenerate_keeps_the_question_s_files_and_edit_may_replace_them(alice, seeing, stored_in):
    notes_id = upload(alice, "a.txt", b"alpha").json()["id"]
    other_id = upload(alice, "b.txt", b"beta").json()["id"]
    conversation_id = alice.new_conversation()
    send(alice, conversation_id, "Read", files=[notes_id])
    answer = Turn.objects.get(role="assistant")
    alice.client.post(f"/api/turns/{answer.pk}/regenerate", json={}).read()
    assert "alpha" in sent_parts(seeing)[1]["text"]

    question = Turn.objects.get(role="user")
    alice.client.post(f"/api/turns/{question.pk}/edit", json={"content": "Read again"}).read()
    assert "alpha" in sent_parts(seeing)[1]["text"]  # the question's files, kept
    alice.client.post(f"/api/turns/{question.pk}/edit", json={"content": "Now this", "files": [other_id]}).read()
    assert "beta" in sent_parts(seeing)[1]["text"] and "alpha" not in str(sent_parts(seeing))


def test_files_that_are_not_the_senders_or_too_many_are_refused(alice, bob, seeing, stored_in, settings):
    theirs = upload(bob, "b.txt", b"bob's").json()["id"]
    conversation_id = alice.new_conversation()
    response = send(alice, conversation_id, "Read", files=[theirs])
    assert (response.status_code, error_code(response)) == (404, "file_not_found")
    settings.CHATSTREAM_MAX_FILES_PER_MESSAGE = 2
    ids = [upload(alice, f"{n}.txt", b"x").json()["id"] for n in range(3)]
    response = send(alice, conversation_id, "Read", files=ids)
    assert (response.status_code, error_code(response)) == (400, "too_many_files")
    response = send(alice, conversation_id, "Read", files=["not-an-id"])
    assert (response.status_code, error_code(response)) == (400, "invalid_files")
    send(alice, conversation_id, "Read", files=ids[:1])
    response = send(alice, alice.new_conversation(), "Read", files=ids[:1])
    assert (response.status_code, error_code(response)) == (400, "file_in_another_conversation")
    assert not Turn.objects.exclude(conversation_id=conversation_id).exists()


def test_deleting_a_conversation_deletes_its_files_bytes_after_commit(alice, seeing, stored_in):
    kept = upload(alice, "kept.txt", b"unsent").json()["id"]
    sent = upload(alice, "sent.pdf", make_pdf(["gone"])).json()["id"]
    conversation_id = alice.new_conversation()
    send(alice, conversation_id, "Read", files=[sent])
    assert len(on_disk(stored_in)) == 3  # the unsent file, the PDF and its text
    assert alice.client.delete(f"/api/conversations/{conversation_id}").status_code == 204
    assert [str(pk) for pk in StoredFile.objects.values_list("pk", flat=True)] == [kept]
    run_worker()
    assert [path.read_bytes() for path in on_disk(stored_in)] == [b"unsent"]


def test_a_file_deleted_after_it_was_sent_is_a_note_in_later_prompts(alice, seeing, stored_in):
    file_id = upload(alice, "gone.txt", b"soon gone").json()["id"]
    conversation_id = alice.new_conversation()
    send(alice, conversation_id, "Read", files=[file_id])
    assert alice.client.delete(f"/api/files/{file_id}").status_code == 204
    send(alice, conversation_id, "And now?")
    first = [m for m in seeing.calls[-1].body["messages"] if m["role"] == "user"][0]["content"]
    assert any("gone.txt" in part.get("text", "") and "deleted" in part["text"] for part in first)
    detail = alice.client.get(f"/api/conversations/{conversation_id}").json()
    assert detail["turns"][0]["files"][0]["name"] == "gone.txt"  # the turn still names it


def test_storage_urls_instead_of_data(alice, seeing, stored_in, settings):
    settings.CHATSTREAM_FILE_URLS = "storage"
    settings.STORAGES["chatstream"]["OPTIONS"]["base_url"] = "https://files.example.com/"
    storages._storages.clear()
    file_id = upload(alice, "cat.png", png()).json()["id"]
    send(alice, alice.new_conversation(), "Look", files=[file_id])
    url = sent_parts(seeing)[2]["image_url"]["url"]
    assert url.startswith("https://files.example.com/chatstream/") and "cat" not in url


def test_the_demo_model_describes_what_it_is_sent(alice, stored_in):
    image_id = upload(alice, "cat.png", png(64, 48)).json()["id"]
    pdf_id = upload(alice, "report.pdf", make_pdf(["Quarterly revenue grew by a third in the north."])).json()["id"]
    conversation_id = alice.new_conversation()
    send(alice, conversation_id, "", files=[image_id, pdf_id])
    answer = Turn.objects.get(conversation_id=conversation_id, role="assistant").content
    assert answer.startswith("You sent 2 files:")
    assert "**cat.png**: an image (image/png, 64 × 48 pixels," in answer
    assert "**report.pdf**: a document (application/pdf," in answer
    assert 'beginning "Quarterly revenue grew by a third in the north."' in answer
    assert "You asked" not in answer  # no words of the user's to answer


def test_the_openai_door_passes_image_parts_on_to_a_model_that_sees(sdk, seeing, settings):
    picture = "data:image/png;base64," + base64.b64encode(png()).decode()
    content = [
        {"type": "text", "text": "What is in these?"},
        {"type": "image_url", "image_url": {"url": picture}},
        {"type": "image_url", "image_url": {"url": "https://example.com/cat.jpg", "detail": "low"}},
    ]
    sdk.chat.completions.create(model="fake-model", messages=[{"role": "user", "content": content}])
    assert sent_parts(seeing) == content  # as the client sent them
    assert Turn.objects.get(role="user").content == "What is in these?\n[image]\n[image]"

    settings.LLM_VISION = False
    with pytest.raises(openai.BadRequestError) as refused:
        sdk.chat.completions.create(model="fake-model", messages=[{"role": "user", "content": content}])
    assert refused.value.code == "model_cannot_see_images" and Turn.objects.count() == 2

    wrong = [{"type": "image_url", "image_url": {"url": "file:///etc/passwd"}}]
    with pytest.raises(openai.BadRequestError) as refused:
        sdk.chat.completions.create(model="fake-model", messages=[{"role": "user", "content": wrong}])
    assert "image_url" in refused.value.body["param"]


def test_a_file_whose_bytes_are_gone_from_storage_is_named_not_a_failure(alice, seeing, stored_in):
    file_id = upload(alice, "notes.txt", b"here today").json()["id"]
    for path in on_disk(stored_in):
        path.unlink()  # a storage that lost it (or cannot be reached)
    response = send(alice, alice.new_conversation(), "Read", files=[file_id])
    assert response.status_code == 200
    unread = "File: notes.txt (text/plain, 10 bytes)\n[could not be read from the storage]"
    assert sent_parts(seeing)[1]["text"] == unread
