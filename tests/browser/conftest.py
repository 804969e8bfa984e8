"""The browser, and the chat page with uma logged in."""

from pathlib import Path

import pytest
from django.contrib.auth import get_user_model
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


@pytest.fixture
def page(browser, live, monkeypatch) -> Page:
    # Playwright's sync API keeps an event loop on this thread; the test's own
    # ORM calls are still plain synchronous code.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    get_user_model().objects.create_user(USERNAME, password=PASSWORD)
    context = browser.new_context(base_url=live.url, viewport=VIEWPORT)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto("/accounts/login/")
    page.fill("input[name=username]", USERNAME)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    ready(page)
    yield page
    context.close()
    assert not errors, errors  # no script error on the page, ever
