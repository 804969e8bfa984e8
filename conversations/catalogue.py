"""The models users can choose from: LLM_MODELS, or (without it) the one model
the LLM_* settings describe, so a single-model setup works unchanged.

Each entry names an upstream: an OpenAI-compatible server (a local Ollama or
vLLM, a hosted API) or the offline demo, with its own base URL, key, model
id, prices and prompt budget. Several upstreams can serve at once.
"""

import functools
import os
from dataclasses import dataclass, field
from typing import Any

from .conf import conf
from .exceptions import ApiError, CatalogueError
from .instructions import PARAMETERS, parameters_problem

AUTO = "auto"  # a message's model when LLM_ROUTER chooses (routing.py)

# What an entry may say; anything else is a mistake worth naming at start-up.
ENTRY_FIELDS = frozenset(
    {
        "provider",
        "base_url",
        "api_key_env",
        "model",
        "prices",
        "context_tokens",
        "max_output_tokens",
        "reasoning",
        "tools",
        "tool_names",
        "vision",
        "parameters",
        "forbid",
    }
)
# What a request may name its output bound by; both are upper bounds on the answer's tokens.
OUTPUT_BOUNDS = ("max_tokens", "max_completion_tokens")


@dataclass(frozen=True)
class ModelEntry:
    name: str  # what users see and choose
    provider: str  # "openai" (any OpenAI-compatible server), "demo", or a Provider's dotted path
    model: str  # the upstream's own model id
    base_url: str
    api_key_env: str  # the environment variable holding its key; empty: LLM_API_KEY
    context_tokens: int  # the prompt budget
    max_output_tokens: int  # the most tokens an answer may have: sent upstream with every call
    reasoning: bool = False  # it thinks before answering
    tools: bool = False  # it can call tools: CHATSTREAM_TOOLS' and MCP servers' (conversations/tools/registry.py)
    tool_names: tuple[str, ...] | None = None  # only these of them; None: all
    vision: bool = False  # it can see images (image_url content parts)
    prices: dict[str, Any] | None = field(default=None, hash=False)  # per million tokens, as in LLM_PRICES
    # Parameters every call is made with, whatever a conversation asks ("parameters"),
    # and those a conversation may not set ("forbid"): ModelEntry.refuse_disallowed.
    fixed: dict[str, Any] = field(default_factory=dict, hash=False)
    forbid: tuple[str, ...] = ()

    @property
    def api_key(self) -> str:
        return os.environ.get(self.api_key_env, "") if self.api_key_env else conf.LLM_API_KEY

    def public(self) -> dict[str, Any]:
        """What clients may know of it (GET api/models): never the URL or key."""
        return {
            "name": self.name,
            "model": self.model,
            "provider": self.provider,
            "context_tokens": self.context_tokens,
            "max_output_tokens": self.max_output_tokens,
            "reasoning": self.reasoning,
            "tools": self.tools,
            "vision": self.vision,
            "prices": self.prices,
            "parameters": self.fixed,
            "forbid": list(self.forbid),
        }

    def refuse_disallowed(self, parameters: dict[str, Any]) -> None:
        """400 `parameter_not_allowed` naming a parameter this model forbids,
        one other than its fixed value, or a max_tokens over its cap. (Its
        fixed values go with every call: `bounded`.)"""
        for name, value in parameters.items():
            if name in self.forbid:
                _not_allowed(name, f"{self.name!r} does not take {name}.")
            if name in self.fixed and value != self.fixed[name]:
                _not_allowed(name, f"{self.name!r} takes {name} only as {self.fixed[name]!r}.")
        if parameters.get("max_tokens", 0) > self.max_output_tokens:
            _not_allowed("max_tokens", f"{self.name!r} takes max_tokens of at most {self.max_output_tokens}.")

    def bounded(self, options: dict[str, Any]) -> dict[str, Any]:
        """A request's options with its output bound at most this model's
        cap, and the cap itself where the request gives none: no answer is
        unbounded, whoever asked. A bound over the cap is lowered to it
        rather than refused: `max_tokens` is an upper bound, clients often
        send a large fixed one, and an answer the cap cuts ends with
        `finish_reason: length`, which they handle. The entry's fixed
        parameters replace any the request gives."""
        options = {**options, **self.fixed}
        given = [name for name in OUTPUT_BOUNDS if name in options]
        if not given:
            return {**options, "max_tokens": self.max_output_tokens}
        return {**options, **{name: min(options[name], self.max_output_tokens) for name in given}}


def _not_allowed(name: str, message: str) -> None:
    raise ApiError(400, "parameter_not_allowed", message, details={"param": name})


def catalogue() -> dict[str, ModelEntry]:
    """Every model by name, in the order LLM_MODELS gives them."""
    return _catalogue(_settings_key())


def default_entry() -> ModelEntry:
    entries = catalogue()
    name = conf.LLM_DEFAULT_MODEL or next(iter(entries))
    if name not in entries:
        raise CatalogueError(f"LLM_DEFAULT_MODEL {name!r} is not in LLM_MODELS ({', '.join(entries)}).")
    return entries[name]


def entry_named(name: str | None) -> ModelEntry:
    """The entry called `name`, or the default for None; KeyError for a name
    the catalogue does not have."""
    return default_entry() if not name else catalogue()[name]


