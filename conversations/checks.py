"""System checks: a misconfiguration fails at start-up with a sentence that names the fix."""

import os
from decimal import Decimal, InvalidOperation
from urllib.parse import urlsplit

from django.conf import settings
from django.core.checks import Error, Tags, Warning, register

from .catalogue import CatalogueError, catalogue, default_entry
from .conf import conf
from .exceptions import GuardrailsError, McpServersError, NotATool, ToolDefinitionError, ToolImportError
from .guardrails.loading import guardrail_paths, load_guardrail
from .providers import PROVIDERS, load_provider_class
from .queued import WHILE_ANSWERING
from .routing import RouterError, router
from .spend.pricing import settings_prices
from .tools.definition import Tool
from .tools.mcp import McpServer, mcp_servers
from .tools.mcp.servers import headers_from
from .tools.registry import load_tool


@register()
def check_llm_settings(app_configs, **kwargs) -> list[Error]:
    errors = []
    if not _is_provider(conf.LLM_PROVIDER):
        errors.append(
            Error(
                f"LLM_PROVIDER {conf.LLM_PROVIDER!r} is not a known provider.",
                hint=f"Use one of {', '.join(sorted(PROVIDERS))} or the dotted path of a Provider class.",
                id="conversations.E001",
            )
        )
    if conf.LLM_PROVIDER != "demo":
        if not _is_http_url(conf.LLM_BASE_URL):
            errors.append(
                Error(
                    f"LLM_BASE_URL {conf.LLM_BASE_URL!r} is not an http(s) URL.",
                    hint="Set LLM_BASE_URL to the server's API root, e.g. http://127.0.0.1:8000/v1.",
                    id="conversations.E002",
                )
            )
        if not conf.LLM_MODEL:
            errors.append(
                Error(
                    "LLM_MODEL is empty.", hint="Set LLM_MODEL to a model the server serves.", id="conversations.E003"
                )
            )
    for name in (
        "LLM_FIRST_TOKEN_TIMEOUT",
        "LLM_IDLE_TIMEOUT",
        "CHATSTREAM_HEARTBEAT_SECONDS",
        "CHATSTREAM_RESUME_GRACE_SECONDS",
        "CHATSTREAM_WORKER_LEASE_SECONDS",
        "CHATSTREAM_TOOL_TIMEOUT_SECONDS",
        "CHATSTREAM_APPROVAL_TIMEOUT_SECONDS",
        "CHATSTREAM_PDF_TIMEOUT_SECONDS",
        "CHATSTREAM_GUARDRAIL_TIMEOUT_SECONDS",
    ):
        if getattr(conf, name) <= 0:
            errors.append(Error(f"{name} must be a positive number of seconds.", id="conversations.E004"))
    for name in (
        "CHATSTREAM_MAX_BODY_BYTES",
        "CHATSTREAM_MAX_MESSAGE_CHARS",
        "LLM_MAX_OUTPUT_TOKENS",
        "LLM_MAX_EVENT_BYTES",
        "CHATSTREAM_TOOL_OUTPUT_CHARS",
        "CHATSTREAM_TOOL_CONCURRENCY",
        "CHATSTREAM_MAX_TOOL_STEPS",
        "CHATSTREAM_MAX_FILE_BYTES",
        "CHATSTREAM_MAX_FILES_PER_MESSAGE",
        "CHATSTREAM_PDF_MAX_PAGES",
    ):
        if getattr(conf, name) <= 0:
            errors.append(Error(f"{name} must be a positive whole number.", id="conversations.E005"))
    if settings.CSRF_USE_SESSIONS and "conversations.middleware.Csrf" in settings.MIDDLEWARE:
        errors.append(
            Error(
                "CSRF_USE_SESSIONS needs a session load, which conversations.middleware.Csrf cannot do on the loop.",
                hint="Leave CSRF_USE_SESSIONS off, or use django.middleware.csrf.CsrfViewMiddleware.",
                id="conversations.E006",
            )
        )
    if conf.CHATSTREAM_ON_DISCONNECT not in ("cancel", "continue"):
        errors.append(
            Error(
                f"CHATSTREAM_ON_DISCONNECT {conf.CHATSTREAM_ON_DISCONNECT!r} is not a policy.",
                hint='Use "cancel" (stop the model when the client goes) or "continue" (wait for it to come back).',
                id="conversations.E007",
            )
        )
    if conf.CHATSTREAM_WHILE_ANSWERING not in WHILE_ANSWERING:
        errors.append(
            Error(
                f"CHATSTREAM_WHILE_ANSWERING {conf.CHATSTREAM_WHILE_ANSWERING!r} is not a choice.",
                hint=f"Use one of {', '.join(WHILE_ANSWERING)}.",
                id="conversations.E024",
            )
        )
    if conf.REDIS_URL and urlsplit(conf.REDIS_URL).scheme not in ("redis", "rediss", "unix"):
        errors.append(
            Error(
                f"REDIS_URL {conf.REDIS_URL!r} is not a Redis URL.",
                hint="Use redis://host:6379/0 (rediss:// for TLS), or leave it empty for a single process.",
                id="conversations.E008",
            )
        )
    errors += _guardrail_errors()
    return errors + _catalogue_errors() + _router_errors() + _money_errors() + _tool_errors() + _mcp_errors()


