"""chatstream's settings: each one's default and meaning, written once.

The app reads Django settings only, here, at call time (so `override_settings`
works): `conf.LLM_MODEL`. A project sets any of them in its settings module;
chatstream's own project (chatstream/settings.py) sets each one only when the
environment gives it. `manage.py chatstream_settings` prints them all with
their values; docs/configuration.md's table is its `--markdown` output.
"""

from typing import Any, Generic, TypeVar, overload

from django.conf import settings

T = TypeVar("T")


class Setting(Generic[T]):
    """A setting's default and description; read on an instance, its value."""

    def __init__(self, default: T, description: str, *, empty_means: str = "", secret: bool = False) -> None:
        self.default = default
        self.description = description
        self.empty_means = empty_means  # an empty value falls back to this other setting
        self.secret = secret
        self.name = ""

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    @overload
    def __get__(self, instance: None, owner: type) -> "Setting[T]": ...

    @overload
    def __get__(self, instance: object, owner: type) -> T: ...

    def __get__(self, instance: object | None, owner: type) -> "T | Setting[T]":
        if instance is None:
            return self
        value = getattr(settings, self.name, self.default)
        if not value and self.empty_means:
            return getattr(instance, self.empty_means)
        return self.kind(value)

    @property
    def kind(self) -> type:
        return type(self.default)

    def from_env(self, env: Any) -> T:
        """The value a django-environ `Env` holds for this setting."""
        read = {bool: env.bool, int: env.int, float: env.float, list: env.list, dict: env.json}.get(self.kind, env.str)
        return read(self.name)


