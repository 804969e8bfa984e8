"""A fake OpenAI-compatible model server, for tests and benchmarks.

It speaks `POST /v1/chat/completions` with `stream: true` exactly as OpenAI
does (`chat.completion.chunk` objects, a usage chunk when
`stream_options.include_usage` is set, then `data: [DONE]`), and without it
(one `chat.completion` object, as the memory task asks), with a settable
first-token delay, pace, length and failures, and records what it was sent
and when each client went away.

    python -m harness.fake_upstream --port 9100 --first-token-delay 0.05 --pace 0.02

With --tool-loop, a request that offers tools and has no tool results yet is
answered with one call of the first tool offered; one that ends with a tool
result, with text (bench/tool_loop.py).
"""

import argparse
import asyncio
import json
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

from .servers import PYTHON, Service


@dataclass
class Behaviour:
    first_token_delay: float = 0.0
    pace: float = 0.0  # seconds between tokens
    tokens: int = 20
    finish_reason: str | None = "stop"  # None: end cleanly without one
    status: int = 200  # anything else: an OpenAI-style error body
    retry_after: str | None = None
    echo_authorization: bool = False  # an error message that repeats the request's API key
    fail_first: int = 0  # with `status`: only the first this many calls fail (0: all)
    error_page: str = ""  # with `status`: this text/html body instead of an OpenAI-style error (a proxy's page)
    cut_after: int | None = None  # drop the connection after this many tokens
    malformed_at: tuple[int, ...] = ()  # send an unreadable chunk before these tokens
    content_type: str = "text/event-stream"
    tokens_per_chunk: int = 1
    text: str | None = None  # answer text; default "t0 t1 t2 …"
    piece_chars: int = 4  # how `text` is cut into tokens
    reasoning_tokens: int = 0  # the first this many tokens go as `reasoning_content`
    script: list[dict] | None = None  # the deltas to send, one a chunk (see the shapes below)
    usage: dict | None = None  # the usage chunk (default: prompt and completion tokens only)
    usage_chunk: bool = True  # False: no usage chunk even when asked, as some servers do
    stamp: bool = False  # each token says when it was sent: "t7@<time.monotonic()> " (bench: send-to-receipt delay)
    huge_event: int = 0  # after the tokens, one event of about this many bytes, sent 16 KiB at a time

    def pieces(self) -> list[str]:
        if self.text is not None:
            size = self.piece_chars
            return [self.text[i : i + size] for i in range(0, len(self.text), size)]
        return [f"t{i} " for i in range(self.tokens)]

    def deltas(self) -> list[dict]:
        if self.script is not None:
            return self.script
        pieces = self.pieces()
        thoughts = [{"reasoning_content": piece} for piece in pieces[: self.reasoning_tokens]]
        return thoughts + [{"content": piece} for piece in pieces[self.reasoning_tokens :]]


@dataclass
class Call:
    body: dict
    started_at: float
    authorization: str = ""  # the request's Authorization header
    tokens_sent: int = 0
    disconnected_at: float | None = None  # time.monotonic() when the client left early
    finished_at: float | None = None
    tool_call: str = ""  # --tool-loop: the call id this call asked for, or the one whose result it carried


class CutStream(Exception):
    """Raised inside the app to make the server drop the connection mid-body."""


