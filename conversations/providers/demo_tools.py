"""The demo model's tool use, offline and deterministic: which of the offered
tools a question calls for (the demo tools of conversations/tools/demo.py,
by name), and the answer it writes once their results come back.

    "what time is it in Paris?"  ─▶ current_time {"timezone": "Europe/Paris"}
    "where is my order A-17"     ─▶ lookup_order {"order_id": "A-17"}
    … tool messages ─▶ "It is 14:02 in Europe/Paris." / "Order A-17 is shipped: …"

Only tools the request offers (`tools` in the provider's request options)
are called, and none when it says `tool_choice: "none"` (the loop's last
call allowed).
"""

import functools
import re
import zoneinfo
from typing import Any

import orjson

from .base import Message

TIME, ORDER = "current_time", "lookup_order"

_TIME_QUESTION = re.compile(r"\b(?:what time|the time|time is it|current time|time now)\b", re.IGNORECASE)
_PLACE = re.compile(r"\bin\s+([A-Za-z][A-Za-z .'/_-]*[A-Za-z])", re.IGNORECASE)
_ORDER_NUMBER = re.compile(r"\border\s+(?:number\s+|no\.?\s*)?#?\s*([A-Za-z0-9][\w-]*)", re.IGNORECASE)

Call = tuple[str, dict[str, str]]  # (tool name, arguments)


def offered_tools(request_options: dict[str, object]) -> set[str]:
    """The names of the tools a request offers, unless it asks for none."""
    if request_options.get("tool_choice") == "none":
        return set()
    specs = request_options.get("tools")
    if not isinstance(specs, list):
        return set()
    functions = (spec.get("function") for spec in specs if isinstance(spec, dict))
    return {function["name"] for function in functions if isinstance(function, dict) and "name" in function}


def calls_for(question: str, offered: set[str]) -> list[Call]:
    """The calls a question asks for, of the tools offered: the time, an order, or both."""
    calls: list[Call] = []
    if TIME in offered and _TIME_QUESTION.search(question):
        zone = _zone_in(question)
        calls.append((TIME, {"timezone": zone} if zone else {}))
    if ORDER in offered:
        calls.extend((ORDER, {"order_id": number}) for number in _order_numbers(question))
    return calls


def _order_numbers(question: str) -> list[str]:
    # An order's number has a digit in it ("order status" names none).
    found = (match.rstrip("-") for match in _ORDER_NUMBER.findall(question))
    return list(dict.fromkeys(number for number in found if any(c.isdigit() for c in number)))


def _zone_in(question: str) -> str | None:
    """The IANA zone of a place the question names ("in New York"), if one is called so."""
    match = _PLACE.search(question)
    if match is None:
        return None
    words = match.group(1).strip().lower()
    return _zones_by_city().get(words) or _zones_by_city().get(words.replace(" ", "_"))


@functools.cache
def _zones_by_city() -> dict[str, str]:
    """Each zone by its whole name and its city: "europe/paris" and "paris", "new york"."""
    zones: dict[str, str] = {}
    for zone in sorted(zoneinfo.available_timezones()):
        zones[zone.lower()] = zone
        zones.setdefault(zone.rsplit("/", 1)[-1].replace("_", " ").lower(), zone)
    return zones


def calls_preface(calls: list[Call]) -> str:
    """What the model says before its calls, as real models often do."""
    names = {name for name, _ in calls}
    if names == {TIME}:
        return "Let me check the clock.\n\n"
    return "Let me look that up.\n\n"


# --- the answer from the results -----------------------------------------------------


def answer_from_results(messages: list[Message]) -> str:
    """The text for a prompt that ends with `tool` messages: a sentence per
    result of the last step, in the order of its calls."""
    calls, results = _last_step(messages)
    sentences = [_sentence(calls.get(call_id, ("", {})), content) for call_id, content in results]
    return " ".join(sentences) or "The tools returned nothing."


def _last_step(messages: list[Message]) -> tuple[dict[str, tuple[str, dict]], list[tuple[str, str]]]:
    """The last assistant message's calls by id, and the tool messages after it."""
    results: list[tuple[str, str]] = []
    for message in reversed(messages):
        if message["role"] == "tool":
            results.insert(0, (message.get("tool_call_id", ""), message["content"]))
        elif message["role"] == "assistant":
            calls = {call["id"]: _named(call) for call in message.get("tool_calls", [])}
            return calls, results
    return {}, results


def _named(call: dict[str, Any]) -> tuple[str, dict]:
    function = call.get("function", {})
    arguments = _json(function.get("arguments", ""))
    return function.get("name", ""), arguments if isinstance(arguments, dict) else {}


def _sentence(call: tuple[str, dict], content: str) -> str:
    name, arguments = call
    value = _json(content)
    error = value.get("error") if isinstance(value, dict) and set(value) == {"error"} else None
    if name == TIME:
        return _time_sentence(value) if error is None else f"I could not read the clock: {error}"
    if name == ORDER:
        number = arguments.get("order_id", "")
        return _order_sentence(value) if error is None else _order_failed(number, str(error))
    return f"`{name}` failed: {error}" if error is not None else f"`{name}` returned {content}"


def _time_sentence(value: Any) -> str:
    if not isinstance(value, dict) or "time" not in value:
        return f"The clock said {value}."
    clock = str(value["time"])[11:16]  # HH:MM of an ISO date and time
    zone = value.get("timezone", "UTC")
    where = " UTC" if zone == "UTC" else f" in {zone}"
    return f"It is {clock}{where}, on a {value.get('weekday', 'day I cannot name')}."


def _order_sentence(order: Any) -> str:
    if not isinstance(order, dict) or "status" not in order:
        return f"The order's record says {order}."
    lines = ", ".join(f"{line['quantity']} × {line['product']}" for line in order.get("lines", []))
    return (
        f"Order {order.get('order_id')} is **{order['status']}** (placed on {order.get('placed_on')}): "
        f"{lines}, {order.get('total')} in all."
    )


def _order_failed(number: str, error: str) -> str:
    if "declined" in error.lower():
        return f"You declined the lookup, so I did not look up order {number}."
    return f"I could not look up order {number}: {error}"


def _json(text: str) -> Any:
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return text
