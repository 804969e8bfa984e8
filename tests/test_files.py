"""Files through the API on a real ASGI server: uploads to a real
FileSystemStorage in a temporary folder, checked on disk; what is refused,
and why; another user's files as if they did not exist."""

import socket
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from django.utils import timezone

from conversations.files import cleanup
from conversations.models import StoredFile

from .files import error_code, image, on_disk, png, upload
from .test_memory import run_worker


def test_an_image_is_stored_described_served_and_deleted(alice, stored_in):
    sent = png(7, 3)
    response = upload(alice, "../../etc/cat.png", sent, "text/plain")  # the client's type is not trusted
    assert response.status_code == 201, response.text
    body = response.json()
    assert (body["name"], body["size"], body["content_type"]) == ("cat.png", len(sent), "image/png")
    assert (body["kind"], body["width"], body["height"], body["conversation_id"]) == ("image", 7, 3, None)
    [path] = on_disk(stored_in)
    assert path.read_bytes() == sent and "cat" not in str(path) and path.is_relative_to(stored_in)

    assert alice.client.get(f"/api/files/{body['id']}").json() == body
    content = alice.client.get(f"/api/files/{body['id']}/content")
    assert content.content == sent and content.headers["content-type"] == "image/png"
    assert content.headers["x-content-type-options"] == "nosniff"
    assert content.headers["content-disposition"].startswith("inline")
    assert "private" in content.headers["cache-control"]

    assert alice.client.delete(f"/api/files/{body['id']}").status_code == 204
    assert not StoredFile.objects.exists()
    run_worker()  # the bytes go after the commit, through the worker
    assert on_disk(stored_in) == []
    assert alice.client.get(f"/api/files/{body['id']}").status_code == 404


@pytest.mark.parametrize(
    ("name", "content", "kind", "content_type"),
    [
        ("a.jpg", image("JPEG"), "image", "image/jpeg"),
        ("a.webp", image("WEBP"), "image", "image/webp"),
        ("a.gif", image("GIF"), "image", "image/gif"),
        ("notes.md", "# Title\n\nSome *notes*, ünïcödé.\n".encode(), "text", "text/markdown"),
        ("data.csv", b"a,b\n1,2\n", "text", "text/csv"),
        ("x.json", b'{"a": 1}', "text", "application/json"),
        ("main.py", b"print('hi')\n", "text", "text/x-python"),
        ("README", b"plain words\n", "text", "text/plain"),
    ],
)
def test_types_are_read_from_the_content(alice, stored_in, name, content, kind, content_type):
    response = upload(alice, name, content)
    assert response.status_code == 201, response.text
    assert (response.json()["kind"], response.json()["content_type"]) == (kind, content_type)
    served = alice.client.get(f"/api/files/{response.json()['id']}/content")
    assert served.content == content
    if kind != "image":  # anything that is not a picture is a download, never a page of the app's origin
        assert served.headers["content-disposition"].startswith("attachment")
        assert "sandbox" in served.headers["content-security-policy"]


@pytest.mark.parametrize(
    ("name", "content"),
    [
        ("evil.png", b"<html><script>alert(1)</script></html>\x00"),  # binary, not text, not a PNG
        ("fake.png", b"\x89PNG\r\n\x1a\n" + b"\x00" * 40),  # a PNG's signature, no PNG
        ("a.exe", b"MZ\x90\x00\x03\x00\x00\x00"),
        ("latin1.txt", "café".encode("latin-1") * 10),
        ("empty.txt", b""),
        ("a.zip", b"PK\x03\x04" + b"\x00" * 30),
    ],
)
def test_anything_else_is_415_and_nothing_is_kept(alice, stored_in, name, content):
    response = upload(alice, name, content)
    assert (response.status_code, error_code(response)) == (415, "unsupported_file_type")
    assert on_disk(stored_in) == [] and not StoredFile.objects.exists()


def test_a_file_over_the_limit_is_413_from_its_length_before_its_body(alice, stored_in, settings):
    settings.CHATSTREAM_MAX_FILE_BYTES = 1000
    response = upload(alice, "big.txt", b"x" * 100_000)
    assert (response.status_code, error_code(response)) == (413, "file_too_large")
    assert on_disk(stored_in) == [] and not StoredFile.objects.exists()