@dataclass
class FakeUpstream:
    behaviour: Behaviour = field(default_factory=Behaviour)
    by_model: dict[str, Behaviour] = field(default_factory=dict)  # a model's own behaviour, if not the default
    # The next calls' behaviours, one taken by each call until none is left
    # (a tool loop: tool calls first, then text); then the ones above.
    next_calls: deque[Behaviour] = field(default_factory=deque)
    calls: list[Call] = field(default_factory=list)
    tool_loop: bool = False  # --tool-loop: a call of the first tool offered, then text once it has run

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            return
        body = await _read_body(receive)
        if scope["path"] == "/calls" and scope["method"] == "GET":
            # For a benchmark in another process: time.monotonic() is one
            # clock for the whole machine on Linux.
            newest = list(self.calls)[-200:]
            await _send_json(
                send, 200, [{k: v for k, v in vars(c).items() if k not in ("body", "authorization")} for c in newest]
            )
            return
        if scope["path"] != "/v1/chat/completions" or scope["method"] != "POST":
            await _send_json(send, 404, {"error": {"message": "not found", "type": "invalid_request_error"}})
            return
        call = Call(
            body=json.loads(body),
            started_at=time.monotonic(),
            authorization=dict(scope["headers"]).get(b"authorization", b"").decode(),
        )
        self.calls.append(call)
        behaviour = self.next_calls.popleft() if self.next_calls else None
        behaviour = behaviour or self.by_model.get(call.body.get("model", ""), self.behaviour)
        if self.tool_loop:
            behaviour = _tool_loop_turn(call, behaviour, len(self.calls))
        if behaviour.status != 200 and (not behaviour.fail_first or len(self.calls) <= behaviour.fail_first):
            headers = [(b"retry-after", behaviour.retry_after.encode())] if behaviour.retry_after else []
            if behaviour.error_page:
                await _send_page(send, behaviour.status, behaviour.error_page)
                return
            await _send_json(
                send,
                behaviour.status,
                {"error": {"message": _failure_message(scope, behaviour), "type": "server_error"}},
                headers,
            )
            return
        if not call.body.get("stream"):
            # A whole answer takes its time too, unless the client goes meanwhile.
            if await _client_left_within(receive, call, behaviour.first_token_delay):
                return
            completion = _completion(call.body.get("model", "fake"), "".join(behaviour.pieces()), behaviour.usage)
            await _send_json(send, 200, completion)
            call.finished_at = time.monotonic()
            return
        watcher = asyncio.create_task(_watch_disconnect(receive, call))
        try:
            await self._stream(send, call, behaviour)
            call.finished_at = time.monotonic()
        finally:
            watcher.cancel()

    async def _stream(self, send, call: Call, behaviour: Behaviour) -> None:
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", behaviour.content_type.encode())],
            }
        )
        model = call.body.get("model", "fake")
        await asyncio.sleep(behaviour.first_token_delay)
        deltas = behaviour.deltas()
        step = behaviour.tokens_per_chunk
        for index in range(0, len(deltas), step):
            if index:
                await asyncio.sleep(behaviour.pace)
            if call.disconnected_at is not None:
                return  # a real model server stops generating too
            if behaviour.cut_after is not None and index >= behaviour.cut_after:
                raise CutStream
            if index in behaviour.malformed_at:
                await _send_body(send, b"data: {not json\n\n")
            call.tokens_sent = index + step
            chunk = deltas[index : index + step]
            if behaviour.stamp:
                chunk = [_stamped(delta) for delta in chunk]
            await _send_body(send, _event(_chunk(model, _joined(chunk))))
        if behaviour.huge_event:
            await _send_huge_event(send, call, _event(_chunk(model, {"content": "x" * behaviour.huge_event})))
        if behaviour.finish_reason is not None:
            await _send_body(send, _event(_chunk(model, {}, behaviour.finish_reason)))
            if behaviour.usage_chunk and call.body.get("stream_options", {}).get("include_usage"):
                usage = behaviour.usage or {
                    "prompt_tokens": 11,
                    "completion_tokens": len(deltas),
                    "total_tokens": 11 + len(deltas),
                }
                await _send_body(send, _event({**_chunk(model, None), "choices": [], "usage": usage}))
            await _send_body(send, b"data: [DONE]\n\n")
        await send({"type": "http.response.body", "body": b"", "more_body": False})

    def closed_within(self, seconds: float) -> bool:
        """Did the last call's client go away and have we noticed within `seconds`?"""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if self.calls and self.calls[-1].disconnected_at is not None:
                return True
            time.sleep(0.005)
        return False


async def _send_huge_event(send, call: Call, event: bytes, read: int = 16 * 1024) -> None:
    """One event in many network writes, until the client goes."""
    for start in range(0, len(event), read):
        if call.disconnected_at is not None:
            return
        await _send_body(send, event[start : start + read])
        await asyncio.sleep(0)  # a write each turn of the loop, so the client reads it in pieces


def _stamped(delta: dict) -> dict:
    """A token that says when it was sent (CLOCK_MONOTONIC: one clock for every process)."""
    return {key: f"{text.rstrip()}@{time.monotonic():.6f} " for key, text in delta.items()}


def _joined(deltas: list[dict]) -> dict:
    """Several deltas in one chunk: their text fields joined (a script's
    deltas go one a chunk)."""
    if len(deltas) == 1:
        return deltas[0]
    joined: dict = {}
    for delta in deltas:
        for name, value in delta.items():
            joined[name] = joined.get(name, "") + value if isinstance(value, str) else value
    return joined


# --- the shapes real servers send (scripts for Behaviour.script) -----------------
# OpenAI opens with a role chunk; vLLM, llama.cpp and Ollama do much the same.
ROLE = {"role": "assistant", "content": ""}


