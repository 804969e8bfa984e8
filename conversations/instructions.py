"""A conversation's own instructions: its system prompt, the parameters its
model calls are made with and the format its answers must have, checked as
requests give them; what a catalogue entry allows of them; and an answer's
output checked against its format once it has ended.

A message may override each of them for its answer. The checks here say
what is wrong as a sentence naming the parameter; the views make it a 400
(`invalid_parameters`, `invalid_response_format`…), the catalogue a
start-up error.
"""

import re
from dataclasses import dataclass, field
from typing import Any

import orjson

from .conf import conf
from .exceptions import ApiError

REASONING_EFFORTS = ("none", "minimal", "low", "medium", "high", "xhigh")
MAX_STOPS = 4
MIN_WHOLE, MAX_WHOLE = -(2**63), 2**63 - 1  # what a model server's (and orjson's) 64-bit integers hold
SCHEMA_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


def _number(low: float, high: float):
    def problem(name: str, value: Any) -> str | None:
        if isinstance(value, bool) or not isinstance(value, int | float) or not low <= value <= high:
            return f"{name} must be a number from {low:g} to {high:g}."
        return None

    return problem


def _whole(low: int):
    def problem(name: str, value: Any) -> str | None:
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= MAX_WHOLE:
            return f"{name} must be a whole number from {low} to {MAX_WHOLE}."
        return None

    return problem


def _stop(name: str, value: Any) -> str | None:
    stops = [value] if isinstance(value, str) else value
    if not isinstance(stops, list) or not 1 <= len(stops) <= MAX_STOPS or not all(isinstance(s, str) for s in stops):
        return f"{name} must be a string or a list of 1 to {MAX_STOPS} strings."
    if any(not s or "\x00" in s for s in stops):
        return f"{name}'s strings must not be empty or hold a NUL character."
    return None


def _effort(name: str, value: Any) -> str | None:
    return None if value in REASONING_EFFORTS else f"{name} is one of {', '.join(REASONING_EFFORTS)}."


WHOLE = frozenset({"max_tokens", "seed"})
EXACT_FLOATS = 2**53  # the whole numbers a float holds exactly

# Each parameter a conversation may set, and what is wrong with a value of it (None: nothing).
PARAMETERS = {
    "temperature": _number(0, 2),
    "top_p": _number(0, 1),
    "max_tokens": _whole(1),
    "seed": _whole(MIN_WHOLE),
    "stop": _stop,
    "presence_penalty": _number(-2, 2),
    "frequency_penalty": _number(-2, 2),
    "reasoning_effort": _effort,
}


@dataclass(frozen=True)
class Instructions:
    """What a conversation (or a message, over its conversation's) gives its
    answers: None and an empty dict leave the conversation's as they are."""

    system_prompt: str | None = None
    parameters: dict[str, Any] = field(default_factory=dict)
    response_format: dict[str, Any] | None = None

    def over(self, base: "Instructions") -> "Instructions":
        """These, over `base`: each parameter given replaces base's."""
        return Instructions(
            system_prompt=base.system_prompt if self.system_prompt is None else self.system_prompt,
            parameters={**base.parameters, **self.parameters},
            response_format=base.response_format if self.response_format is None else self.response_format,
        )


# --- what a request gives, checked ---------------------------------------------------------


def parameters_problem(given: Any) -> tuple[str, str] | None:
    """(the parameter, what is wrong with it) for the first thing wrong in
    `given`; None for a good object of parameters."""
    if not isinstance(given, dict):
        return "parameters", f"parameters must be an object of {', '.join(PARAMETERS)}."
    for name, value in given.items():
        if name not in PARAMETERS:
            return name, f"{name!r} is not a parameter here; use {', '.join(PARAMETERS)}."
        problem = PARAMETERS[name](name, value)
        if problem:
            return name, problem
    return None


def checked_parameters(given: Any) -> dict[str, Any]:
    """A request's `parameters`; 400 `invalid_parameters` naming the one that is wrong."""
    problem = parameters_problem(_whole_numbers(given))
    if problem:
        name, message = problem
        raise ApiError(400, "invalid_parameters", message, details={"param": name})
    return _whole_numbers(given)


