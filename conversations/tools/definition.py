"""`@tool`: a plain function, sync or async, made into a Tool a model can call.

The tool's JSON schema is built by pydantic from the function's type hints,
and the same pydantic model validates each call's arguments. It is built at
first use, not when the decorator runs: a hint may name a class defined
further down the module. `manage.py check` builds every configured tool's
schema, so one that cannot be built fails at start-up.
"""

import functools
import inspect
import re
import typing
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, overload

from ..exceptions import ToolDefinitionError
from .context import ToolContext

if TYPE_CHECKING:
    import pydantic

# What OpenAI (and the servers copying it) allow as a function's name.
NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")


class Tool:
    """A function the model can call, with its name, description and schema.
    Calling the Tool calls the function, unchanged."""

    def __init__(
        self,
        func: Callable[..., Any],
        *,
        name: str | None = None,
        description: str | None = None,
        needs_approval: bool = False,
        timeout: float | None = None,
    ) -> None:
        self.func = func
        self.name = name or func.__name__
        if not NAME.fullmatch(self.name):
            raise ToolDefinitionError(
                f"{self.name!r} cannot be a tool's name: use at most 64 letters, digits, '_' and '-' (name=...)."
            )
        self.description = inspect.cleandoc(func.__doc__ or "") if description is None else description
        self.needs_approval = needs_approval
        self.timeout = timeout  # seconds; None: CHATSTREAM_TOOL_TIMEOUT_SECONDS at the call
        self.is_async = inspect.iscoroutinefunction(func)
        functools.update_wrapper(self, func)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.func(*args, **kwargs)

    def __repr__(self) -> str:
        return f"<Tool {self.name}>"

    @functools.cached_property
    def _signature(self) -> tuple[type["pydantic.BaseModel"], str | None]:
        return arguments_model(self.func, self.name)

    @property
    def arguments(self) -> type["pydantic.BaseModel"]:
        """The pydantic model of the arguments (ToolDefinitionError if it cannot be built)."""
        return self._signature[0]

    @functools.cached_property
    def parameters(self) -> dict[str, Any]:
        """The arguments' JSON schema, as a function spec's `parameters`."""
        import pydantic

        try:
            schema = self.arguments.model_json_schema()
        except pydantic.PydanticUserError as exc:  # a type JSON schema cannot express
            raise ToolDefinitionError(f"tool {self.name!r}: no JSON schema for its arguments: {exc}") from exc
        schema.pop("title", None)  # the generated model's name: nothing the model needs
        return schema

    def spec(self) -> dict[str, Any]:
        """The tool as OpenAI's `tools` list holds it."""
        function = {"name": self.name, "description": self.description, "parameters": self.parameters}
        return {"type": "function", "function": function}

    def keyword_arguments(self, arguments: dict[str, Any], context: ToolContext) -> dict[str, Any]:
        """The call's arguments validated (pydantic.ValidationError if not), as
        the function takes them: nested models as model instances, and the
        context under its parameter's name."""
        model, context_parameter = self._signature
        values = dict(model.model_validate(arguments))  # shallow: nested models stay models
        if context_parameter:
            values[context_parameter] = context
        return values


@overload
def tool(func: Callable[..., Any], /) -> Tool: ...


@overload
def tool(
    *,
    name: str | None = None,
    description: str | None = None,
    needs_approval: bool = False,
    timeout: float | None = None,
) -> Callable[[Callable[..., Any]], Tool]: ...


def tool(
    func: Callable[..., Any] | None = None,
    /,
    *,
    name: str | None = None,
    description: str | None = None,
    needs_approval: bool = False,
    timeout: float | None = None,
) -> Tool | Callable[[Callable[..., Any]], Tool]:
    """Make `func` a tool: `@tool`, or `@tool(needs_approval=True, timeout=5, name=..., description=...)`."""

    def make(func: Callable[..., Any]) -> Tool:
        return Tool(func, name=name, description=description, needs_approval=needs_approval, timeout=timeout)

    return make(func) if func is not None else make


def arguments_model(func: Callable[..., Any], name: str) -> tuple[type["pydantic.BaseModel"], str | None]:
    """A pydantic model of `func`'s parameters (but the ToolContext one, whose
    name comes second, or None)."""
    import pydantic  # here: loaded by the first tool, not by every process

    try:
        hints = typing.get_type_hints(func, include_extras=True)
    except Exception as exc:  # NameError for a name never defined, and whatever a hint's own code raises
        raise ToolDefinitionError(f"tool {name!r}: its type hints cannot be read: {exc}") from exc
    fields: dict[str, Any] = {}
    context_parameter = None
    for parameter in inspect.signature(func).parameters.values():
        if parameter.kind not in (parameter.POSITIONAL_OR_KEYWORD, parameter.KEYWORD_ONLY):
            raise ToolDefinitionError(
                f"tool {name!r}: parameter {parameter.name!r} cannot be given by name; a tool's arguments are "
                "named (no *args, **kwargs or positional-only parameters)."
            )
        hint = hints.get(parameter.name, Any)
        if hint is ToolContext:
            context_parameter = parameter.name
            continue
        default = ... if parameter.default is parameter.empty else parameter.default
        fields[parameter.name] = (hint, default)
    # Unknown arguments are refused (the schema says so), and parameters may
    # be called anything, "model_…" included.
    config = pydantic.ConfigDict(extra="forbid", protected_namespaces=())
    try:
        model = pydantic.create_model(f"{name}_arguments", __config__=config, **fields)
    except (pydantic.PydanticUserError, pydantic.PydanticSchemaGenerationError, NameError, TypeError) as exc:
        raise ToolDefinitionError(f"tool {name!r}: its arguments cannot be validated: {exc}") from exc
    return model, context_parameter
