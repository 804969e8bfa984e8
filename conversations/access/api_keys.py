"""Per-user API keys for `Authorization: Bearer <key>`.

A key reads `cs_<prefix>_<secret>`. The prefix finds the row; only a SHA-256
of the secret is stored (the secret is random and long, so a slow password
hash would add latency without adding safety), compared in constant time.
"""

import hashlib
import hmac
import secrets
from datetime import timedelta

from django.contrib.auth import get_user_model
from django.contrib.auth.base_user import AbstractBaseUser
from django.db import connection
from django.utils import timezone

from ..models import ApiKey
from ..storage import sql

KEY_PREFIX = "cs_"
# last_used_at is a hint for the admin, not an audit log: refreshing it at most
# once a minute keeps a write off most requests.
LAST_USED_RESOLUTION = timedelta(minutes=1)


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def create_api_key(*, user: AbstractBaseUser, name: str = "") -> tuple[ApiKey, str]:
    """Make a key and return it with its only readable copy."""
    prefix, secret = secrets.token_hex(6), secrets.token_urlsafe(32)
    key = ApiKey.objects.create(user_id=user.pk, name=name, prefix=prefix, hashed_secret=_hash(secret))
    return key, f"{KEY_PREFIX}{prefix}_{secret}"


def public_part(raw: str) -> str:
    """The part of a presented key that names it (its prefix): what failed
    attempts are counted against, never the secret."""
    prefix = raw[len(KEY_PREFIX) :].partition("_")[0] if raw.startswith(KEY_PREFIX) else ""
    return f"key:{prefix[:16]}" if prefix else "key:malformed"


def user_for_key(raw: str) -> AbstractBaseUser | None:
    """The active user a presented key belongs to, or None."""
    if not raw.startswith(KEY_PREFIX):
        return None
    prefix, _, secret = raw[len(KEY_PREFIX) :].partition("_")
    now = timezone.now()
    stale_before = connection.ops.adapt_datetimefield_value(now - LAST_USED_RESOLUTION)
    user = next(iter(get_user_model().objects.raw(sql.user_for_key_prefix(), [stale_before, prefix])), None)
    if user is None or not user.is_active:
        return None
    key_hash, key_stale, key_id = user.key_hash, user.key_stale, user.key_id  # type: ignore[attr-defined]  # SELECT … AS
    if not hmac.compare_digest(key_hash, _hash(secret)):
        return None
    if key_stale:
        ApiKey.objects.filter(pk=key_id).update(last_used_at=now)
    return user


def key_id_of(user: AbstractBaseUser) -> int | None:
    """The id of the API key a request's user came through (user_for_key
    reads it with the user), or None for a session."""
    return getattr(user, "key_id", None)


def revoke(*, key: ApiKey) -> None:
    key.revoked_at = timezone.now()
    key.save(update_fields=["revoked_at"])
