"""Settings for chatstream's own project, read from the environment (and an
optional .env file, which `make run` writes for development).

The project's Django settings have their defaults here. The app's own
settings (LLM_*, CHATSTREAM_*, REDIS_URL) have theirs in conversations/conf.py,
and are set here only when the environment gives them.
"""

from importlib.util import find_spec
from pathlib import Path

import environ
from django.core.exceptions import ImproperlyConfigured

from conversations.conf import Settings as ChatstreamSettings

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()
# CHATSTREAM_ENV_FILE: another file to read, or "" for none (the tests read none).
env_file = env.str("CHATSTREAM_ENV_FILE", default=str(BASE_DIR / ".env"))
if env_file:
    environ.Env.read_env(env_file)

DEBUG = env.bool("DEBUG", default=False)

# A development key is only acceptable while DEBUG is on: refusing to start
# without one otherwise keeps a guessable key out of production.
SECRET_KEY = env.str("SECRET_KEY", default="")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured(
            "SECRET_KEY is not set. Set it in the environment or .env (`make run` writes a development .env), "
            "or set DEBUG=true for local development."
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

# Anyone may create an account only where this is on: in development by
# default. Otherwise staff create accounts (the admin, `createsuperuser`).
CHATSTREAM_SIGNUP = env.bool("CHATSTREAM_SIGNUP", default=DEBUG)

INSTALLED_APPS = [
    # Before staticfiles: `runserver` serves ASGI (daphne), so answers stream;
    # daphne itself is imported only by that command (chatstream/devserver).
    "chatstream.devserver",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "servestatic",
    "django.contrib.staticfiles",
    "django_tasks_db",
    "conversations",
]
if not find_spec("django.tasks"):  # Django 5.2: the tasks API comes from the django-tasks backport
    INSTALLED_APPS.insert(INSTALLED_APPS.index("django_tasks_db"), "django_tasks")

# Django's own middleware, each replaced by its namesake from
# conversations.middleware: the same classes, with the hooks that do no I/O
# run on the event loop rather than in a thread (docs/deployment.md).
# ServeStatic serves the page's CSS and JavaScript without a proxy in front.
MIDDLEWARE = [
    "conversations.middleware.Security",
    "servestatic.middleware.ServeStaticMiddleware",
    "conversations.middleware.Session",
    "conversations.middleware.Common",
    "conversations.middleware.Csrf",
    "conversations.middleware.Authentication",
    "conversations.middleware.Messages",
    "conversations.middleware.XFrameOptions",
]
if find_spec("django.middleware.csp"):  # Django 6.0 and later
    MIDDLEWARE.append("conversations.middleware.ContentSecurityPolicy")
    from django.utils.csp import CSP

    # Pages run only their own scripts and styles; the chat page sets a
    # stricter policy of its own (conversations/views/pages.py).
    SECURE_CSP = {
        "default-src": [CSP.SELF],
        "script-src": [CSP.SELF],
        "style-src": [CSP.SELF],
        "img-src": [CSP.SELF, "data:"],
        "object-src": [CSP.NONE],
        "base-uri": [CSP.NONE],
        "frame-ancestors": [CSP.NONE],
        "form-action": [CSP.SELF],
    }

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
        # waits for a lock instead of failing at once, no longer than a
        # request waits for the database (CHATSTREAM_DB_TIMEOUT_SECONDS, 5 s).
        {
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
            "transaction_mode": "IMMEDIATE",
            "timeout": 5,
        }
    )

