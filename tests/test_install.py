"""The app installed into someone else's project, as its guide says: the
wheel built from this repository, a project with its own user model (e-mail,
no username) and middleware, Django's own ASGI handler and middleware, the
app under `chat/`; served by uvicorn, daphne and `runserver`."""

import os
import shutil
import subprocess
from pathlib import Path

import httpx
import pytest

from harness.servers import PYTHON, ROOT, Service, free_port

from .helpers import log_in, read_events

# End to end, on one CI leg; the Django 5.2 leg installs the app too (`install`).
pytestmark = [pytest.mark.e2e, pytest.mark.install]

HOST_PROJECT = Path(__file__).parent / "hostproject"
SERVERS = {
    "uvicorn": ["-m", "uvicorn", "hostproject.asgi:application", "--port", "{port}"],
    "daphne": ["-m", "daphne", "-p", "{port}", "hostproject.asgi:application"],
    "runserver": ["manage.py", "runserver", "--noreload", "127.0.0.1:{port}"],
}


def run(*argv: str, cwd: Path, env: dict, timeout: float = 120) -> str:
    done = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, f"{' '.join(argv)}:\n{done.stdout}\n{done.stderr}"
    return done.stdout


@pytest.fixture(scope="module")
def host(tmp_path_factory, upstream_server):
    """The host project in a folder of its own, with the wheel installed
    beside it (and not this checkout: the folder has no `conversations`)."""
    work = tmp_path_factory.mktemp("host")
    source, wheels, site = work / "source", work / "wheels", work / "site"
    # Built from a copy of what the wheel is made of: setuptools builds in the
    # tree (build/, *.egg-info), where another test process (an xdist worker)
    # may be building at the same time; the checkout stays clean too.
    shutil.copytree(ROOT / "conversations", source / "conversations", ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, source / name)
    pip = [PYTHON, "-m", "pip", "--disable-pip-version-check", "--quiet"]
    run(
        *pip,
        "wheel",
        "--no-build-isolation",
        "--no-deps",
        "--wheel-dir",
        str(wheels),
        str(source),
        cwd=work,
        env=os.environ.copy(),
    )
    (wheel,) = wheels.glob("chatstream-*.whl")
    run(*pip, "install", "--no-deps", "--target", str(site), str(wheel), cwd=work, env=os.environ.copy())
    project = work / "project"
    shutil.copytree(HOST_PROJECT, project, ignore=shutil.ignore_patterns("__pycache__", "*.sqlite3*"))
    env = {
        **os.environ,
        "PYTHONPATH": str(site),  # the wheel's app, then the dependencies of the test's own environment
        "DJANGO_SETTINGS_MODULE": "hostproject.settings",
        "HOST_DATABASE": str(work / "host.sqlite3"),
        "HOST_LLM_BASE_URL": f"{upstream_server.url}/v1",
    }
    manage = (PYTHON, "manage.py")
    run(*manage, "migrate", "--noinput", cwd=project, env=env)
    make_staff = "from accounts.models import User; User.objects.create_superuser('ann@example.com', 'pw')"
    run(*manage, "shell", "-c", make_staff, cwd=project, env=env)
    key = run(*manage, "create_api_key", "ann@example.com", cwd=project, env=env).strip().splitlines()[-1]
    return {"project": project, "env": env, "key": key, "site": site}


def test_the_app_comes_from_the_wheel(host):
    where = run(
        PYTHON, "-c", "import conversations; print(conversations.__file__)", cwd=host["project"], env=host["env"]
    )
    assert where.strip().startswith(str(host["site"]))
    templates, static = host["site"] / "conversations" / "templates", host["site"] / "conversations" / "static"
    assert (templates / "conversations" / "chat.html").exists() and (static / "conversations" / "chat.js").exists()
    assert (host["site"] / "conversations" / "migrations" / "0001_initial.py").exists()


@pytest.mark.parametrize("server", SERVERS)
def test_a_turn_streams_through_the_host_project(host, upstream, tmp_path, server):
    port = free_port()
    argv = [PYTHON, *(part.format(port=port) for part in SERVERS[server])]
    with (
        Service(server, argv, port, log_dir=tmp_path, env=host["env"], cwd=host["project"]),
        httpx.Client(
            base_url=f"http://127.0.0.1:{port}", headers={"Authorization": f"Bearer {host['key']}"}, timeout=30
        ) as client,
    ):
        created = client.post("/chat/api/conversations", json={"title": "From the host"})
        assert created.status_code == 201 and created.headers["X-Host-Project"] == "yes"
        conversation = created.json()["id"]
        with client.stream("POST", f"/chat/api/conversations/{conversation}/messages", json={"content": "hi"}) as reply:
            assert reply.headers["content-type"] == "text/event-stream"
            events = read_events(reply)
        assert [events[0]["event"], events[-1]["event"]] == ["start", "done"]
        assert "".join(e["data"]["text"] for e in events if e["event"] == "delta") == "".join(
            f"t{i} " for i in range(20)
        )
        saved = client.get(f"/chat/api/conversations/{conversation}").json()["turns"]
        assert [turn["role"] for turn in saved] == ["user", "assistant"] and saved[1]["finish_reason"] == "stop"
        for method in ("GET", "POST", "DELETE"):  # never Django's HTML 404 or CSRF page
            missing = client.request(method, "/chat/api/no-such-thing")
            assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"


def test_the_chat_page_and_the_admin_in_the_host_project(host, upstream, tmp_path):
    port = free_port()
    argv = [PYTHON, "-m", "uvicorn", "hostproject.asgi:application", "--port", str(port)]
    with (
        Service("uvicorn", argv, port, log_dir=tmp_path, env=host["env"], cwd=host["project"]),
        httpx.Client(base_url=f"http://127.0.0.1:{port}", follow_redirects=True, timeout=30) as browser,
    ):
        assert browser.get("/chat/").url.path == "/accounts/login/"  # the project's LOGIN_URL
        # The project has no login page of its own: the admin's logs in.
        assert log_in(browser, "/admin/login/?next=/admin/", "ann@example.com", "pw").url.path == "/admin/"
        page = browser.get("/chat/")
        assert page.status_code == 200 and "script-src 'self'" in page.headers["Content-Security-Policy"]
        assert 'data-api="/chat/api/conversations"' in page.text and "/static/conversations/chat.js" in page.text
        refused = browser.post("/chat/api/conversations", json={})  # a session without the CSRF header
        assert refused.status_code == 403 and refused.json()["error"]["code"] == "csrf_failed"
        made = browser.post("/chat/api/conversations", json={}, headers={"X-CSRFToken": browser.cookies["csrftoken"]})
        assert made.status_code == 201
        assert browser.get("/admin/conversations/turn/", params={"q": "ann@"}).status_code == 200
        dashboard = browser.get("/admin/conversations/turn/dashboard/")
        assert dashboard.status_code == 200 and "Streams" in dashboard.text
        assert browser.get(f"/admin/conversations/conversation/{made.json()['id']}/change/").status_code == 200
        retention = browser.get("/admin/conversations/dataevent/retention/")  # its template came in the wheel
        assert retention.status_code == 200 and "CHATSTREAM_RETENTION_DAYS" in retention.text
