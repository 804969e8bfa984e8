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


def user_for_key(raw: str) -> User | None:
    """The active user a presented key belongs to, or None."""
    if not raw.startswith(KEY_PREFIX):
        return None
    prefix, _, secret = raw[len(KEY_PREFIX) :].partition("_")
    key = ApiKey.objects.select_related("user").filter(prefix=prefix, revoked_at__isnull=True).first()
    if key is None or not hmac.compare_digest(key.hashed_secret, _hash(secret)) or not key.user.is_active:
        return None
    now = timezone.now()
    if key.last_used_at is None or now - key.last_used_at > LAST_USED_RESOLUTION:
        ApiKey.objects.filter(pk=key.pk).update(last_used_at=now)
    return key.user


def revoke(*, key: ApiKey) -> None:
    key.revoked_at = timezone.now()
    key.save(update_fields=["revoked_at"])
