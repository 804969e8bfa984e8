"""Tool calls assembled from the fragments an OpenAI-style stream sends in
`delta.tool_calls`.

OpenAI, vLLM and llama.cpp send each call's `id` and `function.name` in its
first fragment and its `arguments` in pieces, under an `index` that parallel
calls interleave. Real servers stray from that, and each way is handled:
Ollama sends every call whole with `index` 0 (a new `id` under a used index
is a new call), older Ollama sent no `index` at all, some proxies send the
arguments as an object rather than a string, some repeat the name in every
fragment, and some send no `id`.

A call is complete, and goes out, once its arguments are a whole JSON object;
at the stream's end whatever is left goes out as it is.
"""

from dataclasses import dataclass, field

import orjson


def call_text(call_id: str, name: str, arguments: str) -> str:
    """A call as the JSON the client gets and the turn's event ids count:
    built field by field, so a call read back from any database (jsonb
    reorders keys) has the same text and the same length."""
    return orjson.dumps({"id": call_id, "name": name, "arguments": arguments}).decode()


def _storable(text: str) -> str:
    # PostgreSQL's jsonb cannot hold U+0000; the client and the turn get the same.
    return text.replace("\x00", "\ufffd") if "\x00" in text else text


@dataclass
class _Call:
    id: str
    id_given: bool = True  # False: the server sent none, so chatstream named it
    name: str = ""
    arguments: list[str] = field(default_factory=list)
    sent: bool = False

    def is_complete(self) -> bool:
        text = "".join(self.arguments).rstrip()
        if not (self.name and text.endswith("}")):
            return False
        try:
            return isinstance(orjson.loads(text), dict)
        except orjson.JSONDecodeError:
            return False

    def text(self) -> str:
        return call_text(_storable(self.id), _storable(self.name), _storable("".join(self.arguments)))


class ToolCalls:
    def __init__(self, id_prefix: str = "call_") -> None:
        # A call the server gave no id is named `<id_prefix><n>`: a tool loop
        # gives each model call a prefix of its own, so no two calls of one
        # answer share an id (a recorded id is never run again).
        self.id_prefix = id_prefix
        self._calls: list[_Call] = []  # in the order they started
        self._by_index: dict[int, _Call] = {}  # the call each index last named

    def __bool__(self) -> bool:
        return bool(self._calls)

    def feed(self, fragments: object) -> list[str]:
        """Take one chunk's `delta.tool_calls`; the texts of the calls it completed."""
        if not isinstance(fragments, list):
            return []
        done = []
        for fragment in fragments:
            if isinstance(fragment, dict):
                call = self._call_for(fragment)
                self._add(call, fragment.get("function") or {})
                if not call.sent and call.is_complete():
                    call.sent = True
                    done.append(call.text())
        return done

    def rest(self) -> list[str]:
        """At the stream's end: the calls not sent yet, however incomplete."""
        left = [call for call in self._calls if not call.sent]
        for call in left:
            call.sent = True
        return [call.text() for call in left]

    def _call_for(self, fragment: dict) -> _Call:
        given = fragment.get("id")
        given_id = given if isinstance(given, str) and given else None
        index = fragment.get("index")
        if not isinstance(index, int):  # older Ollama: a new id starts a call, none continues the last
            if given_id is None and self._calls:
                return self._calls[-1]
            index = -1 - len(self._calls)  # a slot of its own
        current = self._by_index.get(index)
        if current is not None:
            if given_id is None or given_id == current.id:
                return current
            if not current.id_given:  # the server named it late
                current.id, current.id_given = given_id, True
                return current
        # A new index, or (Ollama) a new id under an index already used.
        call = _Call(id=given_id or f"{self.id_prefix}{len(self._calls)}", id_given=given_id is not None)
        self._calls.append(call)
        self._by_index[index] = call
        return call

    @staticmethod
    def _add(call: _Call, function: dict) -> None:
        name = function.get("name")
        if isinstance(name, str) and name and not call.name:
            call.name = name
        arguments = function.get("arguments")
        if isinstance(arguments, dict):
            arguments = orjson.dumps(arguments).decode()
        if isinstance(arguments, str) and arguments and not call.sent:
            call.arguments.append(arguments)
