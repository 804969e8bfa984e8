"""Per-user API keys for `Authorization: Bearer <key>`.

A key reads `cs_<prefix>_<secret>`. The prefix finds the row; only a SHA-256
of the secret is stored (the secret is random and long, so a slow password
hash would add latency without adding safety), compared in constant time.
"""

import hashlib
import hmac
import secrets
from datetime import timedelta

from django.contrib.auth.models import User
from django.db import connection
from django.utils import timezone

from .models import ApiKey

KEY_PREFIX = "cs_"
# last_used_at is a hint for the admin, not an audit log: refreshing it at most
# once a minute keeps a write off most requests.
LAST_USED_RESOLUTION = timedelta(minutes=1)


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def create_api_key(*, user: User, name: str = "") -> tuple[ApiKey, str]:
    """Make a key and return it with its only readable copy."""
    prefix, secret = secrets.token_hex(6), secrets.token_urlsafe(32)
    key = ApiKey.objects.create(user=user, name=name, prefix=prefix, hashed_secret=_hash(secret))
    return key, f"{KEY_PREFIX}{prefix}_{secret}"


# The one query behind every Bearer request, written out: the ORM takes ten
# times as long to build this join as the database takes to run it (bench/).
_USER_FOR_PREFIX = """
    SELECT u.*, k.id AS key_id, k.hashed_secret AS key_hash,
           (k.last_used_at IS NULL OR k.last_used_at < %s) AS key_stale
    FROM conversations_apikey k JOIN auth_user u ON u.id = k.user_id
    WHERE k.prefix = %s AND k.revoked_at IS NULL
"""


def user_for_key(raw: str) -> User | None:
    """The active user a presented key belongs to, or None."""
    if not raw.startswith(KEY_PREFIX):
        return None
    prefix, _, secret = raw[len(KEY_PREFIX) :].partition("_")
    now = timezone.now()
    stale_before = connection.ops.adapt_datetimefield_value(now - LAST_USED_RESOLUTION)
    user = next(iter(User.objects.raw(_USER_FOR_PREFIX, [stale_before, prefix])), None)
    if user is None or not user.is_active:
        return None
    key_hash, key_stale, key_id = user.key_hash, user.key_stale, user.key_id  # type: ignore[attr-defined]  # SELECT … AS
    if not hmac.compare_digest(key_hash, _hash(secret)):
        return None
    if key_stale:
        ApiKey.objects.filter(pk=key_id).update(last_used_at=now)
    return user


def revoke(*, key: ApiKey) -> None:
    key.revoked_at = timezone.now()
    key.save(update_fields=["revoked_at"])
