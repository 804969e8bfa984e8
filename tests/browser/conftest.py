"""The browser, and uma signed in: through the login form once per module,
then by the storage state it left."""

from dataclasses import dataclass
from importlib import import_module
from pathlib import Path

import pytest
from django.conf import settings
from django.contrib.auth import HASH_SESSION_KEY, SESSION_KEY, get_user_model
from playwright.sync_api import Page, sync_playwright

from .helpers import ready

CHROMIUM = Path("/usr/bin/chromium")
USERNAME, PASSWORD = "uma", "uma-password"
VIEWPORT = {"width": 1100, "height": 800}


# Package-scoped, one Chromium for every module here: while Playwright's sync
# API runs, this thread has an event loop, and Django refuses ORM calls from
# it in the tests that follow, which are all outside this package.
@pytest.fixture(scope="package")
def browser():
    if not CHROMIUM.exists():
        pytest.fail("Debian's chromium is missing: `make test` installs it (apt-get install chromium)")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM),
            args=["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        yield browser
        browser.close()


@dataclass
class Login:
    """What uma's login through the form left: the browser's storage state
    (the session and CSRF cookies) and the session's data on the server."""

    state: dict | None = None
    session: dict | None = None

    def session_key(self) -> str:
        return next(
            cookie["value"] for cookie in self.state["cookies"] if cookie["name"] == settings.SESSION_COOKIE_NAME
        )


@pytest.fixture(scope="module")
def login() -> Login:
    """Filled in by the module's first test, which logs in through the form."""
    return Login()


def log_in_through_the_form(page: Page, login: Login) -> None:
    page.goto("/accounts/login/")
    page.fill("input[name=username]", USERNAME)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    ready(page)
    login.state = page.context.storage_state()
    login.session = dict(session_store(login.session_key()).items())


def sign_in_again(login: Login, user) -> None:
    """The saved session's row written again, for uma made afresh: `live`
    empties the tables after each test, and a new user has a new id and
    password hash, so the session names them as Django's login() would."""
    session = session_store(login.session_key())
    # Inserted first, unread: update() on a key with no row would read none
    # and drop the key for a new one.
    session.save(must_create=True)
    session.update({**login.session, SESSION_KEY: str(user.pk), HASH_SESSION_KEY: user.get_session_auth_hash()})
    session.save()


def session_store(session_key: str):
    return import_module(settings.SESSION_ENGINE).SessionStore(session_key)


@pytest.fixture
def page(browser, live, login, monkeypatch) -> Page:
    """The chat page, uma signed in: the module's first test logs in through
    the form, the others open their context with the storage state it left."""
    # Playwright's sync API keeps an event loop on this thread; the test's own
    # ORM calls are still plain synchronous code.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    user = get_user_model().objects.create_user(USERNAME, password=PASSWORD)
    if login.state is not None:
        sign_in_again(login, user)
    context = browser.new_context(base_url=live.url, viewport=VIEWPORT, storage_state=login.state)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    if login.state is None:
        log_in_through_the_form(page, login)
    else:
        page.goto("/")
        ready(page)  # not the login form: the session was taken
    yield page
    context.close()
    assert not errors, errors  # no script error on the page, ever
