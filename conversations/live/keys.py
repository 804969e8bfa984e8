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


# Every answer being generated, by any process: turn id -> what its row needs
# if its process dies (JSON). Each one's lease is renewed while it lives.
LIVE = "chatstream:live"


def lease_key(turn_id: str) -> str:
    return f"chatstream:lease:{turn_id}"


def reaping_key(turn_id: str) -> str:
    """Taken by the one process that saves a dead process's answer."""
    return f"chatstream:reaping:{turn_id}"


def group(turn_id: str) -> str:
    return f"answer.{turn_id}"


def alive_seconds() -> int:
    """How long an answer's keys live without a write: longer than any
    silence the model is allowed, so they expire only if their process died."""
    return int(2 * max(conf.LLM_FIRST_TOKEN_TIMEOUT, conf.LLM_IDLE_TIMEOUT)) + 60