def _guardrail_errors() -> list[Error]:
    """CHATSTREAM_GUARDRAILS: each path a class with a hook; the failure policy a policy."""
    errors = []
    for path in guardrail_paths():
        try:
            load_guardrail(path)
        except GuardrailsError as exc:
            errors.append(Error(str(exc), hint="See docs/guardrails.md.", id="conversations.E030"))
    if conf.CHATSTREAM_GUARDRAIL_FAILURE not in ("open", "closed"):
        errors.append(
            Error(
                f"CHATSTREAM_GUARDRAIL_FAILURE {conf.CHATSTREAM_GUARDRAIL_FAILURE!r} is not a policy.",
                hint='Use "open" (a failed guardrail lets things through) or "closed" (it refuses or stops them).',
                id="conversations.E031",
            )
        )
    return errors


def _router_errors() -> list[Error]:
    try:
        router()
    except (RouterError, CatalogueError, AttributeError, ValueError) as exc:
        return [Error(str(exc), hint="See docs/models.md (LLM_ROUTER).", id="conversations.E015")]
    return []


def _catalogue_errors() -> list[Error]:
    """LLM_MODELS and LLM_DEFAULT_MODEL: every entry usable, its key set.
    (Without LLM_MODELS the LLM_* settings are the one entry, checked above.)"""
    if not conf.LLM_MODELS and not conf.LLM_DEFAULT_MODEL:
        return []
    try:
        default_entry()
        entries = catalogue().values()
    except (CatalogueError, AttributeError, ValueError) as exc:
        return [Error(str(exc), hint="See docs/configuration.md (LLM_MODELS).", id="conversations.E011")]
    errors = []
    for entry in entries:
        if not _is_provider(entry.provider):
            errors.append(
                Error(
                    f"LLM_MODELS[{entry.name!r}] names provider {entry.provider!r}, which is not a provider.",
                    hint=f"Use one of {', '.join(sorted(PROVIDERS))} or the dotted path of a Provider class.",
                    id="conversations.E012",
                )
            )
        if entry.provider != "demo" and not _is_http_url(entry.base_url):
            errors.append(
                Error(
                    f"LLM_MODELS[{entry.name!r}] has base_url {entry.base_url!r}, not an http(s) URL.",
                    hint="Give the server's API root, e.g. http://127.0.0.1:11434/v1.",
                    id="conversations.E013",
                )
            )
        if entry.api_key_env and not os.environ.get(entry.api_key_env):
            errors.append(
                Error(
                    f"LLM_MODELS[{entry.name!r}] reads its key from ${entry.api_key_env}, which is not set.",
                    hint=f"Set {entry.api_key_env} in the environment (or .env), or drop api_key_env.",
                    id="conversations.E014",
                )
            )
    return errors