def _whole_numbers(given: Any) -> Any:
    # JSON Schema's integer takes 2.0 as 2; so does the API (a client's JSON library may write it
    # so), where the float holds it exactly: a larger one (orjson reads an integer past 64 bits as
    # a float) stays a float, refused.
    if not isinstance(given, dict):
        return given
    return {name: _exact_whole(value) if name in WHOLE else value for name, value in given.items()}


def _exact_whole(value: Any) -> Any:
    exact = isinstance(value, float) and value.is_integer() and abs(value) <= EXACT_FLOATS
    return int(value) if exact else value


def checked_system_prompt(given: Any) -> str:
    """A request's `system_prompt`: a string within the message limit, no NUL ("" is none)."""
    limit = conf.CHATSTREAM_MAX_MESSAGE_CHARS
    if not isinstance(given, str) or "\x00" in given or len(given) > limit:
        message = f"system_prompt must be a string of at most {limit} characters, without NUL."
        raise ApiError(400, "invalid_system_prompt", message, details={"param": "system_prompt"})
    return given


def response_format_problem(given: Any) -> str | None:
    """What is wrong with a `response_format`: {"type": "json_object"} or
    {"type": "json_schema", "json_schema": {"name", "schema", "strict"?, "description"?}}."""
    if not isinstance(given, dict) or given.get("type") not in ("json_object", "json_schema"):
        return 'response_format must be {"type": "json_object"} or {"type": "json_schema", "json_schema": {…}}.'
    if given["type"] == "json_object":
        return None if set(given) == {"type"} else 'A "json_object" response_format has only "type".'
    spec = given.get("json_schema")
    if set(given) != {"type", "json_schema"} or not isinstance(spec, dict):
        return 'A "json_schema" response_format needs "json_schema": {"name", "schema"}.'
    if not set(spec) <= {"name", "schema", "strict", "description"} or not {"name", "schema"} <= set(spec):
        return 'response_format.json_schema has "name", "schema", and perhaps "strict" and "description".'
    if not isinstance(spec["name"], str) or not SCHEMA_NAME.match(spec["name"]):
        return "response_format.json_schema.name is 1 to 64 letters, digits, _ or -."
    if not isinstance(spec.get("strict", False), bool) or not isinstance(spec.get("description", ""), str):
        return "response_format.json_schema.strict is true or false, and its description a string."
    if not isinstance(spec["schema"], dict):
        return "response_format.json_schema.schema must be a JSON Schema object."
    import jsonschema  # here: loaded by the first request with a schema, not by every process

    try:
        jsonschema.validators.validator_for(spec["schema"]).check_schema(spec["schema"])
    except jsonschema.SchemaError as exc:
        return f"response_format.json_schema.schema is not a valid JSON Schema: {exc.message}."
    return None


def checked_response_format(given: Any) -> dict[str, Any] | None:
    """A request's `response_format` (null: none); 400 `invalid_response_format`."""
    if given is None:
        return None
    problem = response_format_problem(given)
    if problem:
        raise ApiError(400, "invalid_response_format", problem, details={"param": "response_format"})
    return given


def instructions_in(body: dict[str, Any]) -> Instructions:
    """The instructions a request's body gives, checked (a field left out: None or empty)."""
    return Instructions(
        system_prompt=checked_system_prompt(body["system_prompt"]) if "system_prompt" in body else None,
        parameters=checked_parameters(body["parameters"]) if "parameters" in body else {},
        response_format=checked_response_format(body.get("response_format")),
    )


def request_options(parameters: dict[str, Any], response_format: dict[str, Any] | None) -> dict[str, Any]:
    """What goes into the model call's body beside the prompt."""
    return {**parameters, "response_format": response_format} if response_format else dict(parameters)


# --- an answer's output, checked -------------------------------------------------------------


def output_check(text: str, response_format: dict[str, Any]) -> tuple[bool, Any]:
    """(valid, the parsed output) of an answer's text against its format: a
    JSON object for "json_object", an instance of the schema for
    "json_schema". Text that is not JSON is never valid."""
    try:
        output = orjson.loads(text)
    except orjson.JSONDecodeError:
        return False, None
    if response_format["type"] == "json_object":
        return isinstance(output, dict), output
    import jsonschema  # as above

    schema = response_format["json_schema"]["schema"]
    valid = jsonschema.validators.validator_for(schema)(schema).is_valid(output)
    return valid, output
