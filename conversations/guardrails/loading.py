"""The guardrail classes CHATSTREAM_GUARDRAILS names, imported at first use
and forgotten when the setting changes. CHATSTREAM_REDACT adds the built-in
redaction after them (unless the list names it): it holds text back, so it
is the last to see the output."""

from django.utils.module_loading import import_string

from .. import state
from ..conf import conf
from ..exceptions import GuardrailsError

HOOKS = ("before", "on_output", "after")
REDACTION = "conversations.guardrails.redaction.Redaction"


def guardrail_paths() -> tuple[str, ...]:
    paths = [path.strip() for path in conf.CHATSTREAM_GUARDRAILS if path.strip()]
    if conf.CHATSTREAM_REDACT and REDACTION not in paths:
        paths.append(REDACTION)
    return tuple(paths)


def with_hook(hook: str) -> tuple[type, ...]:
    """The guardrail classes that have `hook`, in their order; GuardrailsError
    for a path that cannot be used (`manage.py check` says which)."""
    return _with_hook(guardrail_paths(), hook)


@state.built_from("CHATSTREAM_GUARDRAILS", "CHATSTREAM_REDACT")
def _with_hook(paths: tuple[str, ...], hook: str) -> tuple[type, ...]:
    return tuple(cls for cls in map(load_guardrail, paths) if callable(getattr(cls, hook, None)))


def load_guardrail(path: str) -> type:
    """The class a dotted path names, if it has at least one hook."""
    try:
        found = import_string(path)
    except ImportError as exc:
        raise GuardrailsError(f"CHATSTREAM_GUARDRAILS names {path!r}, which does not import: {exc}") from exc
    if not isinstance(found, type) or not any(callable(getattr(found, hook, None)) for hook in HOOKS):
        raise GuardrailsError(
            f"CHATSTREAM_GUARDRAILS names {path!r}, which is not a guardrail: a class with any of the methods "
            "before(prompt), on_output(kind, text) and after(turn)."
        )
    return found