def test_a_chunked_body_is_cut_off_as_it_passes_the_limit(alice, stored_in, settings):
    settings.CHATSTREAM_MAX_FILE_BYTES = 50_000
    boundary = "chatstream-boundary"
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="big.txt"\r\n'
        "Content-Type: text/plain\r\n\r\n"
    ).encode()
    sent = []

    def body():  # no Content-Length: httpx sends it chunked
        yield head
        for _ in range(100):
            sent.append(1)
            yield b"x" * 10_000
        yield f"\r\n--{boundary}--\r\n".encode()

    try:
        response = alice.client.post(
            "/api/files", content=body(), headers={"Content-Type": f"multipart/form-data; boundary={boundary}"}
        )
    except httpx.RemoteProtocolError:  # the server may close before the client has sent it all
        response = None
    if response is not None:
        assert (response.status_code, error_code(response)) == (413, "file_too_large")
    assert on_disk(stored_in) == [] and not StoredFile.objects.exists()


def test_a_file_that_would_pass_the_quota_is_413(alice, stored_in, settings):
    settings.CHATSTREAM_USER_FILE_QUOTA_BYTES = 3000
    assert upload(alice, "a.txt", b"a" * 2000).status_code == 201
    response = upload(alice, "b.txt", b"b" * 1500)
    assert (response.status_code, error_code(response)) == (413, "quota_exceeded")
    assert response.json()["error"]["used"] == 2000
    assert len(on_disk(stored_in)) == 1
    assert upload(alice, "c.txt", b"c" * 1000).status_code == 201  # up to the quota exactly


def test_another_users_file_is_404_everywhere(alice, bob, stored_in):
    file_id = upload(alice, "a.png", png()).json()["id"]
    for response in (
        bob.client.get(f"/api/files/{file_id}"),
        bob.client.get(f"/api/files/{file_id}/content"),
        bob.client.delete(f"/api/files/{file_id}"),
    ):
        assert (response.status_code, error_code(response)) == (404, "file_not_found")
    assert StoredFile.objects.filter(pk=file_id).exists()


def test_no_file_part_is_400(alice, stored_in):
    response = alice.client.post("/api/files", files={"other": ("a.txt", b"x")})
    assert (response.status_code, error_code(response)) == (400, "no_file")
    response = alice.client.post("/api/files", json={"file": "x"})
    assert response.status_code == 400


def test_an_upload_no_message_names_is_deleted_after_its_ttl(alice, stored_in, settings):
    kept = upload(alice, "kept.txt", b"kept").json()["id"]
    expired = upload(alice, "old.txt", b"old").json()["id"]
    StoredFile.objects.filter(pk=expired).update(created_at=timezone.now() - timezone.timedelta(hours=25))
    cleanup.delete_unsent_uploads.enqueue()  # as each upload's own sweep does when its time comes
    run_worker()
    assert [str(pk) for pk in StoredFile.objects.values_list("pk", flat=True)] == [kept]
    assert [path.read_bytes() for path in on_disk(stored_in)] == [b"kept"]


def test_a_chunked_upload_within_the_limit_is_taken(alice, stored_in):
    boundary = "chatstream-boundary"

    def body():
        yield f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="notes.txt"\r\n\r\n'.encode()
        yield b"chunked words\n" * 100
        yield f"\r\n--{boundary}--\r\n".encode()

    response = alice.client.post(
        "/api/files", content=body(), headers={"Content-Type": f"multipart/form-data; boundary={boundary}"}
    )
    assert response.status_code == 201, response.text
    assert response.json()["size"] == 1400
    assert [path.read_bytes() for path in on_disk(stored_in)] == [b"chunked words\n" * 100]


def test_a_client_that_leaves_mid_upload_leaves_nothing_behind(alice, live, stored_in):
    boundary = "chatstream-boundary"
    head = (f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="half.txt"\r\n\r\n').encode()
    length = len(head) + 1_000_000
    host, port = live.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port))) as raw:
        raw.sendall(
            (
                f"POST /api/files HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {alice.key}\r\n"
                f"Content-Type: multipart/form-data; boundary={boundary}\r\nContent-Length: {length}\r\n\r\n"
            ).encode()
            + head
            + b"x" * 300_000
        )
        time.sleep(0.3)  # the server has begun on the body
    time.sleep(0.5)
    assert alice.client.get("/api/conversations").status_code == 200  # the server is fine
    assert on_disk(stored_in) == [] and not StoredFile.objects.exists()


def test_two_uploads_at_once_cannot_both_take_the_last_of_the_quota(alice, stored_in, settings):
    settings.CHATSTREAM_USER_FILE_QUOTA_BYTES = 3000
    with ThreadPoolExecutor(2) as pool:
        statuses = sorted(pool.map(lambda n: upload(alice, f"{n}.txt", b"x" * 2000).status_code, range(2)))
    assert statuses == [201, 413]
    assert len(on_disk(stored_in)) == 1


def test_a_body_that_is_not_the_multipart_it_says_is_400(alice, stored_in):
    response = alice.client.post("/api/files", content=b"x" * 100, headers={"Content-Type": "multipart/form-data"})
    assert (response.status_code, error_code(response)) == (400, "invalid_upload")
