"""Answers across breaks and tabs: a cut stream resumed from its last event,
the network cut mid-answer (tests/cut_proxy.py) and restored, a reload
mid-answer, under both disconnect policies; a second tab following an answer,
two tabs each stopping their own, and Chromium's own `EventSource`."""

import re
import time

import pytest
from playwright.sync_api import expect

from conversations.models import Conversation, Turn
from harness.fake_upstream import Behaviour

from ..cut_proxy import CutProxy
from ..helpers import wait_for_answer
from .helpers import answers, api_url, questions, ready, reload, saved, send

# End to end: run on one CI leg, not on the legs that vary Django, the stack or the database.
pytestmark = pytest.mark.e2e


def test_a_cut_stream_resumes_from_the_last_event(page, upstream):
    upstream.behaviour = Behaviour(tokens=40)

    def cut_after_a_few_events(route) -> None:
        # The whole answer reaches the test; the page gets its first events
        # and then an end without `done`, as when a connection drops.
        response = route.fetch()
        blocks = response.text().split("\n\n")
        route.fulfill(response=response, body="\n\n".join(blocks[:6]) + "\n\n")

    page.route("**/messages", cut_after_a_few_events)
    send(page, "Keep going")
    meta = answers(page).first.locator(".meta")
    expect(meta).to_contain_text("tokens", timeout=10_000)  # ended with `done` after resuming
    saved = wait_for_answer(str(Conversation.objects.get().pk))
    expect(answers(page).first.locator(".body")).to_have_text(saved.content.strip())
    assert saved.content.count("t39 ") == 1


def test_a_second_tab_follows_the_answer_being_written(page, upstream):
    upstream.behaviour = Behaviour(pace=0.03, tokens=60)
    send(page, "Write slowly")
    expect(answers(page).first.locator(".body")).to_contain_text("t2", timeout=5000)

    other = page.context.new_page()
    other.goto(page.url)  # the same conversation: its id is in the address
    ready(other)
    expect(questions(other)).to_have_text("Write slowly")
    expect(answers(other).first).to_have_class(re.compile("streaming"))  # joined while it was being written
    expect(answers(other).first.locator(".meta")).to_contain_text("tokens", timeout=10_000)

    saved = wait_for_answer(str(Conversation.objects.get().pk))
    for tab in (page, other):
        expect(answers(tab).first.locator(".body")).to_have_text(saved.content.strip())
    other.close()


@pytest.mark.parametrize("policy", ["cancel", "continue"])
def test_the_network_cut_mid_answer_and_restored(page, live, upstream, settings, policy):
    settings.CHATSTREAM_ON_DISCONNECT = policy
    upstream.behaviour = Behaviour(pace=0.02, tokens=150)
    resumes: list[str] = []
    page.on("request", lambda request: "/events" in request.url and resumes.append(request.url))
    with CutProxy(int(live.url.rsplit(":", 1)[1])) as network:
        page.goto(network.url + "/")  # the session cookie is the host's, whatever the port
        ready(page)
        send(page, "Through a tunnel")
        body, meta = answers(page).first.locator(".body"), answers(page).first.locator(".meta")
        expect(body).to_contain_text("t5", timeout=5000)
        network.cut()
        expect(meta).to_contain_text("Reconnecting", timeout=5000)
        page.wait_for_timeout(500)  # the first retry fails too
        network.restore()
        expect(meta).to_contain_text("tokens", timeout=15_000)

    saved = wait_for_answer(str(Conversation.objects.get().pk))
    expect(body).to_have_text(saved.content.strip())
    assert resumes  # the page asked for the rest after the cut
    # `cancel`: the cut stopped the model and the page shows what was saved;
    # `continue`: the model went on and the page caught up with all of it.
    assert saved.finish_reason == ("client_disconnected" if policy == "cancel" else "stop")