def reasoning_script(thoughts: list[str], answer: list[str], *, shape: str = "reasoning_content") -> list[dict]:
    """A reasoning model's stream. `shape`: `reasoning_content` (DeepSeek,
    llama.cpp, vLLM before 0.10), `reasoning` (Ollama's /v1, newer vLLM),
    `both` (vLLM versions that send both fields with the same text), or
    `think` (no reasoning parser: `<think>…</think>` inline, split mid-tag)."""
    if shape == "think":
        inline = "<think>\n" + "".join(thoughts) + "\n</think>\n\n" + "".join(answer)
        cuts = [0, 3, 9, *range(12, len(inline), 5), len(inline)]  # "<th" | "ink>\n…": tags cut across chunks
        return [ROLE, *({"content": inline[a:b]} for a, b in zip(cuts, cuts[1:], strict=False) if b > a)]
    fields = {"reasoning_content": ["reasoning_content"], "reasoning": ["reasoning"]}
    names = fields.get(shape, ["reasoning_content", "reasoning"])
    return [
        ROLE,
        *(dict.fromkeys(names, thought) for thought in thoughts),
        *({"content": piece} for piece in answer),
    ]


def parallel_tool_calls_script() -> list[dict]:
    """Two calls whose argument fragments interleave by index, as OpenAI and
    vLLM send them (the id and name only in each call's first fragment)."""
    return [
        ROLE,
        {
            "tool_calls": [
                {"index": 0, "id": "call_a", "type": "function", "function": {"name": "get_weather", "arguments": ""}}
            ]
        },
        {
            "tool_calls": [
                {"index": 1, "id": "call_b", "type": "function", "function": {"name": "get_time", "arguments": ""}}
            ]
        },
        {"tool_calls": [{"index": 0, "function": {"arguments": '{"city": '}}]},
        {"tool_calls": [{"index": 1, "function": {"arguments": '{"zone": "CET"'}}]},
        {"tool_calls": [{"index": 0, "function": {"arguments": '"Paris"}'}}]},
        {"tool_calls": [{"index": 1, "function": {"arguments": "}"}}]},
    ]


def _tool_loop_turn(call: Call, behaviour: Behaviour, number: int) -> Behaviour:
    """--tool-loop: this call's behaviour, and which tool call it belongs to."""
    messages, tools = call.body.get("messages", []), call.body.get("tools") or []
    if messages and messages[-1].get("role") == "tool":
        call.tool_call = messages[-1].get("tool_call_id", "")
        return behaviour
    if not tools:
        return behaviour
    call.tool_call = f"call_{number}"
    asked = tool_calls_behaviour((call.tool_call, tools[0]["function"]["name"], {}))
    asked.first_token_delay, asked.pace = behaviour.first_token_delay, behaviour.pace
    return asked


def tool_calls_behaviour(*calls: tuple[str, str, dict], text: str = "") -> Behaviour:
    """A call answered with `text`, then these tool calls (id, name,
    arguments), each whole in one chunk, ending with `tool_calls`."""
    script = [ROLE, *([{"content": text}] if text else [])]
    for index, (call_id, name, arguments) in enumerate(calls):
        function = {"name": name, "arguments": json.dumps(arguments)}
        script.append({"tool_calls": [{"index": index, "id": call_id, "type": "function", "function": function}]})
    return Behaviour(script=script, finish_reason="tool_calls")


def reused_index_tool_calls_script() -> list[dict]:
    """Ollama's shape: each call whole in one chunk, every one under index 0."""
    return [
        ROLE,
        {
            "tool_calls": [
                {
                    "index": 0,
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": "read", "arguments": '{"path": "a.py"}'},
                }
            ]
        },
        {
            "tool_calls": [
                {
                    "index": 0,
                    "id": "call_2",
                    "type": "function",
                    "function": {"name": "read", "arguments": '{"path": "b.py"}'},
                }
            ]
        },
    ]


def refusal_script(pieces: list[str]) -> list[dict]:
    """OpenAI's refusal: `delta.refusal` in place of content."""
    return [{"role": "assistant", "content": None, "refusal": ""}, *({"refusal": piece} for piece in pieces)]


def _chunk(model: str, delta: dict | None, finish_reason: str | None = None) -> dict:
    choice = {"index": 0, "delta": delta or {}, "logprobs": None, "finish_reason": finish_reason}
    return {
        "id": "chatcmpl-fake",
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": model,
        "system_fingerprint": "fp_fake",
        "choices": [choice] if delta is not None else [],
    }


def _completion(model: str, content: str, usage: dict | None = None) -> dict:
    return {
        "id": "chatcmpl-fake",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}],
        "usage": usage or {"prompt_tokens": 11, "completion_tokens": 7, "total_tokens": 18},
    }


