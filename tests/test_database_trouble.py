"""A database that hangs or refuses: API requests get their JSON 503 in a few
seconds and the process recovers when the database does. A server process
reaches PostgreSQL through a TCP proxy the test controls."""

import os
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from django.db import connection

from harness.servers import PYTHON, Service, free_port

from .cut_proxy import CutProxy
from .helpers import database_url, make_api_user, wait_for

# Longer than a refused connection's 2 s (libpq's shortest connect_timeout),
# so that a call answered in time was not merely cut off at the timeout.
DB_TIMEOUT_SECONDS = 3.0
DB_THREADS = 2

pytestmark = pytest.mark.skipif(connection.vendor != "postgresql", reason="a TCP proxy in front of PostgreSQL")


@pytest.fixture
def database_proxy(transactional_db):
    host_and_port = database_url().rsplit("@", 1)[1].split("/", 1)[0]
    with CutProxy(int(host_and_port.rsplit(":", 1)[1])) as proxy:
        yield proxy


@pytest.fixture
def db_timeout() -> float:
    """The server's CHATSTREAM_DB_TIMEOUT_SECONDS; a test may parametrize it."""
    return DB_TIMEOUT_SECONDS


@pytest.fixture
def proxied_server(database_proxy, tmp_path, live, db_timeout):
    """A server process on the test database, through the proxy."""
    credentials, rest = database_url().rsplit("@", 1)
    name = rest.split("/", 1)[1]
    env = {
        "DJANGO_SETTINGS_MODULE": "tests.settings",
        "DATABASE_URL": f"{credentials}@127.0.0.1:{database_proxy.port}/{name}",
        "CHATSTREAM_DB_TIMEOUT_SECONDS": str(db_timeout),
        "CHATSTREAM_DB_THREADS": str(DB_THREADS),
    }
    port = free_port()
    argv = [PYTHON, "-m", "uvicorn", "harness.asgi:application", "--port", str(port), "--lifespan", "off"]

    with Service("server", [*argv, "--log-level", "warning"], port, log_dir=tmp_path, env={**os.environ, **env}):
        yield f"http://127.0.0.1:{port}"


@pytest.fixture
def client(proxied_server, live):
    api_user = make_api_user(live.url, "dora")
    with httpx.Client(base_url=proxied_server, headers=dict(api_user.client.headers), timeout=30) as client:
        assert client.get("/api/conversations").status_code == 200  # connected, through the proxy
        yield client
    api_user.client.close()


def timed_get(client: httpx.Client, path: str = "/api/conversations") -> tuple[httpx.Response, float]:
    started = time.monotonic()
    response = client.get(path, timeout=15)
    return response, time.monotonic() - started


def get_at_once(client: httpx.Client, count: int) -> list[tuple[httpx.Response, float]]:
    with ThreadPoolExecutor(count) as pool:
        return list(pool.map(lambda _: timed_get(client), range(count)))


def assert_all_unavailable(answers: list[tuple[httpx.Response, float]], within: float) -> None:
    for response, took in answers:
        assert response.status_code == 503 and response.json()["error"]["code"] == "database_unavailable"
        assert took < within, [round(took, 2) for _, took in answers]


@pytest.mark.parametrize("db_timeout", [1.0])  # waited out: short
def test_a_database_that_stops_answering_is_a_503_within_its_timeout(client, database_proxy, db_timeout):
    database_proxy.stall()
    # Every database thread stuck, and one more request waiting for a thread.
    assert_all_unavailable(get_at_once(client, DB_THREADS + 1), within=db_timeout + 1.5)

    database_proxy.resume()  # the stuck calls were broken off: the threads serve again
    assert [timed_get(client)[0].status_code for _ in range(DB_THREADS + 1)] == [200] * (DB_THREADS + 1)


def test_a_database_that_refuses_connections_is_a_503_without_queueing(client, database_proxy):
    """A call waits up to 2 s for a connection that will not come; those
    queued behind it used to wait their turn to do the same."""
    database_proxy.cut()
    assert_all_unavailable(get_at_once(client, 6 * DB_THREADS), within=2.7)

    database_proxy.restore()
    wait_for(lambda: timed_get(client)[0].status_code == 200, 10, "the server reconnects", interval=0.2)
