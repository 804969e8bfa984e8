"""What the tests share besides fixtures: API users and clients checked
against the API's description, SSE read with httpx-sse, and waits for the
server's saves."""

import os
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote, urlsplit

import httpx
import schemathesis
from django.contrib.auth import get_user_model
from django.db import connection
from httpx_sse import EventSource

from conversations import answering, services
from conversations.access import api_keys
from conversations.models import Turn
from conversations.stream.answer import Answer, PreparedTurn
from harness.servers import PYTHON, Service, free_port

API_DESCRIPTION = schemathesis.openapi.from_path(Path(__file__).parent.parent / "conversations" / "openapi.yaml")
API_PREFIX = "/api/"


# --- race tests --------------------------------------------------------------------


def races(many: int) -> range:
    """The attempts of a test that repeats a race: `many` where
    CHATSTREAM_TEST_RACES=many (one CI leg), else two (the fast loop, the
    other legs)."""
    return range(many if os.environ.get("CHATSTREAM_TEST_RACES") == "many" else min(many, 2))


# --- turns without a request ---------------------------------------------------------


def start_turn(*, owner, conversation_id, content: str) -> PreparedTurn:
    """A message saved and its answer's turn prepared, as sending it does."""
    message = answering.NewMessage(content)
    return answering.start_turn(owner=owner, conversation_id=conversation_id, message=message)


def answer(**overrides) -> Answer:
    """An answer as the relay hands it to be saved: a cancelled one's
    fields, with `overrides`."""
    fields = {
        "content": "partial",
        "finish_reason": "cancelled",
        "model": "m",
        "provider": "openai",
        "trace_id": "t",
        "ttft_ms": 1,
        "duration_ms": 2,
        "tokens_in": 3,
        "tokens_out": 4,
        "tokens_estimated": False,
    }
    return Answer(**{**fields, **overrides})


def exchange(owner, conversation, question: str, reply: str = "An answer.", **fields) -> PreparedTurn:
    """A message and its answer, both saved; the answer ended normally
    unless `fields` (answer()'s) say otherwise."""
    prepared = start_turn(owner=owner, conversation_id=conversation.pk, content=question)
    services.record_answer(prepared=prepared, answer=answer(content=reply, **{"finish_reason": "stop", **fields}))
    return prepared


def tool_loop_answer(owner, decider) -> Turn:
    """An answer of three model calls, saved as the tool loop saves one: the
    first calls `add` (its output holds a <script>) and `lookup_order`,
    which `decider` denies; the second calls `weather`, which fails; the
    third answers. Priced at 1 and 4 a million tokens (LLM_PRICES must say
    so for "m-2")."""
    from django.utils import timezone

    from conversations.models import AnswerStep, ToolRun
    from conversations.providers.tool_calls import call_text
    from conversations.stream.output import Output, approval_text, result_text, step_text

    conversation = services.create_conversation(owner=owner)
    prepared = start_turn(owner=owner, conversation_id=conversation.pk, content="Add 2 and 3, then my order?")
    calls = [
        {"id": "call_1", "name": "add", "arguments": '{"a": 2, "b": 3}'},
        {"id": "call_2", "name": "lookup_order", "arguments": '{"order_id": "A-1"}'},
        {"id": "call_3", "name": "weather", "arguments": '{"city": "Oslo"}'},
    ]
    results = [
        {"id": "call_1", "name": "add", "output": "<script>alert(1)</script>5", "duration_ms": 12},
        {"id": "call_2", "name": "lookup_order", "error": "The user declined to run this tool.", "duration_ms": 0},
        {"id": "call_3", "name": "weather", "error": "Timed out <b>badly</b>", "duration_ms": 30000},
    ]
    output = Output()
    for text, kind in [
        ("Let me work it out.", "delta"),
        (call_text(*calls[0].values()), "tool_call"),
        (call_text(*calls[1].values()), "tool_call"),
        (approval_text(calls[1]), "approval_request"),
        (result_text(results[0]), "tool_result"),
        (result_text(results[1]), "tool_result"),
        (step_text(2), "step"),
        ("Now the weather.", "delta"),
        (call_text(*calls[2].values()), "tool_call"),
        (result_text(results[2]), "tool_result"),
        (step_text(3), "step"),
        ("2 + 3 = 5; the order I may not look up.", "delta"),
    ]:
        output.append(text, kind)
    for call, result in zip(calls, results, strict=True):
        ToolRun.objects.create(
            turn_id=prepared.answer_turn_id,
            conversation=conversation,
            call_id=call["id"],
            name=call["name"],
            arguments=call["arguments"],
            output=result.get("output"),
            error=result.get("error"),
            duration_ms=result["duration_ms"],
            ended_at=timezone.now(),
        )
    ToolRun.objects.filter(call_id="call_2").update(
        approval=ToolRun.Approval.DENIED, decided_by=decider, decided_at=timezone.now(), decision_reason="Not today"
    )
    for n, tokens_in, tokens_out, cost in [(1, 100, 20, "0.00018"), (2, 200, 10, "0.00024")]:
        AnswerStep.objects.create(
            turn_id=prepared.answer_turn_id,
            conversation=conversation,
            n=n,
            model="m-2",
            tokens_in=tokens_in,
            tokens_out=tokens_out,
            cost=cost,
        )
    parts = output.parts()
    services.record_answer(
        prepared=prepared,
        answer=answer(
            content=parts.content,
            tool_calls=parts.tool_calls,
            tool_results=parts.tool_results,
            approvals=parts.approvals,
            output_runs=parts.output_runs,
            finish_reason="stop",
            model="m-2",
            tokens_in=600,  # the three calls': 100 + 200 + 300
            tokens_out=45,  # 20 + 10 + 15
            usage_source="reported",
        ),
    )
    return Turn.objects.get(pk=prepared.answer_turn_id)


