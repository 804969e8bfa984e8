"""Settings for the test suite: the project's own on the stack
CHATSTREAM_STACK names (harness/stacks.py: `stock`, Django's own handler and
middleware as a project that installs the app serves it, or `fast`, the
project's opt-in ones, the default), with a throwaway key."""

import atexit
import os
import shutil
import tempfile

# Whatever a development .env says, the tests read none (their server
# processes inherit this); the key is a throwaway.
os.environ["CHATSTREAM_ENV_FILE"] = ""
os.environ.setdefault("SECRET_KEY", "tests-only-not-secret")

from harness.settings import *  # noqa: E402,F403

# Hashing a password the fast way keeps log-in tests quick; no real password is stored.
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]

# Retries keep their number, with waits short enough for the suite.
LLM_RETRY_BACKOFF_SECONDS = 0.01

# Most tests send many messages quickly; tests/test_limits.py turns the limits on.
CHATSTREAM_MAX_CONCURRENT_STREAMS = int(os.environ.get("CHATSTREAM_MAX_CONCURRENT_STREAMS", 0))
CHATSTREAM_MESSAGES_PER_MINUTE = int(os.environ.get("CHATSTREAM_MESSAGES_PER_MINUTE", 0))
# Every test client comes from 127.0.0.1, and some send wrong keys on purpose;
# tests/test_hostile.py turns the throttle on.
CHATSTREAM_AUTH_FAILURES = int(os.environ.get("CHATSTREAM_AUTH_FAILURES", 0))
CHATSTREAM_AUTH_ACCOUNT_FAILURES = int(os.environ.get("CHATSTREAM_AUTH_ACCOUNT_FAILURES", 0))

# Uploads go to a folder of the run's own, never into the checkout (tests
# that look at the disk give each test a folder: the `stored_in` fixture).
MEDIA_ROOT = tempfile.mkdtemp(prefix="chatstream-test-media-")
atexit.register(shutil.rmtree, MEDIA_ROOT, ignore_errors=True)

# The test servers speak plain HTTP on loopback.
SECURE_SSL_REDIRECT = SESSION_COOKIE_SECURE = CSRF_COOKIE_SECURE = False
SECURE_HSTS_SECONDS = 0
