"""The page on a phone's screen and in dark mode: the security policy, the
phone's menu, and screenshots (light and dark, desktop and phone) in
tests/artifacts/."""

import pytest
from playwright.sync_api import Page, expect

from harness.fake_upstream import Behaviour

from .helpers import MARKDOWN_ANSWER, answers, model_picker, new_chats, questions, ready, screenshot, send

# End to end: run on one CI leg, not on the legs that vary Django, the stack or the database.
pytestmark = pytest.mark.e2e


def test_a_phone_sized_screen_and_the_security_policy(page):
    page.set_viewport_size({"width": 390, "height": 800})
    response = page.goto("/")
    ready(page)
    expect(model_picker(page)).to_be_hidden()  # one model and no routing: nothing to choose
    assert "script-src 'self'" in response.headers["content-security-policy"]
    expect(page.locator("#message")).to_be_visible()
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    screenshot(page, "chat-phone.png")


def finished_conversation(page: Page, upstream) -> None:
    upstream.behaviour = Behaviour(text=MARKDOWN_ANSWER.split("<script>")[0] + "- one\n- two\n\n> A quote.")
    send(page, "Show me some code")
    expect(answers(page).first.locator(".actions")).to_be_visible(timeout=10_000)  # saved, and read again


def code_and_copy_apart(page: Page) -> None:
    """The Copy button sits above the code, never over it."""
    copy = page.get_by_role("button", name="Copy").first.bounding_box()
    code = page.locator("#turns pre").first.bounding_box()
    assert copy and code and copy["y"] + copy["height"] <= code["y"], (copy, code)


def test_screenshots_light_and_dark_on_desktop_and_phone(page, upstream):
    finished_conversation(page, upstream)
    # The page's background, dark or light: its red channel.
    red = "Number(getComputedStyle(document.body).backgroundColor.match(/\\d+/)[0])"
    for scheme in ("light", "dark"):
        page.emulate_media(color_scheme=scheme)
        page.set_viewport_size({"width": 1100, "height": 800})
        code_and_copy_apart(page)
        screenshot(page, f"chat-{scheme}.png", animations="disabled")
        page.set_viewport_size({"width": 390, "height": 844})
        code_and_copy_apart(page)
        screenshot(page, f"chat-phone-{scheme}.png", animations="disabled")
        assert (page.evaluate(red) < 100) == (scheme == "dark")


def test_a_phone_opens_the_conversation_list_through_menu(page, upstream):
    upstream.behaviour = Behaviour(tokens=2)
    new_chats(page, "first chat", "second chat")
    page.set_viewport_size({"width": 390, "height": 844})
    conversations = page.get_by_role("navigation", name="Conversations")
    expect(conversations).to_be_hidden()
    expect(page.locator("#message")).to_be_in_viewport()
    assert page.evaluate("document.documentElement.scrollWidth") <= 390

    page.get_by_role("button", name="Menu").click()
    expect(conversations).to_be_visible()
    expect(conversations).to_be_in_viewport()
    screenshot(page, "chat-phone-menu.png", animations="disabled")
    conversations.get_by_role("link", name="first chat").click()
    expect(conversations).to_be_hidden()  # choosing one closes the list
    expect(questions(page)).to_have_text("first chat")
    expect(page.locator("#message")).to_be_in_viewport()
    expect(page.get_by_role("button", name="Menu")).to_have_attribute("aria-expanded", "false")

    page.set_viewport_size({"width": 1100, "height": 800})
    expect(page.get_by_role("button", name="Menu")).to_be_hidden()  # the list is always there on a desktop
    expect(conversations).to_be_visible()