# --- Redis ---------------------------------------------------------------------------

# The first of the suite's databases on the machine's Redis; a test process
# (pytest, or each pytest-xdist worker) has two of its own, counting down.
TEST_REDIS_URL = os.environ.get("CHATSTREAM_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")


def redis_url(which: int = 0) -> str:
    """A database of this test process's own on the machine's Redis, so that
    pytest-xdist's workers never share keys or empty each other's: `which`
    0 (the server processes' and the channel layer's) or 1 (the in-process
    server's, tests/test_hostile.py). CHATSTREAM_TEST_REDIS_URL's database
    (15 by default) and the one below for a run without xdist and for worker
    gw0, the next two down for gw1, and so on: 15 to 12 under `-n 2`."""
    worker = int(os.environ.get("PYTEST_XDIST_WORKER", "gw0").removeprefix("gw"))
    url = urlsplit(TEST_REDIS_URL)
    number = int(url.path.strip("/") or 0) - 2 * worker - which
    assert number >= 0, f"{TEST_REDIS_URL} leaves no Redis database for worker gw{worker}: start higher"
    return url._replace(path=f"/{number}").geturl()


# --- users and clients ------------------------------------------------------------


@dataclass
class ApiUser:
    user: object
    key: str
    client: httpx.Client

    def new_conversation(self) -> str:
        response = self.client.post("/api/conversations", json={})
        assert response.status_code == 201, response.text
        return response.json()["id"]

    def on(self, base_url: str) -> "ApiUser":
        """The same user and key, with a client of its own on another server."""
        return ApiUser(self.user, self.key, api_client(base_url, headers=dict(self.client.headers)))


def conforms_to_the_api_description(response: httpx.Response) -> None:
    """An httpx response hook: every JSON answer of the API (and every
    stream's head) must match conversations/openapi.yaml."""
    request = response.request
    if not request.url.path.startswith(API_PREFIX) or request.url.path == "/api/openapi.yaml":
        return
    operation = API_DESCRIPTION.find_operation_by_path(request.method, request.url.path)
    if operation is None:  # a method or path the API does not have: still the one error shape
        response.read()
        error = response.json()["error"]
        assert response.status_code in (404, 405) and set(error) == {"code", "message"}, response.text
        return
    if not response.headers.get("content-type", "").startswith("application/json") and response.status_code != 204:
        assert response.status_code == 200, response.status_code  # a stream, whose events the tests check
        return
    response.read()
    documented = set(operation.responses.status_codes)
    assert str(response.status_code) in documented, f"{operation.label} answered {response.status_code}: not described"
    try:
        request.read()  # a multipart upload's body is a stream: the validator reads it
    except httpx.StreamConsumed:
        return  # a body sent from a generator (chunked) is gone: its response's status was checked
    operation.validate_response(response)


def api_client(base_url: str, **kwargs) -> httpx.Client:
    return httpx.Client(
        base_url=base_url, timeout=30, event_hooks={"response": [conforms_to_the_api_description]}, **kwargs
    )


def log_in(client: httpx.Client, door: str, username: str, password: str) -> httpx.Response:
    """The login form at `door` posted, as a browser does: its page read
    first for the CSRF cookie, unless the client has one."""
    if "csrftoken" not in client.cookies:
        client.get(door)
    data = {"username": username, "password": password, "csrfmiddlewaretoken": client.cookies["csrftoken"]}
    return client.post(door, data=data)


