"""Model providers: a small base class and one module per implementation."""

from django.utils.module_loading import import_string

from ..catalogue import ModelEntry, default_entry
from .base import Completion, Message, Provider
from .kinds import APPROVAL, REASONING, REFUSAL, STEP, TEXT, TOOL_CALL, TOOL_RESULT, WHOLE, Piece

PROVIDERS = {
    "demo": "conversations.providers.demo.DemoProvider",
    "openai": "conversations.providers.openai.OpenAIProvider",
}

__all__ = [
    "APPROVAL",
    "PROVIDERS",
    "REASONING",
    "REFUSAL",
    "TEXT",
    "STEP",
    "TOOL_CALL",
    "TOOL_RESULT",
    "WHOLE",
    "Completion",
    "Message",
    "Piece",
    "Provider",
    "get_provider",
    "provider_for",
    "load_provider_class",
]


def load_provider_class(name: str) -> type[Provider]:
    """A short name from PROVIDERS, or the dotted path of a Provider subclass."""
    cls = import_string(PROVIDERS.get(name, name))
    if not (isinstance(cls, type) and issubclass(cls, Provider)):
        raise ValueError(f"{name!r} is not a Provider")
    return cls


def provider_for(entry: ModelEntry) -> Provider:
    """The provider that serves one entry of the model catalogue."""
    return load_provider_class(entry.provider).from_entry(entry)


def get_provider() -> Provider:
    """The default model's provider."""
    return provider_for(default_entry())
