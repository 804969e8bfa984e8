"""chatstream's exceptions. Providers map library errors onto these at their
edge (`raise Mapped(...) from exc`), so the relay and the views see only these.

    ChatstreamError
    ├── ApiError                  - a request the API refuses (JSON error, status)
    ├── DuplicateMessage          - a message's Idempotency-Key was used already: its answer is replayed
    ├── NotItsTurn                - a queued message may not start: started, cancelled, or still waiting
    ├── SettingsError             - a setting cannot be used (also a ValueError); names the fix
    │   ├── CatalogueError        - LLM_MODELS or LLM_DEFAULT_MODEL
    │   ├── RouterError           - LLM_ROUTER
    │   └── ToolsError            - CHATSTREAM_TOOLS, or an entry's tool_names
    │       ├── ToolImportError   - a path that does not import
    │       ├── NotATool          - a path naming something @tool did not make
    │       └── McpServersError   - CHATSTREAM_MCP_SERVERS
    │   └── GuardrailsError       - CHATSTREAM_GUARDRAILS: a path that does not import, or no hook
    ├── ToolDefinitionError       - a function @tool cannot make a tool of (its name, its schema)
    ├── ToolCallFailed            - a call failed and its message says all (the model is told, no traceback)
    │   └── McpUnreachable        - an MCP server that could not be reached, or could not list its tools
    ├── MemoryUpdateFailed        - a memory job failed for good (its job shows as failed)
    │   └── WorkerLost            - its workers died as often as it may be tried
    ├── ServerShutdown            - the process stopped before the answer ended
    ├── AnswerEnded               - the tool loop ends an answer early; `finish_reason` says why
    │   ├── ApprovalTimedOut      - no decision on a call within CHATSTREAM_APPROVAL_TIMEOUT_SECONDS
    │   ├── BudgetReached         - a budget was reached while answering
    │   └── GuardrailStopped      - a guardrail's on_output stopped the answer
    ├── GuardrailRefused          - a guardrail's before() refused the message (422 guardrail_refused)
    ├── AnswerFailed              - chatstream itself failed while answering
    └── UpstreamError             - the model call failed; `code` goes to the client
        ├── UpstreamUnavailable   - connection refused, reset, DNS, TLS
        ├── UpstreamStatusError   - the server answered 4xx/5xx
        │   └── UpstreamRateLimited  - 429, with `retry_after` seconds if given
        ├── UpstreamProtocolError - not an OpenAI-compatible event stream
        │   └── UpstreamEventTooLarge  - one event longer than LLM_MAX_EVENT_BYTES
        ├── UpstreamIncomplete    - the stream ended before a finish reason
        └── UpstreamTimeout       - no first token, or silence, past the limit
"""

import uuid


class ChatstreamError(Exception):
    """Base of every error chatstream raises on purpose."""


class ApiError(ChatstreamError):
    """A request the API refuses; rendered as {"error": {"code", "message"}}."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        headers: dict[str, str] | None = None,
        details: dict[str, object] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers or {}  # e.g. Retry-After on a 429
        self.details = details or {}  # more fields of the error object, e.g. which budget


class DuplicateMessage(ChatstreamError):
    """This conversation already has a message with the client's Idempotency-Key."""

    def __init__(self, reply_id: uuid.UUID) -> None:
        super().__init__(reply_id)
        self.reply_id = reply_id


class NotItsTurn(ChatstreamError):
    """A queued message that may not start now: another start claimed it, it
    was cancelled, or an answer is still in progress in its conversation."""


class SettingsError(ChatstreamError, ValueError):
    """A setting cannot be used; the message names the fix."""


class CatalogueError(SettingsError):
    """LLM_MODELS or LLM_DEFAULT_MODEL cannot be used; the message names the fix."""


class RouterError(SettingsError):
    """LLM_ROUTER cannot be used; the message names the fix."""


class ToolsError(SettingsError):
    """CHATSTREAM_TOOLS, or an LLM_MODELS entry's tool_names, cannot be used."""