def _event(payload: dict) -> bytes:
    return b"data: " + json.dumps(payload, separators=(",", ":")).encode() + b"\n\n"


async def _send_body(send, data: bytes) -> None:
    await send({"type": "http.response.body", "body": data, "more_body": True})


async def _send_json(send, status: int, payload: dict, headers: list | None = None) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"application/json"), *(headers or [])],
        }
    )
    await send({"type": "http.response.body", "body": json.dumps(payload).encode()})


async def _send_page(send, status: int, page: str) -> None:
    await send({"type": "http.response.start", "status": status, "headers": [(b"content-type", b"text/html")]})
    await send({"type": "http.response.body", "body": page.encode()})


def _failure_message(scope, behaviour: Behaviour) -> str:
    message = f"fake failure {behaviour.status}"
    if behaviour.echo_authorization:  # as some servers do: "Incorrect API key provided: sk-…"
        authorization = dict(scope["headers"]).get(b"authorization", b"").decode()
        message += f" for {authorization}"
    return message


async def _read_body(receive) -> bytes:
    chunks = []
    while True:
        message = await receive()
        chunks.append(message.get("body", b""))
        if not message.get("more_body"):
            return b"".join(chunks)


async def _client_left_within(receive, call: Call, seconds: float) -> bool:
    watcher = asyncio.create_task(_watch_disconnect(receive, call))
    try:
        await asyncio.wait({watcher}, timeout=seconds)
    finally:
        watcher.cancel()
    return call.disconnected_at is not None


async def _watch_disconnect(receive, call: Call) -> None:
    message = await receive()
    if message["type"] == "http.disconnect":
        call.disconnected_at = time.monotonic()


def service(
    port: int,
    *,
    log_dir: Path,
    cpus,
    first_token_delay: float,
    pace: float,
    tokens: int,
    token_chars: int = 0,
    record_calls: bool = False,
    reasoning_tokens: int = 0,
    stamp: bool = False,
    tool_loop: bool = False,
) -> Service:
    """The fake upstream as a server process, e.g. for a benchmark."""
    argv = [PYTHON, "-m", "harness.fake_upstream", "--port", str(port)]
    argv += ["--first-token-delay", str(first_token_delay), "--pace", str(pace), "--tokens", str(tokens)]
    if token_chars:
        argv += ["--token-chars", str(token_chars)]
    if record_calls:
        argv += ["--record-calls"]
    if reasoning_tokens:
        argv += ["--reasoning-tokens", str(reasoning_tokens)]
    if stamp:
        argv += ["--stamp"]
    if tool_loop:
        argv += ["--tool-loop"]
    return Service(f"fake upstream {port}", argv, port, log_dir=log_dir, cpus=cpus)


def main() -> None:
    import uvicorn

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--port", type=int, default=9100)
    parser.add_argument("--first-token-delay", type=float, default=0.05)
    parser.add_argument("--pace", type=float, default=0.02)
    parser.add_argument("--tokens", type=int, default=100)
    parser.add_argument(
        "--token-chars", type=int, help="make each token this many characters (default: 't0 ', 't1 '...)"
    )
    parser.add_argument("--record-calls", action="store_true", help="keep the last 1,000 calls for GET /calls")
    parser.add_argument("--reasoning-tokens", type=int, default=0, help="send the first N tokens as reasoning")
    parser.add_argument("--stamp", action="store_true", help="each token says when it was sent: 't7@<monotonic> '")
    parser.add_argument("--tool-loop", action="store_true", help="call the first tool offered, then answer in text")
    args = parser.parse_args()
    behaviour = Behaviour(
        first_token_delay=args.first_token_delay,
        pace=args.pace,
        tokens=args.tokens,
        reasoning_tokens=args.reasoning_tokens,
        stamp=args.stamp,
    )
    if args.token_chars:
        words = "lorem ipsum dolor sit amet " * (args.token_chars * args.tokens // 27 + 1)
        behaviour.text, behaviour.piece_chars = words[: args.token_chars * args.tokens], args.token_chars
    app = FakeUpstream(behaviour, tool_loop=args.tool_loop)
    # A long-running process keeps only the newest calls (GET /calls), or none:
    # memory stays flat.
    app.calls = deque(maxlen=1000) if args.record_calls else _Discard()  # type: ignore[assignment]
    uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="warning", lifespan="off")


class _Discard(list):
    def append(self, item) -> None:
        pass


if __name__ == "__main__":
    main()