def _tool_errors() -> list[Error]:
    """CHATSTREAM_TOOLS: each path a tool whose schema can be built, each
    name once; and every name an entry's tool_names lists, one of them."""
    errors, tools = _loaded_tools()
    names: set[str] = set()
    for tool in tools:
        try:
            tool.spec()  # builds the schema
        except ToolDefinitionError as exc:
            errors.append(Error(str(exc), hint=SCHEMA_HINT, id="conversations.E018"))
        if tool.name in names:
            errors.append(
                Error(
                    f"Two tools in CHATSTREAM_TOOLS are named {tool.name!r}.",
                    hint="Give one another name with @tool(name=...).",
                    id="conversations.E019",
                )
            )
        names.add(tool.name)
    return errors + _tool_name_errors(names, complete=len(tools) == len(conf.CHATSTREAM_TOOLS))


SCHEMA_HINT = "Annotate each parameter with a type pydantic can validate (docs/tools.md)."


def _loaded_tools() -> tuple[list[Error], list[Tool]]:
    errors, tools = [], []
    for path in conf.CHATSTREAM_TOOLS:
        try:
            tools.append(load_tool(path))
        except ToolImportError as exc:
            errors.append(Error(str(exc), hint="Give the dotted path of an @tool function.", id="conversations.E016"))
        except NotATool as exc:
            errors.append(Error(str(exc), id="conversations.E017"))
        except ToolDefinitionError as exc:  # raised by @tool as the module imported (a name it cannot take)
            errors.append(Error(str(exc), id="conversations.E018"))
    return errors, tools


def _tool_name_errors(names: set[str], *, complete: bool) -> list[Error]:
    if not complete:  # a tool that did not load may be the one named: said above already
        return []
    try:
        entries = catalogue().values()
        # An MCP server's tools are known once it is listed, not here (no
        # network at start-up): a name with its prefix is taken on trust.
        prefixes = tuple(server.prefix for server in mcp_servers())
    except (CatalogueError, McpServersError):
        return []  # reported by _catalogue_errors, _mcp_errors
    return [
        Error(
            f"LLM_MODELS[{entry.name!r}] lists {name!r} in tool_names, but no tool in CHATSTREAM_TOOLS has that name.",
            hint=f"Name one of CHATSTREAM_TOOLS' tools: {', '.join(sorted(names)) or '(there are none)'}.",
            id="conversations.E020",
        )
        for entry in entries
        for name in entry.tool_names or ()
        if name not in names and not name.startswith(prefixes)
    ]


def _mcp_errors() -> list[Error]:
    """CHATSTREAM_MCP_SERVERS: each server a name, a URL and headers that can be read."""
    try:
        servers = mcp_servers()
    except McpServersError as exc:
        return [Error(str(exc), hint="See docs/tools.md (MCP servers).", id="conversations.E021")]
    return [error for server in servers if (error := _headers_error(server)) is not None]


def _headers_error(server: McpServer) -> Error | None:
    if not server.headers_env:
        return None
    try:
        headers_from(os.environ.get(server.headers_env, ""))
    except ValueError as exc:
        return Error(
            f"CHATSTREAM_MCP_SERVERS[{server.name!r}] reads its headers from ${server.headers_env}, which {exc}.",
            hint=f'Set {server.headers_env} to a JSON object such as {{"Authorization": "Bearer …"}}.',
            id="conversations.E022",
        )
    return None


def _is_provider(name: str) -> bool:
    try:
        load_provider_class(name)
    except (ImportError, ValueError):
        return False
    return True


def _is_http_url(value: str) -> bool:
    url = urlsplit(value)
    return url.scheme in ("http", "https") and bool(url.netloc)


def _money_errors() -> list[Error]:
    """LLM_PRICES and the budgets: numbers a bill depends on."""
    errors = []
    try:
        settings_prices()
    except CatalogueError:
        pass  # reported by _catalogue_errors
    except (ValueError, AttributeError) as exc:
        errors.append(
            Error(
                f"A price table is wrong: {exc}.",
                hint='Map each model id to {"input": 2.5, "cached_input": 1.25, "output": 10} (per million tokens).',
                id="conversations.E009",
            )
        )
    for name in ("CHATSTREAM_DAILY_BUDGET", "CHATSTREAM_MONTHLY_BUDGET"):
        value = getattr(conf, name).strip()
        try:
            valid = not value or Decimal(value) >= 0
        except InvalidOperation:
            valid = False
        if not valid:
            errors.append(
                Error(
                    f"{name} {value!r} is not an amount.",
                    hint="Give a number in LLM_PRICES' currency, e.g. 5 or 0.50, or leave it empty for none.",
                    id="conversations.E010",
                )
            )
    return errors


