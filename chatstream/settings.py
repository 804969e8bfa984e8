"""Settings for chatstream, read from the environment (and an optional .env).

Every value the operator may change is an environment variable parsed here with
django-environ; the app reads Django settings only (see conversations/conf.py).
"""

from pathlib import Path

import environ
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()
environ.Env.read_env(BASE_DIR / ".env")

DEBUG = env.bool("DEBUG", default=False)

# A development key is only acceptable while DEBUG is on: refusing to start
# without one otherwise keeps a guessable key out of production.
SECRET_KEY = env.str("SECRET_KEY", default="")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured(
            "SECRET_KEY is not set. Set it in the environment or .env (or set DEBUG=true for local development)."
        )
    SECRET_KEY = "django-insecure-development-only-key-do-not-deploy"

ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["localhost", "127.0.0.1", "[::1]"])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

# HTTPS only, unless DEBUG: `manage.py check --deploy` passes with these.
# Behind nginx, uvicorn's --proxy-headers (Procfile) takes the scheme from
# X-Forwarded-Proto, so Django knows a request came over HTTPS.
SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=not DEBUG)
SESSION_COOKIE_SECURE = env.bool("SESSION_COOKIE_SECURE", default=not DEBUG)
CSRF_COOKIE_SECURE = env.bool("CSRF_COOKIE_SECURE", default=not DEBUG)
SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=0 if DEBUG else 365 * 24 * 3600)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", default=not DEBUG)
SECURE_HSTS_PRELOAD = env.bool("SECURE_HSTS_PRELOAD", default=not DEBUG)

INSTALLED_APPS = [
    "daphne",  # before staticfiles: makes `runserver` serve ASGI, so answers stream
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django_tasks",
    "django_tasks_db",
    "conversations",
]

# Django's stock middleware, with the hooks that do no I/O run on the event
# loop rather than in a thread (see chatstream/middleware.py).
MIDDLEWARE = [
    "chatstream.middleware.Security",
    "chatstream.middleware.Session",
    "chatstream.middleware.Common",
    "chatstream.middleware.Csrf",
    "chatstream.middleware.Authentication",
    "chatstream.middleware.Messages",
    "chatstream.middleware.XFrameOptions",
    "chatstream.middleware.ContentSecurityPolicy",
]

# Django's deploy checks look for the stock middleware by name; ours are
# subclasses that run on the event loop. conversations.checks checks them instead.
SILENCED_SYSTEM_CHECKS = ["security.W001", "security.W002", "security.W003"]

ROOT_URLCONF = "chatstream.urls"
ASGI_APPLICATION = "chatstream.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# DATABASE_URL: sqlite:///db.sqlite3 (default) or postgres://user@host/name,
# which Django serves with psycopg 3.
DATABASES = {"default": env.db("DATABASE_URL", default=f"sqlite:///{BASE_DIR / 'db.sqlite3'}")}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # A file, not memory, for the test database: the real ASGI server in the
    # tests reaches it from other threads.
    DATABASES["default"]["TEST"] = {"NAME": str(BASE_DIR / "test-db.sqlite3")}
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        # WAL lets the admin read while a turn is written; a busy timeout
        # waits for a lock instead of failing at once.
        {
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
            "transaction_mode": "IMMEDIATE",
            "timeout": 20,
        }
    )

elif DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
    # Streams hand their connection back while tokens flow and take one again
    # to save the answer; a pool makes that cheap and caps the connections a
    # burst of new streams can open. DATABASE_POOL_MAX_SIZE=0 turns it off.
    pool_max_size = env.int("DATABASE_POOL_MAX_SIZE", default=20)
    if pool_max_size:
        DATABASES["default"].setdefault("OPTIONS", {})["pool"] = {
            "min_size": 1,
            "max_size": pool_max_size,
            "timeout": 30,
        }

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "chat"
LOGOUT_REDIRECT_URL = "login"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"

# LOG_FORMAT: "json" (one object a line, for a log pipeline; the default
# unless DEBUG) or "plain" (`message key=value …`, for a terminal).
LOG_FORMAT = env.str("LOG_FORMAT", default="plain" if DEBUG else "json")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"json": {"()": "chatstream.log_format.Json"}, "plain": {"()": "chatstream.log_format.Plain"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": LOG_FORMAT}},
    "loggers": {"conversations": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="INFO")}},
}

# GET /metrics (Prometheus) answers this Bearer token, or a staff session.
CHATSTREAM_METRICS_TOKEN = env.str("CHATSTREAM_METRICS_TOKEN", default="")

