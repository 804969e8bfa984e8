"""The Redis keys and Channels groups of shared answers, and how long they
live: longer than any silence the model is allowed, so they expire only if
the process generating the answer died."""

from ..conf import conf


def meta_key(turn_id: str) -> str:
    return f"chatstream:answer:{turn_id}"


def journal_key(turn_id: str) -> str:
    return f"chatstream:journal:{turn_id}"


def generating_key(conversation_id: str) -> str:
    return f"chatstream:generating:{conversation_id}"


def group(turn_id: str) -> str:
    return f"answer.{turn_id}"


def alive_seconds() -> int:
    """How long an answer's keys live without a write: longer than any
    silence the model is allowed, so they expire only if their process died."""
    return int(2 * max(conf.LLM_FIRST_TOKEN_TIMEOUT, conf.LLM_IDLE_TIMEOUT)) + 60
