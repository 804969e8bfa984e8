"""A message sent while an answer streams waits for it (queue.js): two tabs of
one user on one conversation, the first streaming a slow answer, the second
sending a message, which shows as queued under that answer with Cancel,
then streams in when its turn comes, or is taken back."""

import re

import pytest
from playwright.sync_api import Page, expect

from conversations.models import QueuedMessage, Turn
from harness.fake_upstream import Behaviour

from ..helpers import wait_for
from .helpers import answers, ready, reload, screenshot, send

# End to end: run on one CI leg, not on the legs that vary Django, the stack or the database.
pytestmark = pytest.mark.e2e


def second_tab(page: Page) -> tuple[Page, list[str]]:
    """The conversation open in another tab of the same browser (the same user)."""
    other = page.context.new_page()
    errors: list[str] = []
    other.on("pageerror", lambda error: errors.append(str(error)))
    other.goto(page.url)
    ready(other)
    return other, errors


def queued(page: Page):
    return page.locator("#turns > li.user.queued")


def test_a_message_sent_from_a_second_tab_waits_then_streams_in(page, upstream):
    upstream.next_calls.append(Behaviour(pace=0.04, tokens=120))  # the first answer: about 5 s
    upstream.behaviour = Behaviour(tokens=5)
    send(page, "First tab's question")
    first = answers(page).first
    expect(first.locator(".body")).to_contain_text("t2", timeout=5000)

    other, errors = second_tab(page)
    expect(answers(other).first).to_have_class(re.compile("streaming"))  # follows the first tab's answer
    send(other, "Second tab's question, queued")
    waiting = queued(other)
    expect(waiting).to_have_count(1)
    expect(waiting.locator(".body")).to_have_text("Second tab's question, queued")
    expect(waiting.locator(".meta")).to_contain_text("Queued")
    expect(waiting.get_by_role("button", name="Cancel")).to_be_visible()
    expect(other.locator("#turns > li:visible").last).to_have_class(re.compile("queued"))  # under the answer
    assert len(upstream.calls) == 1
    other.screenshot(path="/tmp/h_queue-queued.png")
    screenshot(other, "queue-waiting.png", animations="disabled")
    reload(other)  # the server keeps it: a reload shows it queued again, under the answer it follows
    expect(queued(other).get_by_role("button", name="Cancel")).to_be_visible()
    expect(other.locator("#turns > li:visible").last).to_have_class(re.compile("queued"))

    # Its turn comes when the first answer ends: it streams in, in both tabs' order.
    expect(queued(other)).to_have_count(0, timeout=10_000)
    expect(answers(other).last.locator(".body")).to_have_text("t0 t1 t2 t3 t4", timeout=10_000)
    expect(answers(other).last.locator(".meta")).to_contain_text("tokens")
    expect(other.locator("#turns > li.user > .body")).to_have_text(
        ["First tab's question", "Second tab's question, queued"]
    )
    asked = [call.body["messages"][-1]["content"] for call in upstream.calls]
    assert asked == ["First tab's question", "Second tab's question, queued"]
    expect(page.locator("#turns > li.user > .body")).to_have_count(2, timeout=10_000)  # the first tab learns of it
    other.close()
    assert not errors, errors


def test_cancel_takes_a_queued_message_back(page, upstream):
    upstream.next_calls.append(Behaviour(pace=0.04, tokens=80))
    send(page, "A long answer")
    expect(answers(page).first.locator(".body")).to_contain_text("t2", timeout=5000)
    send(page, "Never mind this one")  # the same tab: queued behind its own answer
    other, errors = second_tab(page)
    send(other, "Nor this one")  # and one from the second tab
    expect(queued(page)).to_have_count(1)
    expect(queued(other)).to_have_count(2)  # its own, and the first tab's, listed by the server

    queued(other).filter(has_text="Nor this one").get_by_role("button", name="Cancel").click()
    queued(page).get_by_role("button", name="Cancel").click()
    expect(queued(page)).to_have_count(0)
    expect(queued(other).filter(has_text="Nor this one")).to_have_count(0)
    expect(page.locator("#turns > li.user")).to_have_count(1)
    wait_for(lambda: not QueuedMessage.objects.exists(), 5, "the queue emptied")

    expect(answers(page).first.locator(".meta")).to_contain_text("tokens", timeout=10_000)  # the first ends as it would
    wait_for(lambda: Turn.objects.filter(role="assistant").count() == 1, 5, "the first answer saved")
    assert len(upstream.calls) == 1 and Turn.objects.count() == 2  # nothing answered for those taken back
    expect(page.locator("#turns > li")).to_have_count(2)
    expect(queued(other)).to_have_count(0)  # the first tab's, taken back there, is gone here too
    expect(other.locator("#turns > li")).to_have_count(2)
    other.close()
    assert not errors, errors