# --- The model ---------------------------------------------------------------
LLM_PROVIDER = env.str("LLM_PROVIDER", default="demo")  # "demo", "openai" or a dotted path
LLM_BASE_URL = env.str("LLM_BASE_URL", default="https://api.openai.com/v1")
LLM_API_KEY = env.str("LLM_API_KEY", default="")
LLM_MODEL = env.str("LLM_MODEL", default="demo-1")
LLM_FIRST_TOKEN_TIMEOUT = env.float("LLM_FIRST_TOKEN_TIMEOUT", default=30.0)
LLM_IDLE_TIMEOUT = env.float("LLM_IDLE_TIMEOUT", default=60.0)
LLM_DEMO_TOKENS_PER_SECOND = env.float("LLM_DEMO_TOKENS_PER_SECOND", default=30.0)
LLM_DEMO_FIRST_TOKEN_DELAY = env.float("LLM_DEMO_FIRST_TOKEN_DELAY", default=0.3)
# Before any text has reached the client, a failed call is tried again
# LLM_RETRIES times (transient failures: unreachable, 5xx, 429, timeouts) after
# BACKOFF, 2x BACKOFF... seconds with jitter, or the server's Retry-After (up
# to MAX_WAIT), then each of LLM_FALLBACK_MODELS in turn (comma-separated).
LLM_RETRIES = env.int("LLM_RETRIES", default=2)
LLM_RETRY_BACKOFF_SECONDS = env.float("LLM_RETRY_BACKOFF_SECONDS", default=0.5)
LLM_RETRY_MAX_WAIT_SECONDS = env.float("LLM_RETRY_MAX_WAIT_SECONDS", default=10.0)
LLM_FALLBACK_MODELS = env.list("LLM_FALLBACK_MODELS", default=[])
LLM_MEMORY_MODEL = env.str("LLM_MEMORY_MODEL", default="")  # the memory's model; LLM_MODEL when empty
LLM_CONTEXT_TOKENS = env.int("LLM_CONTEXT_TOKENS", default=8000)  # prompt budget: memory plus recent turns
LLM_SYSTEM_PROMPT = env.str("LLM_SYSTEM_PROMPT", default="You are a helpful assistant. Answer in markdown.")

# --- The stream --------------------------------------------------------------
CHATSTREAM_HEARTBEAT_SECONDS = env.float("CHATSTREAM_HEARTBEAT_SECONDS", default=15.0)
CHATSTREAM_MAX_BODY_BYTES = env.int("CHATSTREAM_MAX_BODY_BYTES", default=1024 * 1024)
CHATSTREAM_MAX_MESSAGE_CHARS = env.int("CHATSTREAM_MAX_MESSAGE_CHARS", default=32_000)
# On SIGTERM, answers get this long to end before they are saved as
# interrupted; keep uvicorn's --timeout-graceful-shutdown longer (Procfile).
CHATSTREAM_SHUTDOWN_GRACE_SECONDS = env.float("CHATSTREAM_SHUTDOWN_GRACE_SECONDS", default=20.0)
# Mask e-mail addresses, phone numbers and payment card numbers in answers
# as they stream (conversations/redaction.py).
CHATSTREAM_REDACT = env.bool("CHATSTREAM_REDACT", default=False)
# Per user (API keys and session together); 0 turns a limit off.
CHATSTREAM_MAX_CONCURRENT_STREAMS = env.int("CHATSTREAM_MAX_CONCURRENT_STREAMS", default=3)
CHATSTREAM_MESSAGES_PER_MINUTE = env.int("CHATSTREAM_MESSAGES_PER_MINUTE", default=20)
# Threads (each with one open database connection) that run the API's ORM work.
CHATSTREAM_DB_THREADS = env.int("CHATSTREAM_DB_THREADS", default=4)
# When the last reader of an answer goes: "cancel" stops the model at once;
# "continue" lets it run this many seconds for the client to come back.
CHATSTREAM_ON_DISCONNECT = env.str("CHATSTREAM_ON_DISCONNECT", default="cancel")
CHATSTREAM_RESUME_GRACE_SECONDS = env.float("CHATSTREAM_RESUME_GRACE_SECONDS", default=30.0)
# Memory updates: a failed model call is tried again after BACKOFF, 2x BACKOFF,
# 4x BACKOFF... seconds, ATTEMPTS times in all, then the memory is marked failed.
CHATSTREAM_MEMORY_ATTEMPTS = env.int("CHATSTREAM_MEMORY_ATTEMPTS", default=4)
CHATSTREAM_MEMORY_BACKOFF_SECONDS = env.float("CHATSTREAM_MEMORY_BACKOFF_SECONDS", default=2.0)

# --- Several processes ---------------------------------------------------------
# REDIS_URL (redis://host:6379/0) shares answers being generated between
# processes: their journal in Redis Streams, live events and cancels over the
# Channels layer. Unset, one process serves everything from memory.
REDIS_URL = env.str("REDIS_URL", default="")
# An answer's journal keeps at most this many entries (each a run of text).
CHATSTREAM_JOURNAL_MAX_ENTRIES = env.int("CHATSTREAM_JOURNAL_MAX_ENTRIES", default=10_000)
if REDIS_URL:
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            # A reader that falls behind by more than `capacity` messages
            # loses some; it notices the gap and reads it from the journal.
            "CONFIG": {"hosts": [REDIS_URL], "prefix": "chatstream", "capacity": 1000},
        }
    }

# Background tasks go through the django-tasks API; the backend is a setting.
# The default keeps jobs in the project's database (`manage.py db_worker` runs
# them). See the README to move them to Redis (RQ) instead.
TASKS = {
    "default": {
        "BACKEND": env.str("TASKS_BACKEND", default="django_tasks_db.DatabaseBackend"),
        "QUEUES": ["default"],
    }
}

# Django refuses bodies larger than this before the view runs; the API turns
# that refusal into a 413 with the JSON error shape.
DATA_UPLOAD_MAX_MEMORY_SIZE = CHATSTREAM_MAX_BODY_BYTES