class ToolImportError(ToolsError):
    """A CHATSTREAM_TOOLS path does not import."""


class NotATool(ToolsError):
    """A CHATSTREAM_TOOLS path names something that @tool did not make."""


class McpServersError(ToolsError):
    """CHATSTREAM_MCP_SERVERS cannot be used; the message names the fix."""


class GuardrailsError(SettingsError):
    """A CHATSTREAM_GUARDRAILS path does not import, or names no guardrail."""


class ToolDefinitionError(ChatstreamError):
    """@tool cannot make a tool of a function: its name, or a schema of its type hints."""


class ToolCallFailed(ChatstreamError):
    """A tool call failed in a way its message tells whole (an MCP tool's own
    error): the model reads the message; there is no traceback to log."""


class McpUnreachable(ToolCallFailed):
    """An MCP server could not be reached, or did not answer as MCP servers do."""


class MemoryUpdateFailed(ChatstreamError):
    """Every attempt failed; raised so the job itself shows as failed."""


class WorkerLost(MemoryUpdateFailed):
    """The workers running this job died, as many times as a job may be tried."""


class UpstreamError(ChatstreamError):
    """The model call failed. Its message is a plain sentence for the client
    and the turn; `detail` (the library's exception, a response body) is for
    the log alone."""

    code = "upstream_error"

    def __init__(self, message: str, *, detail: str = "") -> None:
        super().__init__(message)
        self.detail = detail


class UpstreamUnavailable(UpstreamError):
    """The model server could not be reached."""

    code = "upstream_unavailable"


class UpstreamStatusError(UpstreamError):
    """The model server answered with an error status."""

    code = "upstream_status"

    def __init__(self, message: str, *, status: int, detail: str = "") -> None:
        super().__init__(message, detail=detail)
        self.status = status


class UpstreamRateLimited(UpstreamStatusError):
    """The model server said 429 Too Many Requests."""

    code = "upstream_rate_limited"

    def __init__(self, message: str, *, retry_after: float | None = None, detail: str = "") -> None:
        super().__init__(message, status=429, detail=detail)
        self.retry_after = retry_after


class UpstreamProtocolError(UpstreamError):
    """The model server's answer is not an OpenAI-compatible event stream."""

    code = "upstream_protocol"


class UpstreamEventTooLarge(UpstreamProtocolError):
    """One event of the stream was longer than LLM_MAX_EVENT_BYTES."""

    code = "upstream_event_too_large"


class UpstreamIncomplete(UpstreamError):
    """The stream ended before the model gave a finish reason."""

    code = "upstream_incomplete"


class UpstreamTimeout(UpstreamError):
    """The model was silent for longer than allowed."""

    code = "upstream_timeout"


class ServerShutdown(ChatstreamError):
    """The web process was stopped (a deploy, a restart) before the answer
    ended; the turn keeps what was produced."""

    code = "server_shutdown"


class AnswerFailed(ChatstreamError):
    """Something in chatstream (not the model) failed while an answer was
    generated or ended; the turn keeps what was produced, the log the detail."""

    code = "internal_error"


class AnswerEnded(ChatstreamError):
    """The tool loop ends an answer before the model is done; saved with
    `finish_reason`, not as an error."""

    finish_reason = ""


class ApprovalTimedOut(AnswerEnded):
    """Nobody approved or denied a tool call in time."""

    finish_reason = "approval_timeout"


class BudgetReached(AnswerEnded):
    """A budget of the user's or the key's has no room for more: the
    answer is cut as it streams, or a tool loop's next call is not made."""

    finish_reason = "budget_exceeded"


class GuardrailStopped(AnswerEnded):
    """A guardrail's on_output stopped the answer; the message is its reason."""

    finish_reason = "guardrail_stopped"


class GuardrailRefused(ChatstreamError):
    """A guardrail's before() refused the message; the message is its reason."""

    code = "guardrail_refused"  # the API error's, and the refused question's error_code