@pytest.mark.parametrize("policy", ["continue", "cancel"])
def test_a_reload_mid_answer(page, upstream, settings, policy):
    settings.CHATSTREAM_ON_DISCONNECT = policy
    upstream.behaviour = Behaviour(pace=0.03, tokens=80)
    send(page, "Reload me")
    expect(answers(page).first.locator(".body")).to_contain_text("t3", timeout=5000)
    reload(page)
    meta = answers(page).first.locator(".meta")
    expect(meta).to_contain_text("tokens", timeout=10_000)
    saved = wait_for_answer(str(Conversation.objects.get().pk))
    expect(answers(page).first.locator(".body")).to_have_text(saved.content.strip())
    # `continue`: the reloaded page picked the answer up and saw it to its end;
    # `cancel` (the default): leaving stopped it, and the page shows what was saved.
    assert saved.finish_reason == ("stop" if policy == "continue" else "client_disconnected")
    if policy == "continue":
        assert saved.content.count("t79 ") == 1


def test_two_tabs_on_one_conversation_each_stop_the_answer_that_streams(page, upstream):
    upstream.behaviour = Behaviour(pace=0.05, tokens=400)
    send(page, "First tab's question")
    first = answers(page).first
    expect(first.locator(".body")).to_contain_text("t2", timeout=5000)

    other = page.context.new_page()
    errors: list[str] = []
    other.on("pageerror", lambda error: errors.append(str(error)))
    other.goto(page.url)
    ready(other)
    expect(answers(other).first).to_have_class(re.compile("streaming"))  # follows the first tab's answer
    expect(other.get_by_role("button", name="Send")).to_be_enabled()  # a followed answer does not hold Send
    send(other, "Second tab's question")
    expect(other.locator("#turns > li.user.queued")).to_have_count(1)  # it waits for the first answer (queue.js)
    expect(other.get_by_role("button", name="Send")).to_be_enabled()  # and more may be queued

    other.get_by_role("button", name="Stop").click()  # stops the answer that streams, not the queued one
    expect(first.locator(".meta")).to_contain_text("Stopped")
    own = other.locator("#turns > li.assistant.streaming").last
    expect(own.locator(".body")).to_contain_text("t2", timeout=5000)  # then the queued one streams in
    expect(other.locator("#turns > li.user.queued")).to_have_count(0)
    followed = page.locator("#turns > li.assistant.streaming")
    expect(followed).to_have_count(1)  # the first tab follows it

    page.get_by_role("button", name="Stop").click()
    expect(other.locator("#turns > li.assistant .meta").filter(has_text="Stopped")).to_have_count(2)
    expect(followed).to_have_count(0)
    expect(page.get_by_role("button", name="Stop")).to_be_hidden()
    expect(other.get_by_role("button", name="Stop")).to_be_hidden()
    answers_saved = Turn.objects.filter(role="assistant")
    deadline = time.monotonic() + 5
    while answers_saved.count() < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert sorted(turn.finish_reason for turn in answers_saved) == ["cancelled", "cancelled"]
    other.close()
    assert not errors, errors


def test_chromiums_own_eventsource_gets_one_done_and_stops(page, upstream):
    """After `done` the server closes; an EventSource reconnects with
    Last-Event-ID, gets 204 and stops (it used to get `done` again every 3 s)."""
    upstream.behaviour = Behaviour(tokens=6)
    send(page, "For an EventSource")
    saved(page)
    turn = Turn.objects.get(role=Turn.Role.ASSISTANT)
    seen = page.evaluate(
        """async (url) => {
            const source = new EventSource(url);
            const seen = {opens: 0, dones: 0, text: ""};
            source.onopen = () => seen.opens++;
            source.addEventListener("delta", (event) => (seen.text += JSON.parse(event.data).text));
            source.addEventListener("done", () => seen.dones++);
            // Closed by the server's 204 after one retry hint (3 s); one that
            // reconnects for ever is still open after two.
            const deadline = Date.now() + 8000;
            while (source.readyState !== EventSource.CLOSED && Date.now() < deadline) {
                await new Promise((resolve) => setTimeout(resolve, 100));
            }
            seen.state = source.readyState;
            source.close();
            return seen;
        }""",
        api_url(page, "").replace("/conversations", f"/turns/{turn.pk}/events"),
    )
    assert seen == {"opens": 1, "dones": 1, "text": turn.content, "state": 2}  # 2: CLOSED, by the server
