"""Failed logins and API keys: every login door throttled alike, and failures
sent from many addresses never lock the owner out from their own. Through a
real ASGI server; each client connects from an address of its own on
loopback (127.0.0.0/8), as the server sees it, with no proxy header."""

import httpx
import pytest
from django.contrib.auth import get_user_model

from conversations.access import api_keys

from .helpers import log_in

OWNER_ADDRESS = "127.0.0.1"


def client_from(live, address: str = OWNER_ADDRESS) -> httpx.Client:
    return httpx.Client(base_url=live.url, transport=httpx.HTTPTransport(local_address=address), timeout=30)


@pytest.fixture
def vic(live):
    return get_user_model().objects.create_superuser("vic", "vic@example.com", "the-right-password")


@pytest.mark.parametrize("door", ["/accounts/login/", "/admin/login/"])
def test_every_login_door_refuses_the_right_password_after_too_many_wrong(live, throttled, vic, door):
    with client_from(live) as client:
        assert [log_in(client, door, "vic", f"guess-{i}").status_code for i in range(3)] == [200, 200, 200]
        blocked = log_in(client, door, "vic", "the-right-password")
        assert blocked.status_code == 429 and "Too many failed attempts" in blocked.text
        assert 0 < int(blocked.headers["Retry-After"]) <= 900 and "sessionid" not in client.cookies


def test_the_doors_share_one_count(live, throttled, vic):
    with client_from(live) as client:
        for door in ("/accounts/login/", "/admin/login/", "/accounts/login/"):
            log_in(client, door, "vic", "a-guess")
        assert log_in(client, "/admin/login/", "vic", "the-right-password").status_code == 429


def test_wrong_passwords_from_many_addresses_do_not_lock_the_owner_out(live, throttled, vic):
    # 3 addresses, 3 failures each: every one of them refused now, the account's 9 under its bar of 10.
    for n in (2, 3, 4):
        with client_from(live, f"127.0.0.{n}") as attacker:
            statuses = [log_in(attacker, "/accounts/login/", "vic", f"guess-{i}").status_code for i in range(4)]
        assert statuses == [200, 200, 200, 429]
    with client_from(live) as owner:
        assert log_in(owner, "/accounts/login/", "vic", "the-right-password").status_code == 302
    # Past the account's own bar, it is refused from everywhere.
    with client_from(live, "127.0.0.5") as attacker:
        log_in(attacker, "/accounts/login/", "vic", "guess")
    with client_from(live) as owner:
        assert log_in(owner, "/accounts/login/", "vic", "the-right-password").status_code == 429


def test_wrong_secrets_for_a_key_from_many_addresses_do_not_lock_its_owner_out(live, throttled, alice):
    prefix = api_keys.public_part(alice.key).removeprefix("key:")
    for n in (2, 3, 4):
        with client_from(live, f"127.0.0.{n}") as attacker:
            wrong = {"Authorization": f"Bearer cs_{prefix}_not-the-secret"}
            statuses = [attacker.get("/api/conversations", headers=wrong).status_code for _ in range(4)]
        assert statuses == [401, 401, 401, 429]
    assert alice.client.get("/api/conversations").status_code == 200  # her real key, from her address
    with client_from(live, "127.0.0.5") as attacker:
        attacker.get("/api/conversations", headers={"Authorization": f"Bearer cs_{prefix}_wrong"})
    with client_from(live) as owner:  # the API's description has no 429 here: not alice.client
        refused = owner.get("/api/conversations", headers={"Authorization": f"Bearer {alice.key}"})
    assert refused.status_code == 429 and refused.json()["error"]["code"] == "too_many_failures"
