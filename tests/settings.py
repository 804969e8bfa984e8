"""Settings for the test suite: the project's own, with a throwaway key, on
one of two stacks (CHATSTREAM_TEST_STACK):

- `stock`: Django's own ASGI handler and middleware, as a project that
  installs the app would serve it;
- `fast` (the default): chatstream's project as it ships, with the opt-in
  handler and middleware (conversations/asgi.py, conversations/middleware.py).
"""

import os

os.environ.setdefault("SECRET_KEY", "tests-only-not-secret")
os.environ.setdefault("DEBUG", "false")  # whatever a development .env says

from chatstream.settings import *  # noqa: E402,F403
from chatstream.settings import MIDDLEWARE  # noqa: E402

# The stock class each of the project's middleware stands in for.
STOCK_MIDDLEWARE = {
    "conversations.middleware.Security": "django.middleware.security.SecurityMiddleware",
    "conversations.middleware.Session": "django.contrib.sessions.middleware.SessionMiddleware",
    "conversations.middleware.Common": "django.middleware.common.CommonMiddleware",
    "conversations.middleware.Csrf": "django.middleware.csrf.CsrfViewMiddleware",
    "conversations.middleware.Authentication": "django.contrib.auth.middleware.AuthenticationMiddleware",
    "conversations.middleware.Messages": "django.contrib.messages.middleware.MessageMiddleware",
    "conversations.middleware.XFrameOptions": "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "conversations.middleware.ContentSecurityPolicy": "django.middleware.csp.ContentSecurityPolicyMiddleware",
}

STACK = os.environ.get("CHATSTREAM_TEST_STACK", "fast")
if STACK == "stock":
    MIDDLEWARE = [STOCK_MIDDLEWARE.get(entry, entry) for entry in MIDDLEWARE]
    SILENCED_SYSTEM_CHECKS: list[str] = []
elif STACK != "fast":
    raise ValueError(f"CHATSTREAM_TEST_STACK is {STACK!r}: use stock or fast")

# Hashing a password the fast way keeps log-in tests quick; no real password is stored.
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]

# Retries keep their number, with waits short enough for the suite.
LLM_RETRY_BACKOFF_SECONDS = 0.01

# Most tests send many messages quickly; tests/test_limits.py turns the limits on.
CHATSTREAM_MAX_CONCURRENT_STREAMS = int(os.environ.get("CHATSTREAM_MAX_CONCURRENT_STREAMS", 0))
CHATSTREAM_MESSAGES_PER_MINUTE = int(os.environ.get("CHATSTREAM_MESSAGES_PER_MINUTE", 0))

# The test servers speak plain HTTP on loopback.
SECURE_SSL_REDIRECT = SESSION_COOKIE_SECURE = CSRF_COOKIE_SECURE = False
SECURE_HSTS_SECONDS = 0