class Settings:
    # --- the model ---------------------------------------------------------------
    LLM_PROVIDER = Setting(
        "demo", "`demo` (offline), `openai` for any OpenAI-compatible server, or the dotted path of a `Provider`"
    )
    LLM_BASE_URL = Setting(
        "https://api.openai.com/v1",
        "the server's API root, e.g. vLLM `http://127.0.0.1:8000/v1`, Ollama `http://127.0.0.1:11434/v1`",
    )
    LLM_API_KEY = Setting("", "sent as `Authorization: Bearer`; never shown to clients, saved or logged", secret=True)
    LLM_MODEL = Setting("demo-1", "the model the server is asked for")
    LLM_MODELS = Setting[dict](
        {},
        'JSON: the models users choose from, by name: `{"small": {"model": "qwen3:4b", "base_url": '
        '"http://127.0.0.1:11434/v1"}, "big": {"model": "gpt-4.1", "api_key_env": "OPENAI_API_KEY"}}`, each with '
        "`provider`, `base_url`, `api_key_env`, `model`, `prices`, `context_tokens`, `max_output_tokens`, "
        "`reasoning`, `tools`, `tool_names`, `vision`, `parameters` (sent with every call, e.g. "
        '`{"temperature": 0.2}`), `forbid` (parameters a conversation may not set, e.g. `["seed"]`) (all but '
        "`model` optional, from the LLM_* settings). Empty: the one "
        "model LLM_MODEL names",
    )
    LLM_DEFAULT_MODEL = Setting("", "the LLM_MODELS entry used when none is chosen (empty: the first)")
    LLM_MAX_OUTPUT_TOKENS = Setting(
        8192,
        "the most tokens an answer may have, sent as `max_tokens` with every model call (a larger bound from an "
        "OpenAI client is lowered to it); an LLM_MODELS entry's `max_output_tokens` overrides it",
    )
    LLM_ROUTER = Setting[dict](
        {},
        'JSON: `"model": "auto"` goes to `{"small": name, "big": name, "rules": [{"if": {"min_chars": n} | '
        '{"pattern": regex} | {"min_turns": n}, "use": "big" | "small"}], "classify": false, '
        '"classify_timeout": 2}`: the first rule that matches, else the small model\'s one-word verdict '
        "(`classify`), else small",
    )
    LLM_FIRST_TOKEN_TIMEOUT = Setting(30.0, "seconds to wait for the model's first token")
    LLM_IDLE_TIMEOUT = Setting(60.0, "seconds of silence from the model, after its first token, before it is cut")
    LLM_RETRIES = Setting(
        2,
        "before the first token only: a call that failed in a way that may pass (unreachable, 408/409/429/5xx, "
        "no first token in time, cut before any text) is tried again this many times",
    )
    LLM_RETRY_BACKOFF_SECONDS = Setting(
        0.5, "the first retry's wait ceiling, doubled each time, with full jitter (or the server's `Retry-After`)"
    )
    LLM_RETRY_MAX_WAIT_SECONDS = Setting(10.0, "the longest wait before a retry; a longer `Retry-After` is not waited")
    LLM_MAX_EVENT_BYTES = Setting(
        8 * 1024 * 1024,
        "the longest single event the model's stream may send, in bytes; a longer one ends the answer with an "
        "error (`upstream_event_too_large`) rather than filling the process's memory",
    )
    LLM_FALLBACK_MODELS = Setting[list[str]](
        [], "comma-separated models tried in order when the model still fails before its first token"
    )
    LLM_DEMO_TOKENS_PER_SECOND = Setting(30.0, "the demo model's pace")
    LLM_DEMO_FIRST_TOKEN_DELAY = Setting(0.3, "the demo model's wait before its first token, in seconds")
    LLM_VISION = Setting(
        False,
        'the one model (without LLM_MODELS) can see images; an LLM_MODELS entry says `"vision": true` '
        "(the demo model always can)",
    )
    LLM_DEMO_REASONING = Setting(False, "the demo model thinks aloud (streamed as `reasoning`) before it answers")
    LLM_REASONING_IN_PROMPT = Setting(
        False, "send earlier answers' reasoning back to the model (as `<think>…</think>` before their text)"
    )
    LLM_PRICES = Setting[dict](
        {},
        'JSON: a model id to its prices per million tokens, `{"input": 2.5, "cached_input": 1.25, '
        '"output": 10}`; the admin\'s model prices override it. A model without a price: turns cost nothing',
    )
    # --- prompts and memory -----------------------------------------------------------
    LLM_SYSTEM_PROMPT = Setting("You are a helpful assistant. Answer in markdown.", "the first message of every prompt")
    LLM_CONTEXT_TOKENS = Setting(8000, "prompt budget in estimated tokens: the memory, then the newest turns that fit")
    LLM_MEMORY_MODEL = Setting("", "the (cheaper) model that writes conversations' memory", empty_means="LLM_MODEL")
    CHATSTREAM_MEMORY_ATTEMPTS = Setting(4, "tries of a memory update before the memory is marked failed")
    CHATSTREAM_MEMORY_BACKOFF_SECONDS = Setting(2.0, "the first memory retry's delay, then doubled")
    CHATSTREAM_WORKER_LEASE_SECONDS = Setting(
        30.0,
        "a `db_worker` renews its lease on the memory job it runs three times this often; a job whose lease "
        "lapsed (its worker died) is queued again by another worker, or failed after CHATSTREAM_MEMORY_ATTEMPTS",
    )
    # --- tools (conversations/tools/, docs/tools.md) -------------------------------------
    CHATSTREAM_TOOLS = Setting[list[str]](
        [],
        "comma-separated dotted paths of `@tool` functions models may call; an LLM_MODELS entry with "
        '`"tools": true` gets them all, with `"tool_names"` only those (without LLM_MODELS the one model gets '
        "them all)",
    )
    CHATSTREAM_MCP_SERVERS = Setting[dict](
        {},
        'JSON: MCP servers whose tools models may call, by name: `{"files": {"url": "http://127.0.0.1:8808/mcp", '
        '"headers_env": "FILES_MCP_HEADERS", "tool_names": ["read_file"]}}` (streamable HTTP; `headers_env` '
        "names an environment variable holding a JSON object of headers; `tool_names` keeps only those of the "
        "server's tools). The model sees each tool as `<server>__<tool>`; like CHATSTREAM_TOOLS' tools, an "
        "LLM_MODELS entry gets them with `tools` or by name in `tool_names`",
    )
    CHATSTREAM_TOOL_TIMEOUT_SECONDS = Setting(
        30.0, "how long a tool call may run before the model is told it timed out (a tool's own `timeout` overrides it)"
    )
    CHATSTREAM_TOOL_OUTPUT_CHARS = Setting(
        20_000, "a tool's output (or error) longer than this is cut, with a note to the model saying so"
    )
    CHATSTREAM_TOOL_CONCURRENCY = Setting(4, "the most tool calls of one model reply that run at once")
    CHATSTREAM_MAX_TOOL_STEPS = Setting(
        8, "model calls one answer may make while tools run; the last is asked to answer without tools"
    )
    CHATSTREAM_APPROVAL_TIMEOUT_SECONDS = Setting(
        600.0, "how long a call to a `needs_approval` tool waits for the user's decision before the answer ends"
    )
    # --- files (conversations/files/, docs/files.md) ------------------------------------
    CHATSTREAM_MAX_FILE_BYTES = Setting(20 * 1024 * 1024, "the largest file `POST api/files` takes (413 above it)")
    CHATSTREAM_MAX_FILES_PER_MESSAGE = Setting(10, "how many files one message may name (400 above it)")
    CHATSTREAM_USER_FILE_QUOTA_BYTES = Setting(
        1024 * 1024 * 1024, "what one user's files may add up to (413 `quota_exceeded` above it)"
    )
    CHATSTREAM_UPLOAD_TTL_HOURS = Setting(24.0, "an upload no message has named is deleted this long after it came")
    CHATSTREAM_FILE_URLS = Setting(
        "data",
        "how an image reaches the model: `data` (a data: URL, the bytes in the request) or `storage` (the "
        "storage's URL, for model servers that can fetch it)",
    )
    CHATSTREAM_IMAGES_IN_HISTORY = Setting(
        False, "later turns' prompts carry earlier images again (off: an image goes only with its own message)"
    )
    CHATSTREAM_PDF_MAX_PAGES = Setting(500, "a PDF's pages read for its text; the rest are left out, with a note")
    CHATSTREAM_PDF_TIMEOUT_SECONDS = Setting(
        30.0, "how long reading a PDF's text may take before the upload is refused (the reader is killed)"
    )
    # --- users' data (conversations/data/, docs/data.md) ----------------------------------
    CHATSTREAM_RETENTION_DAYS = Setting(
        0,
        "conversations not touched for this many days are deleted by the worker, with everything that "
        "belongs to them; 0: kept for ever",
    )
    CHATSTREAM_RETENTION_KEEP_REVIEWED = Setting(
        True, "the retention sweep keeps conversations with an answer under review (thumbs down or flagged)"
    )
    CHATSTREAM_RETENTION_SWEEP_HOURS = Setting(
        1.0, "how often the worker runs the retention sweep (with CHATSTREAM_RETENTION_DAYS set)"
    )
    # --- the stream --------------------------------------------------------------------
    CHATSTREAM_HEARTBEAT_SECONDS = Setting(15.0, "a `: heartbeat` comment after this much silence")
    CHATSTREAM_FRAME_SECONDS = Setting(
        1 / 60,
        "output that comes within this long of the last event goes out together, in one event at the end of "
        "the frame (no screen redraws faster); the first token and a slower model's are never held. 0: one "
        "event a read",
    )
    CHATSTREAM_MAX_BODY_BYTES = Setting(1024 * 1024, "the largest request body the API reads (413 above it)")
    CHATSTREAM_BODY_TIMEOUT_SECONDS = Setting(
        10.0, "how long an API request's body may take to arrive (408 after; conversations.asgi.RequestGuard)"
    )
    CHATSTREAM_MAX_MESSAGE_CHARS = Setting(32_000, "the longest message (400 above it)")
    CHATSTREAM_ON_DISCONNECT = Setting(
        "cancel",
        "when an answer's last reader goes: `cancel` stops the model at once; `continue` keeps generating "
        "for CHATSTREAM_RESUME_GRACE_SECONDS so the client can resume, then cancels",
    )
    CHATSTREAM_WHILE_ANSWERING = Setting(
        "parallel",
        "a message sent while an answer streams in its conversation (unless it says, `while_answering`): "
        "`parallel` answers it beside that one; `queue` answers it when that one ends (202); `interrupt` "
        "stops that one (`cancelled`) and answers it; `reject` refuses it (409 `answer_in_progress`)",
    )
    CHATSTREAM_READER_STALL_SECONDS = Setting(
        60.0, "a reader that takes no output this long while the model waits on it ends the answer (`client_stalled`)"
    )
    CHATSTREAM_RESUME_GRACE_SECONDS = Setting(30.0, "`continue`: how long an answer waits for a reader to come back")
    CHATSTREAM_SHUTDOWN_GRACE_SECONDS = Setting(
        20.0,
        "on SIGTERM, answers get this long to end; the rest are saved with what they produced as `error` / "
        "`server_shutdown`. Keep the server's own graceful timeout longer",
    )
    CHATSTREAM_REDACT = Setting(
        False,
        "mask e-mail addresses, phone numbers and card numbers (Luhn-checked) in answers as they stream; "
        "the saved turn holds what the client saw (the built-in guardrail "
        "`conversations.guardrails.redaction.Redaction`, run after CHATSTREAM_GUARDRAILS' own)",
    )
    # --- guardrails (conversations/guardrails/, docs/guardrails.md) ------------------------
    CHATSTREAM_GUARDRAILS = Setting[list[str]](
        [],
        "comma-separated dotted paths of guardrail classes, run in this order, each with any of `before(prompt)`, "
        "`on_output(kind, text)` and `after(turn)` (sync or async)",
    )
    CHATSTREAM_GUARDRAIL_TIMEOUT_SECONDS = Setting(
        5.0, "how long one guardrail hook may take before it counts as failed"
    )
    CHATSTREAM_GUARDRAIL_FAILURE = Setting(
        "open",
        "a guardrail hook that raises or outlasts its time: `open` lets the message or the output through, "
        "`closed` refuses the message (422 `guardrail_refused`) or stops the answer (`guardrail_stopped`)",
    )
    CHATSTREAM_MAX_CONCURRENT_STREAMS = Setting(3, "per user: answers being written at once (0: no limit)")
    CHATSTREAM_MESSAGES_PER_MINUTE = Setting(20, "per user: messages in any 60 seconds (0: no limit)")
    CHATSTREAM_DAILY_BUDGET = Setting(
        "", "per user: spend allowed in a UTC day, in LLM_PRICES' currency (empty: none; the admin's budgets override)"
    )
    CHATSTREAM_MONTHLY_BUDGET = Setting("", "per user: spend allowed in a UTC calendar month (empty: none)")
    CHATSTREAM_RESERVE_TOKENS = Setting(
        4096,
        "output tokens reserved against the budgets for a model call that sets no max_tokens; an answer that "
        "outgrows them reserves as many again, or is cut with `budget_exceeded` (docs/models.md)",
    )
    CHATSTREAM_AUTH_FAILURES = Setting(
        20,
        "failed logins or API keys allowed from one client address in 15 minutes, whatever the account; past "
        "it, 429 from there (0: no limit)",
    )
    CHATSTREAM_AUTH_ACCOUNT_FAILURES = Setting(
        200,
        "failed logins or uses of a key allowed for one account (a username, a key's prefix) from all addresses "
        "together in 15 minutes; past it, 429 for that account from anywhere. Much higher than "
        "CHATSTREAM_AUTH_FAILURES, so failures sent from many addresses cannot lock the owner out at once "
        "(0: no limit)",
    )
    CHATSTREAM_SEARCH_CONFIG = Setting(
        "english", "PostgreSQL's text search configuration for searching conversations (`simple`: no stemming)"
    )
    CHATSTREAM_GIL_SWITCH_SECONDS = Setting(
        0.001,
        "how long a Python thread may keep the GIL while another waits (`sys.setswitchinterval`, set when the "
        "database threads start): at Python's 5 ms a database call waits behind a busy event loop at every "
        "step, and streams queue long before the core is full. 0: leave Python's",
    )
    CHATSTREAM_DB_THREADS = Setting(4, "threads, each with one open database connection, that run the API's queries")
    CHATSTREAM_DB_TIMEOUT_SECONDS = Setting(
        5.0,
        "a database call (its wait for a free database thread included) not done in this long is broken off "
        "and the request answered 503 `database_unavailable`; a call that would connect right after a "
        "connection was refused fails at once. 0: wait for ever",
    )
    CHATSTREAM_METRICS_TOKEN = Setting(
        "", "the Bearer token Prometheus sends to `metrics` (staff sessions are let in too)", secret=True
    )
    # --- several processes -------------------------------------------------------------
    REDIS_URL = Setting(
        "",
        "share answers being generated between processes (journal in Redis Streams, live events and cancels "
        "over a Channels layer), and count limits there; empty: one process, in memory",
    )
    CHATSTREAM_REDIS_MAX_CONNECTIONS = Setting(
        50,
        "Redis connections per process, and as many again for its Channels layer; a request waits for one "
        "when all are busy rather than failing",
    )
    CHATSTREAM_ANSWER_LEASE_SECONDS = Setting(
        10.0,
        "an answer's process renews its lease in Redis; one unrenewed this long is saved by another process "
        "from its journal (`process_lost`); a user's stream slots lapse after three",
    )
    CHATSTREAM_JOURNAL_MAX_ENTRIES = Setting(
        10_000, "the most entries (runs of text) an answer's journal keeps; older text comes from the saved turn"
    )

    @classmethod
    def declared(cls) -> list[Setting]:
        return [value for value in vars(cls).values() if isinstance(value, Setting)]


conf = Settings()
