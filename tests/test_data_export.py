"""`GET api/me/export`: everything a user owns as one zip, streamed; each
member checked, a file's bytes equal, nothing of another user's in it."""

import io
import json
import zipfile

from conversations.data import export
from conversations.models import DataEvent, StoredFile, Turn

from .files import png, upload
from .helpers import send


def exported(api_user) -> zipfile.ZipFile:
    response = api_user.client.get("/api/me/export")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/zip" and "content-length" not in response.headers
    assert response.headers["content-disposition"].startswith("attachment")
    return zipfile.ZipFile(io.BytesIO(response.content))


def test_the_zip_holds_everything_the_user_owns(alice, bob, upstream, stored_in):
    upstream.behaviour.tokens = 3
    conversation_id = alice.new_conversation()
    alice.client.patch(f"/api/conversations/{conversation_id}", json={"title": "Trip / plans"})
    sent = png(300, 200)
    file_id = upload(alice, "a/b.txt", b"some notes\n").json()["id"]
    unsent_id = upload(alice, "later.png", sent).json()["id"]
    send(alice, conversation_id, "Read this", files=[file_id])
    answer = Turn.objects.get(conversation_id=conversation_id, role="assistant")
    alice.client.put(f"/api/turns/{answer.pk}/feedback", json={"rating": "down", "comment": "Too short"})
    bob_conversation = bob.new_conversation()
    send(bob, bob_conversation, "Bob's secret")

    archive = exported(alice)
    assert archive.testzip() is None
    names = archive.namelist()
    base = f"conversations/Trip-plans-{conversation_id}"
    assert sorted(names) == sorted(
        [
            "account.json",
            f"{base}.json",
            f"{base}.md",
            f"files/{file_id}-b.txt",
            f"files/{unsent_id}-later.png",
            "feedback.json",
            "api_keys.json",
            "spend.jsonl",
        ]
    )
    assert json.loads(archive.read("account.json"))["username"] == "alice"
    document = json.loads(archive.read(f"{base}.json"))
    assert [turn["content"] for turn in document["turns"]][0] == "Read this"
    assert document["turns"][1]["content"] == answer.content and document["files"][0]["id"] == file_id
    assert archive.read(f"{base}.md").decode().startswith("# Trip / plans")
    assert archive.read(f"files/{file_id}-b.txt") == b"some notes\n"
    assert archive.read(f"files/{unsent_id}-later.png") == sent
    [feedback] = json.loads(archive.read("feedback.json"))
    assert (feedback["turn_id"], feedback["rating"], feedback["comment"]) == (str(answer.pk), "down", "Too short")
    [key] = json.loads(archive.read("api_keys.json"))
    assert set(key) == {"name", "prefix", "created_at", "last_used_at", "revoked_at"} and key["prefix"] in alice.key
    assert alice.key not in archive.read("api_keys.json").decode()  # never the secret, nor a hash
    [spend] = [json.loads(line) for line in archive.read("spend.jsonl").splitlines()]
    assert spend["turn_id"] == str(answer.pk) and spend["tokens_out"] == answer.tokens_out
    whole = b"".join(archive.read(name) for name in names)
    assert b"Bob" not in whole and bob_conversation.encode() not in whole

    event = DataEvent.objects.get(action="export")
    assert event.actor_id == event.subject_id == alice.user.pk
    assert event.counts == {
        "conversations": 1,
        "files": 2,
        "feedback": 1,
        "api_keys": 1,
        "spend_rows": 1,
        "complete": 1,
    }


def test_a_user_with_nothing_gets_a_zip_of_empty_records(alice):
    archive = exported(alice)
    assert sorted(archive.namelist()) == ["account.json", "api_keys.json", "feedback.json", "spend.jsonl"]
    assert json.loads(archive.read("feedback.json")) == [] and archive.read("spend.jsonl") == b""


def test_the_pipe_holds_only_what_was_written_since_it_was_drained():
    pipe = export.Pipe()
    archive = zipfile.ZipFile(pipe, "w", zipfile.ZIP_DEFLATED)
    drained = []
    with archive.open("big", "w") as member:
        for _ in range(40):
            member.write(bytes(range(256)) * 256)  # 64 KiB a write
            drained.append(pipe.drain())
            assert pipe.parts == []
    archive.close()
    drained.append(pipe.drain())
    whole = b"".join(drained)
    assert zipfile.ZipFile(io.BytesIO(whole)).read("big") == bytes(range(256)) * 256 * 40
    assert max(map(len, drained)) < 70_000  # never more than about a write at once


def test_a_file_whose_bytes_are_lost_is_left_out_and_counted(alice, stored_in):
    kept = upload(alice, "kept.txt", b"still here\n").json()["id"]
    lost = upload(alice, "lost.txt", b"gone\n").json()["id"]
    (stored_in / StoredFile.objects.get(pk=lost).path).unlink()
    archive = exported(alice)
    assert archive.testzip() is None and archive.read(f"files/{kept}-kept.txt") == b"still here\n"
    assert not [name for name in archive.namelist() if lost in name]
    assert DataEvent.objects.get(action="export").counts["files_missing"] == 1
