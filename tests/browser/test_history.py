"""Conversations and their turns (the API of issue 16): the sidebar, versions,
edit, continue, feedback found in the admin's review queue, search, export,
and a fragment that names only a conversation."""

import json
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model
from playwright.sync_api import Page, expect

from conversations.models import Conversation, Turn
from harness.fake_upstream import Behaviour

from .helpers import answer_text, answers, api_url, new_chats, questions, ready, reload, saved, screenshot, send

# End to end: run on one CI leg, not on the legs that vary Django, the stack or the database.
pytestmark = pytest.mark.e2e


def test_the_sidebar_opens_renames_and_deletes(page, upstream):
    upstream.behaviour = Behaviour(tokens=2)
    new_chats(page, "first chat", "second chat")
    items = page.locator("#conversations li .open")
    expect(items).to_have_text(["second chat", "first chat"])  # newest first

    items.nth(1).click()
    expect(questions(page)).to_have_text("first chat")

    page.once("dialog", lambda dialog: dialog.accept("Renamed"))
    page.locator("#conversations li").nth(1).locator(".rename").click()
    expect(items).to_have_text(["Renamed", "second chat"])  # a rename is an update: it moves up

    page.once("dialog", lambda dialog: dialog.accept())
    page.locator("#conversations li").nth(1).locator(".delete").click()
    expect(items).to_have_text(["Renamed"])
    assert Conversation.objects.count() == 1


def test_regenerate_and_switch_versions_then_reload(page, upstream):
    upstream.behaviour = Behaviour(text="The first version.")
    send(page, "Say something")
    saved(page)
    upstream.behaviour = Behaviour(text="The second version.")
    answers(page).first.get_by_role("button", name="Regenerate").click()
    expect(answer_text(page)).to_have_text("The second version.")
    count = answers(page).first.locator(".versions .count")
    expect(count).to_have_text("2 / 2")  # read again once saved
    expect(answers(page).first.get_by_role("button", name="Next version")).to_be_disabled()

    answers(page).first.get_by_role("button", name="Previous version").click()
    expect(answer_text(page)).to_have_text("The first version.")
    expect(count).to_have_text("1 / 2")
    reload(page)
    expect(answers(page)).to_have_count(1)
    expect(answer_text(page)).to_have_text("The first version.")  # the server keeps the branch shown
    expect(count).to_have_text("1 / 2")
    answers(page).first.get_by_role("button", name="Next version").click()
    expect(answer_text(page)).to_have_text("The second version.")


def test_edit_a_message_and_see_the_new_branch(page, upstream):
    upstream.behaviour = Behaviour(text="About cats.")
    send(page, "Tell me about cats")
    saved(page)
    upstream.behaviour = Behaviour(text="About dogs.")
    page.locator("#turns > li.user").get_by_role("button", name="Edit").click()
    page.get_by_role("textbox", name="Edited message").fill("Tell me about dogs")
    page.get_by_role("button", name="Save").click()
    expect(questions(page)).to_have_text(["Tell me about dogs"])
    expect(answer_text(page)).to_have_text("About dogs.")
    assert upstream.calls[-1].body["messages"][-1]["content"] == "Tell me about dogs"
    count = page.locator("#turns > li.user .versions .count")
    expect(count).to_have_text("2 / 2")

    reload(page)
    expect(questions(page)).to_have_text(["Tell me about dogs"])
    expect(answer_text(page)).to_have_text("About dogs.")
    page.locator("#turns > li.user").get_by_role("button", name="Previous version").click()
    expect(questions(page)).to_have_text(["Tell me about cats"])
    expect(answer_text(page)).to_have_text("About cats.")  # the whole branch under it


def test_continue_after_stop(page, upstream):
    upstream.behaviour = Behaviour(pace=0.05, tokens=400)
    send(page, "Talk for a while")
    expect(answer_text(page)).to_contain_text("t3", timeout=5000)
    page.get_by_role("button", name="Stop").click()
    expect(answers(page).first.locator(".meta")).to_contain_text("Stopped")
    more = answers(page).first.get_by_role("button", name="Continue")
    expect(more).to_be_visible(timeout=10_000)
    stopped = answer_text(page).inner_text().strip()

    upstream.behaviour = Behaviour(text=" and that is all.")
    more.click()
    expect(answer_text(page)).to_contain_text("and that is all.", timeout=10_000)
    expect(answers(page).first.locator(".meta")).not_to_contain_text("Stopped", timeout=10_000)
    assert answer_text(page).inner_text().startswith(stopped)  # it grew in place
    expect(answers(page)).to_have_count(1)
    expect(answers(page).first.get_by_role("button", name="Continue")).to_be_hidden()
    newest = Turn.objects.filter(role="assistant").order_by("-created_at").first()
    assert newest.content.startswith(stopped) and newest.content.endswith("and that is all.")


