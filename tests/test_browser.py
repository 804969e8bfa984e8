"""The chat UI end to end: Debian's Chromium, headless, driven by Playwright,
against the app under uvicorn and the fake upstream.

Playwright never downloads a browser here: it launches /usr/bin/chromium
(`make test` installs Debian's package when it is missing).
"""

import re
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model
from playwright.sync_api import Page, expect, sync_playwright

from conversations.models import Conversation, Turn
from harness.fake_upstream import Behaviour, parallel_tool_calls_script, reasoning_script, refusal_script

from .cut_proxy import CutProxy
from .helpers import wait_for_answer

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = Path(__file__).parent / "artifacts"
MARKDOWN_ANSWER = (
    "Here is **code**:\n\n```python\nprint('hi')\n```\n\n"
    "| a | b |\n|---|---|\n| 1 | 2 |\n\n"
    '<script>window.pwned = 1</script><img src=x onerror="window.pwned = 2">'
)


# Module-scoped: while Playwright's sync API runs, this thread has an event
# loop, and Django refuses ORM calls from it in the tests that follow.
@pytest.fixture(scope="module")
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
    get_user_model().objects.create_user("uma", password="uma-password")
    context = browser.new_context(base_url=live.url, viewport={"width": 1100, "height": 800})
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto("/accounts/login/")
    page.fill("input[name=username]", "uma")
    page.fill("input[name=password]", "uma-password")
    page.click("button[type=submit]")
    expect(page.locator("#app[data-ready=true]")).to_be_attached()
    yield page
    context.close()
    assert not errors, errors  # no script error on the page, ever


def send(page: Page, text: str) -> None:
    page.fill("#message", text)
    page.press("#message", "Enter")


def answers(page: Page):
    return page.locator("#turns > li.assistant")


def model_picker(page: Page):
    return page.get_by_role("combobox", name="Model")


def reload(page: Page) -> None:
    page.reload()
    expect(page.locator("#app[data-ready=true]")).to_be_attached()


@pytest.fixture
def two_models(upstream, upstream_server, settings):
    """Two models on the fake upstream, told apart by their upstream ids."""
    settings.LLM_MODELS = {
        "small": {"provider": "openai", "base_url": f"{upstream_server.url}/v1", "model": "qwen3:4b"},
        "big": {"provider": "openai", "base_url": f"{upstream_server.url}/v1", "model": "gpt-big", "reasoning": True},
    }
    settings.LLM_DEFAULT_MODEL = "small"
    upstream.behaviour = Behaviour(tokens=3)
    return upstream


def test_an_answer_streams_in_as_markdown_and_stays_after_reload(page, upstream):
    upstream.behaviour = Behaviour(text=MARKDOWN_ANSWER, piece_chars=3, pace=0.03, first_token_delay=0.2)
    send(page, "Show me some code")
    expect(page.locator("#turns > li.user")).to_have_text("Show me some code")  # at once

    expect(answers(page).first.locator(".body")).to_contain_text("Here", timeout=5000)
    assert upstream.calls[-1].finished_at is None  # tokens shown while the model is still writing

    meta = answers(page).first.locator(".meta")
    expect(meta).to_contain_text(re.compile(r"first token \d+ ms · [\d.]+ tokens/s"), timeout=10_000)
    body = answers(page).first.locator(".body")
    expect(body.locator("pre code")).to_have_text("print('hi')\n")
    expect(body.locator("pre .copy")).to_be_visible()
    expect(body.locator("strong")).to_have_text("code")
    expect(body.locator("td").first).to_have_text("1")
    expect(body).to_contain_text("<script>window.pwned = 1</script>")  # shown as text
    assert page.evaluate("window.pwned") is None
    assert body.locator("script, img").count() == 0

    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=ARTIFACTS / "chat.png", full_page=True)

    page.reload()
    expect(page.locator("#app[data-ready=true]")).to_be_attached()
    expect(page.locator("#turns > li")).to_have_count(2)
    expect(answers(page).first.locator("pre code")).to_have_text("print('hi')\n")
    expect(page.locator("#conversations li.current .open")).to_have_text("Show me some code")


def thought_seconds(summary) -> float:
    label = summary.inner_text()
    assert re.fullmatch(r"Thought for \d+\.\d s", label), label
    return float(label.split()[2])


def test_the_thinking_streams_live_then_folds_above_the_answer(page, upstream):
    thoughts = [f"step {i}, " for i in range(15)]
    upstream.behaviour = Behaviour(script=reasoning_script(thoughts, ["The answer ", "is **42**."]), pace=0.1)
    send(page, "Think first")
    answer = answers(page).first
    thinking = answer.locator("details.thinking")
    summary, reasoning = thinking.locator("summary"), thinking.locator(".reasoning")

    expect(reasoning).to_contain_text("step 1,", timeout=5000)
    expect(reasoning).to_be_visible()
    expect(summary).to_have_text(re.compile(r"Thinking… \d+ s"))
    seen = reasoning.inner_text()
    expect(reasoning).not_to_have_text(seen)  # it grows while the model thinks
    expect(answer.locator(".body")).to_have_text("")  # and no answer yet: ~1 s of thoughts still to come

    expect(answer.locator(".body strong")).to_have_text("42", timeout=10_000)
    expect(reasoning).to_be_hidden()  # folded away once the answer started
    assert thinking.evaluate("details => details.open") is False
    expect(answer.locator(".meta")).to_contain_text("tokens", timeout=10_000)
    assert thought_seconds(summary) >= 1.0  # 15 thoughts, 0.1 s apart
    summary.click()
    expect(reasoning).to_have_text("".join(thoughts))

    page.reload()
    expect(page.locator("#app[data-ready=true]")).to_be_attached()
    saved = answers(page).first
    expect(saved.locator(".body")).to_have_text("The answer is 42.")
    expect(saved.locator("details.thinking .reasoning")).to_be_hidden()
    assert thought_seconds(saved.locator("details.thinking summary")) >= 1.0
    expect(saved.locator("details.thinking .reasoning")).to_have_text("".join(thoughts))


