from pathlib import Path

import openai
import pytest
import redis
from django.contrib.auth import get_user_model

from conversations import services, state
from conversations.models import Conversation
from conversations.providers.openai import OpenAIProvider, close_shared_session
from conversations.storage import calls
from conversations.storage.threads import close_worker_connections
from conversations.stream import background, registry
from conversations.stream.shutdown import SAVE_WAIT_SECONDS, interrupt_all
from harness.fake_upstream import Behaviour, FakeUpstream
from harness.servers import ServerThread

from .helpers import make_api_user, redis_url, wait_until_every_answer_is_saved


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    """A failed test that ran on two server processes (`pair`) reports the
    end of each one's log: what they did is most of what went wrong."""
    report = yield
    pair = getattr(item, "funcargs", {}).get("pair")
    if report.failed and pair is not None:
        for server in pair.servers:
            report.sections.append((f"{server.name} log (last 60 lines)", server.log_tail(60)))
    return report


@pytest.fixture(scope="session", autouse=True)
def database_threads(django_db_setup, django_db_blocker):
    """The app's database threads keep their connections open; close them
    before the test database is dropped."""
    yield
    with django_db_blocker.unblock():
        close_worker_connections()


@pytest.fixture(autouse=True)
def no_refusal_carried_over():
    """A test whose database refused (or seemed to) leaves this process
    failing new connections for 2 s (storage/calls.py): the next test, on the
    same process under pytest-xdist, starts without that pause."""
    yield
    calls.forget_refusal()


@pytest.fixture(scope="session")
def upstream_server():
    app = FakeUpstream()
    with ServerThread(app) as server:
        server.app = app
        yield server


@pytest.fixture
def upstream(upstream_server, settings) -> FakeUpstream:
    """The fake model server, reset, with the app pointed at it."""
    app: FakeUpstream = upstream_server.app
    app.behaviour = Behaviour()
    app.by_model.clear()
    app.calls.clear()
    app.next_calls.clear()
    settings.LLM_PROVIDER = "openai"
    settings.LLM_BASE_URL = f"{upstream_server.url}/v1"
    settings.LLM_MODEL = "fake-model"
    return app


@pytest.fixture
def openai_provider(upstream, upstream_server) -> OpenAIProvider:
    """The OpenAI-compatible provider on the fake upstream, made directly."""
    return OpenAIProvider(model="fake-model", base_url=f"{upstream_server.url}/v1", api_key="sk-test")


@pytest.fixture
def two_models(upstream, upstream_server, settings) -> FakeUpstream:
    """A catalogue of two models on the fake upstream, told apart by their
    upstream ids: small (qwen3:4b, the default) and big (gpt-big, which
    thinks)."""
    base_url = f"{upstream_server.url}/v1"
    settings.LLM_MODELS = {
        "small": {"provider": "openai", "base_url": base_url, "model": "qwen3:4b"},
        "big": {"provider": "openai", "base_url": base_url, "model": "gpt-big", "reasoning": True},
    }
    settings.LLM_DEFAULT_MODEL = "small"
    return upstream


@pytest.fixture(scope="session")
def app_server():
    from harness.asgi import application  # on the stack tests/settings.py names

    with ServerThread(application) as server:
        yield server
        server.run(close_shared_session())  # the upstream connections the app kept open


@pytest.fixture
def live(app_server, transactional_db):
    """The app under a real ASGI server, with a database the server can reach.
    Afterwards, the answers a test left running are stopped and saved before
    the database is emptied: a save in flight while the tables are truncated
    can deadlock with the TRUNCATE on PostgreSQL."""
    yield app_server
    if registry.all_answers():
        app_server.run(interrupt_all(), timeout=SAVE_WAIT_SECONDS + 1)
    # What an answer's end starts writes too (the conversation's next queued
    # message, a guardrail's after(), a stream slot given back): settled
    # before the flush, which a write in flight deadlocks on PostgreSQL.
    app_server.run(background.settle(SAVE_WAIT_SECONDS), timeout=SAVE_WAIT_SECONDS + 1)


@pytest.fixture
def owner(db):
    """A user to own conversations, saved in the database the test uses:
    pytest-django's `db` gives way to `transactional_db` (or a
    `django_db(transaction=True)` mark) when the test asks for that too."""
    return get_user_model().objects.create_user("owner")


@pytest.fixture
def conversation(owner) -> Conversation:
    """An empty conversation of `owner`'s."""
    return services.create_conversation(owner=owner)


@pytest.fixture
def staff_client(client, db):
    """Django's test client, logged in as a superuser."""
    admin = get_user_model().objects.create_superuser("root", "root@example.com", "pw")
    client.force_login(admin)
    return client


@pytest.fixture
def alice(live):
    api_user = make_api_user(live.url, "alice")
    yield api_user
    api_user.client.close()


@pytest.fixture
def bob(live):
    api_user = make_api_user(live.url, "bob")
    yield api_user
    api_user.client.close()


@pytest.fixture
def sdk(alice, live):
    """The official `openai` SDK, as alice, at the app's OpenAI door."""
    client = openai.OpenAI(base_url=f"{live.url}/v1", api_key=alice.key, max_retries=0, timeout=30)
    yield client
    client.close()


@pytest.fixture
def throttled(settings):
    """Failed logins and keys counted, with a fresh count: 3 allowed from an
    address, 10 for an account (tests/settings.py turns both off)."""
    settings.CHATSTREAM_AUTH_FAILURES = 3
    settings.CHATSTREAM_AUTH_ACCOUNT_FAILURES = 10
    state.reset()
    yield
    state.reset()


@pytest.fixture(scope="module")
def redis_ready():
    """The tests' own database on the machine's Redis, emptied (once a
    module: the server processes a module starts share it)."""
    client = redis.Redis.from_url(redis_url())
    try:
        client.flushdb()
    except redis.ConnectionError as exc:
        pytest.fail(f"These tests need Redis at {redis_url()} (set CHATSTREAM_TEST_REDIS_URL): {exc}")
    finally:
        client.close()


@pytest.fixture
def on(pair, transactional_db):
    """A user with an API key and a client for each of the module's `pair`
    of server processes: on["a"], on["b"]. Afterwards, the answers the test
    left running are saved before the database is emptied."""
    carol = make_api_user(pair.a, "carol")
    users = {"a": carol, "b": carol.on(pair.b)}
    yield users
    for api_user in users.values():
        api_user.client.close()
    wait_until_every_answer_is_saved()


@pytest.fixture
def fresh_prices():
    """Prices and budget rows read afresh before and after the test: each
    process caches them for 30 s."""
    state.reset()
    yield
    state.reset()


@pytest.fixture
def stored_in(settings, tmp_path) -> Path:
    """The files' storage (STORAGES["chatstream"]): a folder of the test's own."""
    settings.STORAGES = {
        **settings.STORAGES,
        "chatstream": {"BACKEND": "django.core.files.storage.FileSystemStorage", "OPTIONS": {"location": tmp_path}},
    }
    return tmp_path
