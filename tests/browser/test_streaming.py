"""Sending and stopping: a stopped answer kept, an upstream error with Retry,
and the model picker with and without the router."""

import re

import pytest
from playwright.sync_api import expect

from conversations.models import Conversation, Turn
from harness.fake_upstream import Behaviour

from ..helpers import wait_for_answer
from .helpers import answers, model_picker, reload, screenshot, send

# End to end: run on one CI leg, not on the legs that vary Django, the stack or the database.
pytestmark = pytest.mark.e2e


@pytest.fixture
def short_answers(two_models):
    """conftest's two models, answering in three tokens."""
    two_models.behaviour = Behaviour(tokens=3)
    return two_models


def test_stop_keeps_the_partial_answer(page, upstream):
    upstream.behaviour = Behaviour(pace=0.05, tokens=400)
    send(page, "Talk for a while")
    expect(answers(page).first.locator(".body")).to_contain_text("t3", timeout=5000)
    page.keyboard.press("Escape")  # the same as the Stop button
    expect(answers(page).first.locator(".meta")).to_contain_text("Stopped")
    shown = answers(page).first.locator(".body").inner_text()

    conversation = Conversation.objects.get()
    saved = wait_for_answer(str(conversation.pk))
    assert saved.finish_reason == "cancelled" and 0 < len(saved.content) < 400 * 4
    assert saved.content.startswith(shown.strip())  # the page shows what was saved
    assert upstream.closed_within(1.0)

    page.reload()
    expect(answers(page).first.locator(".meta")).to_contain_text("Stopped")


def test_an_upstream_error_is_shown_with_retry(page, upstream):
    upstream.behaviour = Behaviour(status=500)
    send(page, "Will this work?")
    failed = page.locator("#turns > li.assistant.failed")
    expect(failed.locator(".meta")).to_contain_text("Error: The model server answered 500")
    upstream.behaviour = Behaviour(tokens=3)
    failed.locator(".retry").click()
    expect(answers(page).last.locator(".body")).to_have_text("t0 t1 t2")
    expect(page.locator("#turns > li.user")).to_have_count(2)
    expect(answers(page).last.locator(".meta")).to_contain_text("tokens")  # `done` comes once the turn is saved
    assert Turn.objects.filter(role="assistant").count() == 2


def test_the_model_picker_chooses_the_model_and_a_reload_keeps_it(page, short_answers):
    reload(page)  # the page was opened before there were two models
    picker = model_picker(page)
    expect(picker.locator("option")).to_have_text(["small", "big · thinks"])
    expect(picker).to_have_value("small")

    picker.select_option("big")
    send(page, "Hello, big model")
    meta = answers(page).first.locator(".meta")
    expect(meta).to_have_text(re.compile(r"^big · first token \d+ ms"), timeout=10_000)
    assert short_answers.calls[-1].body["model"] == "gpt-big"
    screenshot(page, "chat-models.png")

    reload(page)
    expect(picker).to_have_value("big")  # the conversation was created with it
    expect(meta).to_have_text(re.compile(r"^big · first token"))

    with page.expect_response(lambda response: response.request.method == "PATCH"):
        picker.select_option("small")
    reload(page)
    expect(picker).to_have_value("small")  # a change is kept on the conversation
    expect(meta).to_have_text(re.compile(r"^big · "))  # the answer still names the model that wrote it
    send(page, "Hello, small model")
    expect(answers(page).last.locator(".meta")).to_have_text(re.compile(r"^small · "), timeout=10_000)
    assert short_answers.calls[-1].body["model"] == "qwen3:4b"


def test_auto_names_the_model_the_router_chose(page, short_answers, settings):
    settings.LLM_ROUTER = {"small": "small", "big": "big", "rules": [{"if": {"pattern": "(?i)prove"}, "use": "big"}]}
    reload(page)
    picker = model_picker(page)
    expect(picker.locator("option")).to_have_text(["small", "big · thinks", "Auto (small or big)"])

    picker.select_option("auto")
    send(page, "Prove it")
    meta = answers(page).first.locator(".meta")
    expect(meta).to_have_text(re.compile(r"^auto → big · first token"), timeout=10_000)
    assert short_answers.calls[-1].body["model"] == "gpt-big"

    reload(page)
    expect(meta).to_have_text(re.compile(r"^auto → big · first token"))
    expect(picker).to_have_value("small")  # "auto" is chosen per message: the conversation keeps the default