def make_api_user(base_url: str, username: str) -> ApiUser:
    """A user (password pw-<username>) with an API key, and a client on the server at `base_url`."""
    user = get_user_model().objects.create_user(username=username, password="pw-" + username)
    _, key = api_keys.create_api_key(user=user)
    client = api_client(base_url, headers={"Authorization": f"Bearer {key}"})
    return ApiUser(user=user, key=key, client=client)


def stream(api_user: ApiUser, conversation_id: str, content: str = "Hello", **kwargs):
    """A message's answer, as a streaming response (a context manager)."""
    return api_user.client.stream(
        "POST", f"/api/conversations/{conversation_id}/messages", json={"content": content}, **kwargs
    )


def send(api_user: ApiUser, conversation_id: str, content: str = "Hello", **body) -> httpx.Response:
    """A message (and `body`'s other fields), its whole response read."""
    response = api_user.client.post(f"/api/conversations/{conversation_id}/messages", json={"content": content, **body})
    response.read()
    return response


def post_and_read(api_user: ApiUser, content: str = "Hello", **kwargs) -> tuple[str, list[dict], httpx.Response]:
    """A new conversation, a message, and its whole answer's events."""
    conversation_id = api_user.new_conversation()
    with stream(api_user, conversation_id, content, **kwargs) as response:
        response.read()
    return conversation_id, read_events(response), response


def post_with_key(api_user: ApiUser, conversation_id: str, key: str) -> list[dict]:
    response = api_user.client.post(
        f"/api/conversations/{conversation_id}/messages",
        json={"content": "Only once"},
        headers={"Idempotency-Key": key},
    )
    return read_events(response)


# --- server-sent events (httpx-sse) ---------------------------------------------------


def sse_events(response: httpx.Response) -> Iterator[dict]:
    """The response's events as they arrive: {"event", "id", "data"}, the
    data parsed as JSON; comments (the opening, heartbeats) are skipped."""
    for event in EventSource(response).iter_sse():
        # httpx-sse hands on a data-less block (a comment, once an id has
        # been seen) as an event; the standard dispatches none.
        if event.data:
            yield {"event": event.event, "id": event.id or None, "data": event.json()}


def door_stream_until_text(response) -> tuple[str, Iterator[str]]:
    """An OpenAI door stream (the `openai` SDK's streaming response) read to
    its first chunk with text: its conversation, and its lines still to come."""
    lines = response.iter_lines()
    while "content" not in next(lines):
        pass
    return response.headers["X-Chatstream-Conversation"], lines


def read_events(response: httpx.Response) -> list[dict]:
    return list(sse_events(response))


def events_of(raw: bytes) -> list[dict]:
    """The events in a piece of SSE wire text."""
    return read_events(httpx.Response(200, headers={"content-type": "text/event-stream"}, content=raw))


def text_of(events: Iterable[dict]) -> str:
    return "".join(event["data"]["text"] for event in events if event["event"] == "delta")


def text_and_final(events: list[dict]) -> tuple[str, dict]:
    return text_of(events), events[-1]


def read_until_deltas(events: Iterator[dict], count: int) -> tuple[str, str, int]:
    """(turn id, text, id of the last event) after `count` deltas."""
    turn_id, text, deltas = None, "", 0
    for event in events:
        if event["event"] == "start":
            turn_id = event["data"]["turn_id"]
        elif event["event"] == "delta":
            text += event["data"]["text"]
            deltas += 1
            if deltas == count:
                assert turn_id is not None
                return turn_id, text, int(event["id"])
    raise AssertionError("the stream ended early")


def start_event_and_a_delta(events: Iterator[dict]) -> str:
    """Read up to the first delta; the `start` event's turn id."""
    return read_until_deltas(events, 1)[0]


# --- the database ---------------------------------------------------------------------


def saved_answer(conversation_id: str) -> Turn:
    return Turn.objects.get(conversation_id=conversation_id, role=Turn.Role.ASSISTANT)


def wait_for(condition, timeout: float, what: str, interval: float = 0.02) -> None:
    """Until `condition()` holds; fails, naming `what`, after `timeout` s."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"not within {timeout} s: {what}"
        time.sleep(interval)


def wait_for_answer(conversation_id: str, timeout: float = 5.0) -> Turn:
    """The answer's row, once the server has written it."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        turn = Turn.objects.filter(conversation_id=conversation_id, role=Turn.Role.ASSISTANT).first()
        if turn is not None:
            return turn
        time.sleep(0.01)
    raise AssertionError(f"no answer saved for {conversation_id} within {timeout} s")