def test_tool_calls_show_as_cards_and_a_refusal_as_its_own_block(page, upstream):
    script = reasoning_script(["Two tools ", "will do."], []) + parallel_tool_calls_script()[1:]
    upstream.behaviour = Behaviour(script=script, finish_reason="tool_calls")
    send(page, "Weather and time in Paris?")
    expect(answers(page).first.locator(".meta")).to_contain_text("tokens", timeout=10_000)
    upstream.behaviour = Behaviour(script=refusal_script(["I can't ", "help with that."]))
    send(page, "Something I should not ask")
    expect(answers(page).last.locator(".meta")).to_contain_text("tokens", timeout=10_000)

    def shown_as_cards_and_a_block() -> None:
        calls, refused = answers(page).first, answers(page).last
        expect(calls.locator("details.thinking .reasoning")).to_be_hidden()  # a tool call folds it too
        expect(calls.locator(".tool-call .name")).to_have_text(["get_weather", "get_time"])
        expect(calls.locator(".tool-call pre")).to_have_text(['{\n  "city": "Paris"\n}', '{\n  "zone": "CET"\n}'])
        expect(refused.locator(".refusal .label")).to_have_text("Refused")
        expect(refused.locator(".refusal .text")).to_have_text("I can't help with that.")
        expect(refused.locator(".body")).to_be_empty()  # not answer text

    shown_as_cards_and_a_block()
    page.reload()
    expect(page.locator("#app[data-ready=true]")).to_be_attached()
    shown_as_cards_and_a_block()


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


def test_the_sidebar_opens_renames_and_deletes(page, upstream):
    upstream.behaviour = Behaviour(tokens=2)
    for question in ("first chat", "second chat"):
        page.click("#new-chat")
        send(page, question)
        expect(answers(page).first.locator(".meta")).to_contain_text("tokens")
    items = page.locator("#conversations li .open")
    expect(items).to_have_text(["second chat", "first chat"])  # newest first

    items.nth(1).click()
    expect(page.locator("#turns > li.user")).to_have_text("first chat")

    page.once("dialog", lambda dialog: dialog.accept("Renamed"))
    page.locator("#conversations li").nth(1).locator(".rename").click()
    expect(items).to_have_text(["Renamed", "second chat"])  # a rename is an update: it moves up

    page.once("dialog", lambda dialog: dialog.accept())
    page.locator("#conversations li").nth(1).locator(".delete").click()
    expect(items).to_have_text(["Renamed"])
    assert Conversation.objects.count() == 1


def test_a_phone_sized_screen_and_the_security_policy(page):
    page.set_viewport_size({"width": 390, "height": 800})
    response = page.goto("/")
    expect(page.locator("#app[data-ready=true]")).to_be_attached()
    expect(model_picker(page)).to_be_hidden()  # one model and no routing: nothing to choose
    assert "script-src 'self'" in response.headers["content-security-policy"]
    expect(page.locator("#message")).to_be_visible()
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=ARTIFACTS / "chat-phone.png")


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
    expect(other.locator("#app[data-ready=true]")).to_be_attached()
    expect(other.locator("#turns > li.user")).to_have_text("Write slowly")
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
        expect(page.locator("#app[data-ready=true]")).to_be_attached()
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
    page.reload()
    expect(page.locator("#app[data-ready=true]")).to_be_attached()
    meta = answers(page).first.locator(".meta")
    expect(meta).to_contain_text("tokens", timeout=10_000)
    saved = wait_for_answer(str(Conversation.objects.get().pk))
    expect(answers(page).first.locator(".body")).to_have_text(saved.content.strip())
    # `continue`: the reloaded page picked the answer up and saw it to its end;
    # `cancel` (the default): leaving stopped it, and the page shows what was saved.
    assert saved.finish_reason == ("stop" if policy == "continue" else "client_disconnected")
    if policy == "continue":
        assert saved.content.count("t79 ") == 1


def test_the_model_picker_chooses_the_model_and_a_reload_keeps_it(page, two_models):
    reload(page)  # the page was opened before there were two models
    picker = model_picker(page)
    expect(picker.locator("option")).to_have_text(["small", "big · thinks"])
    expect(picker).to_have_value("small")

    picker.select_option("big")
    send(page, "Hello, big model")
    meta = answers(page).first.locator(".meta")
    expect(meta).to_have_text(re.compile(r"^big · first token \d+ ms"), timeout=10_000)
    assert two_models.calls[-1].body["model"] == "gpt-big"
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=ARTIFACTS / "chat-models.png")

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
    assert two_models.calls[-1].body["model"] == "qwen3:4b"


def test_auto_names_the_model_the_router_chose(page, two_models, settings):
    settings.LLM_ROUTER = {"small": "small", "big": "big", "rules": [{"if": {"pattern": "(?i)prove"}, "use": "big"}]}
    reload(page)
    picker = model_picker(page)
    expect(picker.locator("option")).to_have_text(["small", "big · thinks", "Auto (small or big)"])

    picker.select_option("auto")
    send(page, "Prove it")
    meta = answers(page).first.locator(".meta")
    expect(meta).to_have_text(re.compile(r"^auto → big · first token"), timeout=10_000)
    assert two_models.calls[-1].body["model"] == "gpt-big"

    reload(page)
    expect(meta).to_have_text(re.compile(r"^auto → big · first token"))
    expect(picker).to_have_value("small")  # "auto" is chosen per message: the conversation keeps the default
