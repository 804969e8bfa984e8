"""Typed access to chatstream's settings, with their defaults.

The values come from the environment through chatstream/settings.py; code in
this app reads them here, never from os.environ, so tests can override them
with Django's `override_settings`.
"""

from django.conf import settings


class Settings:
    @property
    def LLM_PROVIDER(self) -> str:
        return getattr(settings, "LLM_PROVIDER", "demo")

    @property
    def LLM_BASE_URL(self) -> str:
        return getattr(settings, "LLM_BASE_URL", "https://api.openai.com/v1")

    @property
    def LLM_API_KEY(self) -> str:
        return getattr(settings, "LLM_API_KEY", "")

    @property
    def LLM_MODEL(self) -> str:
        return getattr(settings, "LLM_MODEL", "demo-1")

    @property
    def LLM_FIRST_TOKEN_TIMEOUT(self) -> float:
        return float(getattr(settings, "LLM_FIRST_TOKEN_TIMEOUT", 30.0))

    @property
    def LLM_IDLE_TIMEOUT(self) -> float:
        return float(getattr(settings, "LLM_IDLE_TIMEOUT", 60.0))

    @property
    def LLM_DEMO_TOKENS_PER_SECOND(self) -> float:
        return float(getattr(settings, "LLM_DEMO_TOKENS_PER_SECOND", 30.0))

    @property
    def LLM_DEMO_FIRST_TOKEN_DELAY(self) -> float:
        return float(getattr(settings, "LLM_DEMO_FIRST_TOKEN_DELAY", 0.3))

    @property
    def CHATSTREAM_HEARTBEAT_SECONDS(self) -> float:
        return float(getattr(settings, "CHATSTREAM_HEARTBEAT_SECONDS", 15.0))

    @property
    def CHATSTREAM_MAX_BODY_BYTES(self) -> int:
        return int(getattr(settings, "CHATSTREAM_MAX_BODY_BYTES", 1024 * 1024))

    @property
    def CHATSTREAM_DB_THREADS(self) -> int:
        return int(getattr(settings, "CHATSTREAM_DB_THREADS", 4))

    @property
    def CHATSTREAM_MAX_MESSAGE_CHARS(self) -> int:
        return int(getattr(settings, "CHATSTREAM_MAX_MESSAGE_CHARS", 32_000))

    @property
    def LLM_MEMORY_MODEL(self) -> str:
        return getattr(settings, "LLM_MEMORY_MODEL", "") or self.LLM_MODEL

    @property
    def LLM_CONTEXT_TOKENS(self) -> int:
        return int(getattr(settings, "LLM_CONTEXT_TOKENS", 8000))

    @property
    def LLM_SYSTEM_PROMPT(self) -> str:
        return getattr(settings, "LLM_SYSTEM_PROMPT", "You are a helpful assistant. Answer in markdown.")

    @property
    def CHATSTREAM_MEMORY_ATTEMPTS(self) -> int:
        return int(getattr(settings, "CHATSTREAM_MEMORY_ATTEMPTS", 4))

    @property
    def CHATSTREAM_MEMORY_BACKOFF_SECONDS(self) -> float:
        return float(getattr(settings, "CHATSTREAM_MEMORY_BACKOFF_SECONDS", 2.0))

    @property
    def CHATSTREAM_ON_DISCONNECT(self) -> str:
        return getattr(settings, "CHATSTREAM_ON_DISCONNECT", "cancel")

    @property
    def CHATSTREAM_RESUME_GRACE_SECONDS(self) -> float:
        return float(getattr(settings, "CHATSTREAM_RESUME_GRACE_SECONDS", 30.0))

    @property
    def REDIS_URL(self) -> str:
        return getattr(settings, "REDIS_URL", "")

    @property
    def CHATSTREAM_JOURNAL_MAX_ENTRIES(self) -> int:
        return int(getattr(settings, "CHATSTREAM_JOURNAL_MAX_ENTRIES", 10_000))

    @property
    def LLM_RETRIES(self) -> int:
        return int(getattr(settings, "LLM_RETRIES", 2))

    @property
    def LLM_RETRY_BACKOFF_SECONDS(self) -> float:
        return float(getattr(settings, "LLM_RETRY_BACKOFF_SECONDS", 0.5))

    @property
    def LLM_RETRY_MAX_WAIT_SECONDS(self) -> float:
        return float(getattr(settings, "LLM_RETRY_MAX_WAIT_SECONDS", 10.0))

    @property
    def LLM_FALLBACK_MODELS(self) -> list[str]:
        return list(getattr(settings, "LLM_FALLBACK_MODELS", []))

    @property
    def CHATSTREAM_MAX_CONCURRENT_STREAMS(self) -> int:
        return int(getattr(settings, "CHATSTREAM_MAX_CONCURRENT_STREAMS", 3))

    @property
    def CHATSTREAM_MESSAGES_PER_MINUTE(self) -> int:
        return int(getattr(settings, "CHATSTREAM_MESSAGES_PER_MINUTE", 20))

    @property
    def CHATSTREAM_REDACT(self) -> bool:
        return bool(getattr(settings, "CHATSTREAM_REDACT", False))

    @property
    def CHATSTREAM_SHUTDOWN_GRACE_SECONDS(self) -> float:
        return float(getattr(settings, "CHATSTREAM_SHUTDOWN_GRACE_SECONDS", 20.0))

    @property
    def CHATSTREAM_METRICS_TOKEN(self) -> str:
        return getattr(settings, "CHATSTREAM_METRICS_TOKEN", "")


conf = Settings()