def answer_of(turn_id: str, timeout: float = 10.0) -> Turn:
    """The answer with this id, once the server has written its row."""
    wait_for(lambda: Turn.objects.filter(pk=turn_id).exists(), timeout, f"the answer {turn_id} saved")
    return Turn.objects.get(pk=turn_id)


def asked(upstream) -> list[str]:
    """The last user message of each model call the fake upstream took, in order."""
    return [
        next(m["content"] for m in reversed(call.body["messages"]) if m["role"] == "user") for call in upstream.calls
    ]


def process_env(upstream_url: str, **settings: str) -> dict[str, str]:
    """The environment of an app or worker process a test starts: the test
    settings and database, the fake upstream's model, then `settings`."""
    return {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.settings",
        "DATABASE_URL": database_url(),
        "LLM_PROVIDER": "openai",
        "LLM_BASE_URL": f"{upstream_url}/v1",
        "LLM_MODEL": "fake-model",
        **settings,
    }


def database_url() -> str:
    """The test database, for server processes."""
    db = connection.settings_dict
    if connection.vendor == "sqlite":
        return f"sqlite:///{db['NAME']}"
    credentials = quote(db["USER"] or "") + (":" + quote(db["PASSWORD"]) if db["PASSWORD"] else "")
    return f"postgres://{credentials}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


# --- two server processes on Redis and the test database ------------------------------

PAIR_GRACE_SECONDS = 1.0  # CHATSTREAM_RESUME_GRACE_SECONDS
PAIR_MAX_STREAMS = 3  # per user, counted in Redis across both processes


@dataclass
class Pair:
    a: str  # the base URLs of the two processes
    b: str
    servers: tuple[Service, ...] = ()  # their logs go into a failed test's report (conftest.py)

    @classmethod
    def of(cls, a: Service, b: Service) -> "Pair":
        return cls(f"http://127.0.0.1:{a.port}", f"http://127.0.0.1:{b.port}", (a, b))


def start_pair(tmp_path_factory, upstream_url: str, policy: str, redis: str = "", **more_env: str) -> list[Service]:
    """Two app processes (uvicorn), not yet started, sharing Redis (`redis`,
    else this test process's own database, which the redis_ready fixture
    empties) and the test database, each answering with the `policy` on
    disconnect."""
    env = process_env(
        upstream_url,
        REDIS_URL=redis or redis_url(),
        CHATSTREAM_ON_DISCONNECT=policy,
        CHATSTREAM_RESUME_GRACE_SECONDS=str(PAIR_GRACE_SECONDS),
        CHATSTREAM_DB_THREADS="2",
        CHATSTREAM_MAX_CONCURRENT_STREAMS=str(PAIR_MAX_STREAMS),
        **more_env,
    )
    logs = tmp_path_factory.mktemp(f"servers-{policy}")
    services = []
    for name in ("a", "b"):
        port = free_port()
        argv = [PYTHON, "-m", "uvicorn", "harness.asgi:application", "--port", str(port), "--lifespan", "off"]
        argv += ["--log-level", "warning"]
        services.append(Service(f"server {name}", argv, port, log_dir=logs, env=env))
    return services


def wait_until_every_answer_is_saved(timeout: float = PAIR_GRACE_SECONDS + 5) -> None:
    """The servers finish answers whose clients left after the test is over;
    the database must not be flushed under their saves (on PostgreSQL the
    flush's TRUNCATE and a save's INSERT deadlock)."""

    def all_saved() -> bool:
        return Turn.objects.filter(role=Turn.Role.USER).count() <= Turn.objects.filter(role=Turn.Role.ASSISTANT).count()

    wait_for(all_saved, timeout, "every answer saved")


def connections_held() -> int:
    """Connections this process has open and in use (PostgreSQL: each is a
    server process). With Django's pool, those lent out; the pool's idle ones,
    left from earlier tests' busy moments, hold nothing. Without it, all."""
    if connection.pool is not None:
        stats = connection.pool.get_stats()
        return stats["pool_size"] - stats["pool_available"]
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND pid <> 0")
        return cursor.fetchone()[0]


DEMO_TOOLS = ["conversations.tools.demo.current_time", "conversations.tools.demo.lookup_order"]


def use_demo_model_with_tools(settings, *, tokens_per_second: float, first_token_delay: float) -> None:
    """The offline demo model, with the demo tools, at this pace."""
    settings.CHATSTREAM_TOOLS = DEMO_TOOLS
    settings.LLM_PROVIDER = "demo"
    settings.LLM_DEMO_TOKENS_PER_SECOND = tokens_per_second
    settings.LLM_DEMO_FIRST_TOKEN_DELAY = first_token_delay
