"""Share links from the chat page: Share makes a link to the conversation as
it is, someone without an account reads it, and Revoke ends it at once."""

import pytest
from playwright.sync_api import expect

from harness.fake_upstream import Behaviour

from .helpers import answers, saved, screenshot, send

# End to end: run on one CI leg, not on the legs that vary Django, the stack or the database.
pytestmark = pytest.mark.e2e


def test_a_conversation_is_shared_read_logged_out_and_revoked(page, browser, live, upstream):
    upstream.behaviour = Behaviour(text="The **answer**, shared.")
    expect(page.get_by_role("button", name="Share")).to_be_hidden()  # a new chat: nothing to share
    send(page, "What is shared?")
    saved(page)
    page.get_by_role("button", name="Share").click()
    dialog = page.get_by_role("dialog", name="Share")
    dialog.get_by_label("Your name on the page").fill("Uma")
    dialog.get_by_role("button", name="Create a link").click()
    link = dialog.get_by_role("textbox", name="Share link")
    expect(link).to_have_count(1)
    url = link.input_value()
    screenshot(page, "share-dialog.png")

    anonymous = browser.new_context(base_url=live.url)
    reader = anonymous.new_page()
    assert reader.goto(url).status == 200
    expect(reader.locator("strong", has_text="answer")).to_be_visible()
    expect(reader.get_by_text("Shared by Uma")).to_be_visible()
    expect(reader.get_by_role("main").get_by_text("What is shared?")).to_be_visible()

    dialog.get_by_role("button", name="Revoke").click()
    expect(dialog.get_by_role("status")).to_contain_text("Revoked")
    expect(link).to_have_count(0)
    assert reader.goto(url).status == 404
    anonymous.close()
    page.keyboard.press("Escape")
    expect(dialog).to_be_hidden()
    expect(answers(page)).to_have_count(1)  # Esc closed the dialog and stopped nothing