# Each stock security middleware, and the subclass of it that runs on the loop.
SECURITY_MIDDLEWARE = {
    "django.middleware.security.SecurityMiddleware": "conversations.middleware.Security",
    "django.middleware.clickjacking.XFrameOptionsMiddleware": "conversations.middleware.XFrameOptions",
    "django.middleware.csrf.CsrfViewMiddleware": "conversations.middleware.Csrf",
}


@register(Tags.security, deploy=True)
def check_security_middleware(app_configs, **kwargs) -> list[Warning]:
    """What security.W001-W003 check, for a project on the opt-in middleware
    (Django's checks know only the stock names, so such a project silences them)."""
    if not any(entry.startswith("conversations.middleware.") for entry in settings.MIDDLEWARE):
        return []  # the stock middleware: Django's own checks apply
    return [
        Warning(
            f"Neither {stock} nor {inline} is in MIDDLEWARE.",
            hint="Add the stock middleware, or its namesake from conversations.middleware.",
            id="conversations.W001",
        )
        for stock, inline in SECURITY_MIDDLEWARE.items()
        if stock not in settings.MIDDLEWARE and inline not in settings.MIDDLEWARE
    ]


@register(Tags.security, deploy=True)
def check_deploy_through_the_opt_in_middleware(app_configs, **kwargs) -> list:
    """Django's deploy checks of HTTPS, HSTS, cookies and headers run only
    when they find the stock middleware's names: on the opt-in middleware
    they would pass without looking. This runs them as if the stock
    middleware stood where its subclasses do, and gives what they find."""
    if not any(entry in SECURITY_MIDDLEWARE.values() for entry in settings.MIDDLEWARE):
        return []
    from django.core.checks.registry import registry
    from django.test.utils import override_settings

    stock = {inline: name for name, inline in SECURITY_MIDDLEWARE.items()}
    stock |= {"conversations.middleware.Session": "django.contrib.sessions.middleware.SessionMiddleware"}
    as_stock = [stock.get(entry, entry) for entry in settings.MIDDLEWARE]
    security_checks = [
        check
        for check in registry.get_checks(include_deployment_checks=True)
        if Tags.security in check.tags and check is not check_deploy_through_the_opt_in_middleware
    ]

    def run_them() -> list:
        return [message for check in security_checks for message in check(app_configs=app_configs, databases=None)]

    found_already = {message.id for message in run_them()}
    with override_settings(MIDDLEWARE=as_stock):
        found = run_them()
    return [message for message in found if message.id not in found_already]


@register()
def check_file_settings(app_configs, **kwargs) -> list:
    """Files (docs/files.md): a TTL, a known way to send images, and a
    storage that is not wherever the server happens to start."""
    problems: list = []
    if conf.CHATSTREAM_UPLOAD_TTL_HOURS <= 0:
        problems.append(
            Error("CHATSTREAM_UPLOAD_TTL_HOURS must be a positive number of hours.", id="conversations.E004")
        )
    if conf.CHATSTREAM_FILE_URLS not in ("data", "storage"):
        problems.append(
            Error(
                f"CHATSTREAM_FILE_URLS {conf.CHATSTREAM_FILE_URLS!r} is neither `data` nor `storage`.",
                hint="`data` sends images in the request; `storage` sends the storage's URL (S3 and the like).",
                id="conversations.E023",
            )
        )
    if "chatstream" not in settings.STORAGES and not settings.MEDIA_ROOT and _default_storage_is_on_disk():
        problems.append(
            Warning(
                "Uploaded files would be stored in the directory the server starts in (MEDIA_ROOT is empty).",
                hint='Set MEDIA_ROOT, or STORAGES["chatstream"] (e.g. S3 through django-storages: docs/files.md).',
                id="conversations.W002",
            )
        )
    return problems


def _default_storage_is_on_disk() -> bool:
    backend = settings.STORAGES.get("default", {}).get("BACKEND", "")
    return backend == "django.core.files.storage.FileSystemStorage"