elif DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
    # A database that is down (or unreachable) fails a request in about two
    # seconds, answered as a 503, instead of holding it for psycopg's 30 s.
    DATABASES["default"].setdefault("OPTIONS", {}).setdefault("connect_timeout", 2)
    # A connection whose network went quiet is found dead: keepalives for an
    # idle one, tcp_user_timeout (ms) for one whose query is unacknowledged.
    # The server ends a statement past DATABASE_STATEMENT_TIMEOUT_SECONDS (0:
    # none), so a query whose request gave up on it (after
    # CHATSTREAM_DB_TIMEOUT_SECONDS) does not run on. docs/deployment.md.
    statement_timeout_ms = int(env.float("DATABASE_STATEMENT_TIMEOUT_SECONDS", default=30) * 1000)
    for option, value in {
        "keepalives": 1,
        "keepalives_idle": 10,
        "keepalives_interval": 5,
        "keepalives_count": 3,
        "tcp_user_timeout": 10_000,
        "options": f"-c statement_timeout={statement_timeout_ms}",
    }.items():
        DATABASES["default"]["OPTIONS"].setdefault(option, value)
    # A pool caps the connections a burst of requests can open.
    # DATABASE_POOL_MAX_SIZE=0 turns it off.
    pool_max_size = env.int("DATABASE_POOL_MAX_SIZE", default=20)
    if pool_max_size:
        DATABASES["default"]["OPTIONS"]["pool"] = {
            "min_size": 1,
            "max_size": pool_max_size,
            "timeout": 2,
        }

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

# Every login (this project's form, the admin's) is refused for a while after
# too many failures for the account or from the address (conversations/access/logins.py).
AUTHENTICATION_BACKENDS = ["conversations.access.logins.ThrottledModelBackend"]  # Django's ModelBackend, throttled

LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "conversations:chat"
LOGOUT_REDIRECT_URL = "login"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
# Served from the apps' static folders as they are, with no collectstatic
# step: `uvicorn chatstream.asgi:application` shows a working page. For
# scale, nginx serves STATIC_ROOT after collectstatic (docs/deployment.md).
SERVESTATIC_USE_FINDERS = True

# Uploaded files (docs/files.md): on disk under MEDIA_ROOT, never served
# from MEDIA_URL (only their owner may read them, through the API). For S3
# and others, define STORAGES["chatstream"] with django-storages.
MEDIA_ROOT = env.path("MEDIA_ROOT", default=BASE_DIR / "media")

# LOG_FORMAT: "json" (one object a line, for a log pipeline; the default
# unless DEBUG) or "plain" (`message key=value …`, for a terminal).
LOG_FORMAT = env.str("LOG_FORMAT", default="plain" if DEBUG else "json")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "json": {"()": "conversations.ops.log_format.Json"},
        "plain": {"()": "conversations.ops.log_format.Plain"},
    },
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": LOG_FORMAT}},
    "loggers": {
        "conversations": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="INFO")},
        # Django's own errors (a 500 outside the API among them) with their
        # tracebacks: by default it logs them only with DEBUG on.
        "django": {"handlers": ["console"], "level": "WARNING", "propagate": False},
    },
}

# Background tasks go through the tasks API; the backend is a setting. The
# default keeps jobs in the project's database (`manage.py db_worker` runs
# them). docs/memory.md tells how to move them to Redis (RQ) instead.
TASKS = {
    "default": {
        "BACKEND": env.str("TASKS_BACKEND", default="django_tasks_db.DatabaseBackend"),
        "QUEUES": ["default"],
    }
}

# The app's settings (conversations/conf.py): only those the environment gives.
for _setting in ChatstreamSettings.declared():
    if _setting.name in env.ENVIRON:
        globals()[_setting.name] = _setting.from_env(env)

# In development with the offline demo model (`make run`), the demo model gets
# the demo tools, so the tool loop and its approvals show with no model
# server. CHATSTREAM_TOOLS in the environment (even empty) says otherwise.
DEMO_TOOLS = ["conversations.tools.demo.current_time", "conversations.tools.demo.lookup_order"]
if DEBUG and "CHATSTREAM_TOOLS" not in env.ENVIRON and globals().get("LLM_PROVIDER", "demo") == "demo":
    CHATSTREAM_TOOLS = DEMO_TOOLS