def test_thumbs_down_with_a_comment(page, upstream):
    upstream.behaviour = Behaviour(text="The war ended in 1946.")
    send(page, "When did the war end?")
    saved(page)
    good = answers(page).first.get_by_role("button", name="Good answer")
    bad = answers(page).first.get_by_role("button", name="Bad answer")
    bad.click()
    expect(bad).to_have_attribute("aria-pressed", "true")
    expect(good).to_have_attribute("aria-pressed", "false")
    page.get_by_role("textbox", name="What was wrong? (optional)").fill("Wrong year: 1945.")
    page.get_by_role("button", name="Send feedback").click()
    expect(answers(page).first).to_contain_text("Thanks for the feedback.")

    reload(page)
    expect(bad).to_have_attribute("aria-pressed", "true")
    conversation = str(Conversation.objects.get().pk)
    feedback = page.request.get(api_url(page, f"/{conversation}")).json()["turns"][-1]["feedback"]
    assert feedback["rating"] == "down" and feedback["comment"] == "Wrong year: 1945."
    in_the_review_queue(page, "Wrong year: 1945.")

    good.click()  # a change of mind
    expect(good).to_have_attribute("aria-pressed", "true")
    expect(bad).to_have_attribute("aria-pressed", "false")
    good.click()  # and taken back
    expect(good).to_have_attribute("aria-pressed", "false")
    reload(page)
    expect(good).to_have_attribute("aria-pressed", "false")
    assert page.request.get(api_url(page, f"/{conversation}")).json()["turns"][-1]["feedback"] is None


def in_the_review_queue(page: Page, comment: str) -> None:
    """Staff, in another browser context, find the comment first in the admin's review queue."""
    get_user_model().objects.create_superuser("rev", "rev@example.com", "rev-password")
    staff = page.context.browser.new_context(base_url=page.url.split("/#")[0].rstrip("/"))
    admin = staff.new_page()
    admin.goto("/admin/login/?next=/admin/conversations/reviewitem/")
    admin.fill("input[name=username]", "rev")
    admin.fill("input[name=password]", "rev-password")
    admin.click("input[type=submit]")
    first_row = admin.locator("#result_list tbody tr").first
    expect(first_row).to_contain_text(comment)
    expect(first_row).to_contain_text("bad answer")
    screenshot(admin, "admin-review-queue.png")
    staff.close()


def test_the_fragment_takes_only_a_conversation_id(page, upstream):
    """A crafted link (#../../accounts/logout/?) must not steer the page's API calls."""
    upstream.behaviour = Behaviour(tokens=2)
    page.goto("/#../../accounts/logout/?")
    ready(page)
    send(page, "Still logged in?")
    saved(page)
    reload(page)  # the chat page, not the login form
    assert Conversation.objects.count() == 1


def test_search_finds_a_conversation_by_a_word_of_an_answer(page, upstream):
    for question, answer in (("first chat", "Giraffes are tall."), ("second chat", "Penguins swim well.")):
        upstream.behaviour = Behaviour(text=answer)
        page.click("#new-chat")
        send(page, question)
        saved(page)
    items = page.locator("#conversations li .open")
    search = page.get_by_role("searchbox", name="Search")
    search.fill("giraffes")
    expect(items).to_have_text(["first chat"])
    search.fill("nothing like this")
    expect(page.locator("#conversations")).to_have_text("No conversation matches.")
    search.fill("")
    expect(items).to_have_text(["second chat", "first chat"])


def test_export_downloads_markdown_and_json(page, upstream):
    upstream.behaviour = Behaviour(text="Here is **the** answer.")
    send(page, "Export me")
    saved(page)
    texts = [turn.content for turn in Turn.objects.order_by("position")]
    with page.expect_download() as download:
        page.get_by_role("link", name="Export Markdown").click()
    markdown = Path(download.value.path()).read_text()
    assert all(text in markdown for text in texts), markdown
    with page.expect_download() as download:
        page.get_by_role("link", name="Export JSON").click()
    exported = json.loads(Path(download.value.path()).read_text())
    assert all(text in json.dumps(exported, ensure_ascii=False) for text in texts), exported