def chosen_model(given: object, *, auto: bool = False) -> str:
    """The name a request gives, checked: "" (the default), a catalogue
    name, or (where `auto`) "auto". An unknown name is 404
    `model_not_found`, as OpenAI answers one."""
    if not isinstance(given, str):
        raise ApiError(400, "invalid_model", "The model must be a string: a name from GET api/models.")
    names = list(catalogue())
    if given and given not in names and not (auto and given == AUTO):
        raise ApiError(
            404, "model_not_found", f"{given!r} is not a model here; choose one of {', '.join(names)} (GET api/models)."
        )
    return given


def _settings_key() -> tuple:
    # Settings are read at each call (override_settings works); the parsed
    # catalogue is kept per distinct value.
    return (
        repr(conf.LLM_MODELS),
        conf.LLM_PROVIDER,
        conf.LLM_MODEL,
        conf.LLM_BASE_URL,
        conf.LLM_CONTEXT_TOKENS,
        conf.LLM_MAX_OUTPUT_TOKENS,
        conf.LLM_DEMO_REASONING,
        conf.LLM_VISION,
        tuple(conf.CHATSTREAM_TOOLS),
        _mcp_servers_given(),
    )


def _mcp_servers_given() -> bool:
    try:
        return bool(conf.CHATSTREAM_MCP_SERVERS)
    except (TypeError, ValueError):  # not an object: the checks say so (conversations.E021)
        return True


@functools.lru_cache(maxsize=8)
def _catalogue(key: tuple) -> dict[str, ModelEntry]:
    defaults: dict[str, Any] = {
        "provider": conf.LLM_PROVIDER,
        "base_url": conf.LLM_BASE_URL,
        "api_key_env": "",
        "context_tokens": conf.LLM_CONTEXT_TOKENS,
        "max_output_tokens": conf.LLM_MAX_OUTPUT_TOKENS,
    }
    if not conf.LLM_MODELS:
        model = conf.LLM_MODEL
        # The one model has every tool there is: without LLM_MODELS nothing else could say it may.
        tools = bool(conf.CHATSTREAM_TOOLS) or _mcp_servers_given()
        vision = conf.LLM_VISION or conf.LLM_PROVIDER == "demo"  # the demo describes what it is sent
        entry = ModelEntry(
            name=model, model=model, reasoning=conf.LLM_DEMO_REASONING, tools=tools, vision=vision, **defaults
        )
        return {model: entry}
    return {name: _entry(name, given, defaults) for name, given in conf.LLM_MODELS.items()}


def _entry(name: str, given: Any, defaults: dict[str, Any]) -> ModelEntry:
    if not isinstance(given, dict):
        raise CatalogueError(f'LLM_MODELS[{name!r}] must be an object such as {{"model": "qwen3:8b"}}.')
    unknown = given.keys() - ENTRY_FIELDS
    if unknown:
        raise CatalogueError(f"LLM_MODELS[{name!r}] has unknown fields {sorted(unknown)}; use {sorted(ENTRY_FIELDS)}.")
    if not isinstance(given.get("model"), str) or not given["model"]:
        raise CatalogueError(f'LLM_MODELS[{name!r}] needs "model": the upstream\'s model id.')
    if name == "auto":
        raise CatalogueError('"auto" is kept for routing; give the model another name in LLM_MODELS.')
    values = {**defaults, **given}
    tool_names = _tool_names(name, given.get("tool_names"))
    fixed, forbid = _fixed(name, given.get("parameters", {})), _forbid(name, given.get("forbid", []))
    try:
        return ModelEntry(
            name=name,
            provider=str(values["provider"]),
            model=values["model"],
            base_url=str(values["base_url"]),
            api_key_env=str(values["api_key_env"]),
            context_tokens=int(values["context_tokens"]),
            max_output_tokens=_positive(values["max_output_tokens"]),
            reasoning=bool(values.get("reasoning", False)),
            tools=bool(values.get("tools", tool_names is not None)),  # naming tools turns them on
            tool_names=tool_names,
            vision=bool(values.get("vision", values["provider"] == "demo")),
            prices=values.get("prices"),
            fixed=fixed,
            forbid=forbid,
        )
    except (TypeError, ValueError) as exc:
        raise CatalogueError(f"LLM_MODELS[{name!r}]: {exc}.") from None


def _tool_names(name: str, given: Any) -> tuple[str, ...] | None:
    if given is None:
        return None
    if not isinstance(given, list) or not all(isinstance(item, str) for item in given):
        raise CatalogueError(f'LLM_MODELS[{name!r}]["tool_names"] must be a list of tool names, e.g. ["current_time"].')
    return tuple(given)


def _fixed(name: str, given: Any) -> dict[str, Any]:
    problem = parameters_problem(given)
    if problem:
        raise CatalogueError(f'LLM_MODELS[{name!r}]["parameters"]: {problem[1]}')
    return given


def _forbid(name: str, given: Any) -> tuple[str, ...]:
    if not isinstance(given, list) or not all(item in PARAMETERS for item in given):
        raise CatalogueError(
            f'LLM_MODELS[{name!r}]["forbid"] must be a list of parameter names among {", ".join(PARAMETERS)}.'
        )
    return tuple(given)


def _positive(value: Any) -> int:
    number = int(value)
    if number < 1:
        raise ValueError(f"max_output_tokens must be at least 1, not {number}")
    return number
