"""Tool calls on the chat page: a card per call in the answer, in the order
it streamed with the text, running (with a clock) until its result, then
done or failed; the same cards after a reload, from the saved turn."""

import json
import re
import time

import pytest
from playwright.sync_api import Page, expect

from conversations.stream.output import saved_output
from conversations.tools import tool
from harness.fake_upstream import Behaviour, tool_calls_behaviour

from ..helpers import use_demo_model_with_tools, wait_for_answer
from .helpers import answers, reload, saved, send

# End to end: run on one CI leg, not on the legs that vary Django, the stack or the database.
pytestmark = pytest.mark.e2e

SCREENSHOT = "/tmp/demo-tools.png"


@tool
def slow_report(pages: int) -> dict:
    """Takes a while, then returns a long result."""
    time.sleep(2.2)
    return {f"page_{n}": f"line {n} of the report" for n in range(pages)}


@tool
def echo(text: str) -> str:
    """Says it back."""
    return text


@pytest.fixture
def demo_tools(settings):
    """The offline demo model with the demo tools, at a quick pace."""
    use_demo_model_with_tools(settings, tokens_per_second=200, first_token_delay=0.05)


def card(page: Page, name: str, index: int = 0):
    return answers(page).nth(index).get_by_role("group", name=f"Tool {name}")


def test_the_time_question_shows_a_tool_card_then_the_answer(page, demo_tools):
    send(page, "What time is it?")
    clock = card(page, "current_time")
    expect(clock.locator(".status")).to_have_text(re.compile(r"done · \d+ ms"), timeout=10_000)
    expect(clock.locator(".output")).to_contain_text('"timezone": "UTC"')
    answer = answers(page).first
    expect(answer.locator(".body").last).to_have_text(re.compile(r"It is \d\d:\d\d UTC, on a \w+day\."))
    shown_in_order(answer)
    saved(page)
    page.screenshot(path=SCREENSHOT, full_page=True)

    reload(page)
    clock = card(page, "current_time")
    expect(clock.locator(".status")).to_have_text(re.compile(r"done · \d+ ms"))
    expect(clock.locator(".arguments")).to_have_text("{}")
    shown_in_order(answers(page).first)


def shown_in_order(answer) -> None:
    """The text before the call, the card, then the text after it."""
    parts = answer.locator(":scope > .body:not(:empty), :scope > .tool-call")
    expect(parts).to_have_count(3)
    expect(parts.nth(0)).to_have_text("Let me check the clock.")
    expect(parts.nth(1)).to_have_attribute("data-state", "done")
    expect(parts.nth(2)).to_contain_text("It is ")


def test_a_slow_tool_runs_with_a_clock_and_a_long_result_folds(page, upstream, settings):
    settings.CHATSTREAM_TOOLS = [f"{__name__}.slow_report"]
    upstream.next_calls.extend(
        [tool_calls_behaviour(("r1", "slow_report", {"pages": 12}), text="Reading. "), Behaviour(text="All read.")]
    )
    send(page, "Read the report")
    report = card(page, "slow_report")
    expect(report.locator(".status")).to_have_text("running", timeout=10_000)
    expect(report.locator(".clock")).to_have_text(re.compile(r"[12] s"), timeout=3000)
    expect(report.locator(".status")).to_have_text(re.compile(r"done · 2\.\d s"), timeout=10_000)
    expect(report.locator(".clock")).to_be_empty()
    result = report.locator("details.output")
    expect(result.locator("summary")).to_have_text("Result (14 lines)")
    expect(result.locator("pre")).to_be_hidden()  # folded
    result.locator("summary").click()
    expect(result.locator("pre")).to_contain_text('"page_11": "line 11 of the report"')
    expect(answers(page).first.locator(".body").last).to_have_text("All read.")


def test_a_failed_tool_shows_its_error(page, upstream, settings):
    settings.CHATSTREAM_TOOLS = [f"{__name__}.slow_report"]
    upstream.next_calls.extend(
        [tool_calls_behaviour(("r1", "slow_report", {"pages": "many"})), Behaviour(text="It failed.")]
    )
    send(page, "Read the report")
    report = card(page, "slow_report")
    expect(report.locator(".status")).to_have_text(re.compile(r"failed · \d+ ms"), timeout=10_000)
    expect(report.locator(".error")).to_contain_text("pages")
    reload(page)
    expect(card(page, "slow_report").locator(".status")).to_have_text(re.compile(r"failed · \d+ ms"))


SAVED_OUTPUT_IN_THE_PAGE = """async ([url, turnId]) => {
    const chat = document.querySelector("script[src$='chat.js']").src;
    const { savedOutput } = await import(chat.replace("chat.js", "tools.js"));
    const conversation = await (await fetch(url)).json();
    const turn = conversation.turns.find((each) => each.id === turnId);
    return savedOutput(turn).map((piece) => [piece.kind, piece.text ?? piece.data ?? null]);
}"""


def test_the_page_rebuilds_a_saved_answer_as_the_server_does(page, upstream, settings):
    """tools.js savedOutput mirrors stream/output.py saved_output: the same
    pieces in the same order, characters beyond the BMP counted as Python does."""
    settings.CHATSTREAM_TOOLS = [f"{__name__}.echo"]
    upstream.next_calls.extend(
        [
            tool_calls_behaviour(
                ("e1", "echo", {"text": "🙂"}), ("e2", "echo", {"text": "b"}), text="Asking 🙂🙂 twice. "
            ),
            tool_calls_behaviour(("e3", "echo", {"text": "c"}), text="Once more 🎉. "),
            Behaviour(text="Done: 🙂, b, c."),
        ]
    )
    send(page, "Echo three times")
    expect(answers(page).first.locator(".body").last).to_have_text("Done: 🙂, b, c.", timeout=10_000)
    saved(page)
    turn = wait_for_answer(page.evaluate("location.hash.slice(1)"))
    url = page.locator("#app").get_attribute("data-api") + f"/{turn.conversation_id}"
    in_the_page = page.evaluate(SAVED_OUTPUT_IN_THE_PAGE, [url, str(turn.pk)])

    on_the_server = [
        [kind, json.loads(text) if kind in ("tool_call", "tool_result") else None if kind == "step" else text]
        for kind, text, _ in saved_output(turn).since(0)
    ]
    assert in_the_page == on_the_server
    assert [kind for kind, _ in in_the_page].count("tool_result") == 3
    cards = answers(page).first.locator(".tool-call")
    expect(cards).to_have_count(3)
    reload(page)
    expect(cards.locator(".status")).to_have_text([re.compile("done")] * 3)


# --- approvals ------------------------------------------------------------------------


def asked_to_approve(page: Page):
    """ "look up order 1234": the order card, waiting with Approve and Deny."""
    send(page, "Please look up order 1234")
    order = card(page, "lookup_order")
    expect(order.locator(".status")).to_have_text("waiting for approval", timeout=10_000)
    expect(order.get_by_role("button", name="Approve")).to_be_enabled()
    expect(order.get_by_role("button", name="Deny")).to_be_enabled()
    expect(order.locator(".arguments")).to_have_text('{\n  "order_id": "1234"\n}')
    return order


def test_approve_runs_the_lookup_even_after_a_reload(page, demo_tools):
    asked_to_approve(page)
    page.screenshot(path=SCREENSHOT.replace(".png", "-approval.png"), full_page=True)
    reload(page)  # the live answer is followed from its start: the request is asked again
    order = card(page, "lookup_order")
    expect(order.locator(".status")).to_have_text("waiting for approval", timeout=10_000)
    order.get_by_role("button", name="Approve").click()
    expect(order.locator(".decision")).to_have_text("Approved")
    expect(order.locator(".status")).to_have_text(re.compile(r"done · \d+ ms"), timeout=10_000)
    expect(order.get_by_role("button", name="Approve")).to_be_hidden()
    expect(order.locator(".output")).to_contain_text('"order_id": "1234"')
    answer = answers(page).first
    expect(answer.locator(".body").last).to_contain_text("Order 1234 is ", timeout=10_000)
    saved(page)

    reload(page)
    order = card(page, "lookup_order")
    expect(order.locator(".decision")).to_have_text("Approved")
    expect(order.locator(".status")).to_have_text(re.compile(r"done · \d+ ms"))
    expect(order.locator(".approval")).to_be_hidden()


def test_deny_fails_the_call_and_the_model_says_so(page, demo_tools):
    order = asked_to_approve(page)
    order.get_by_role("textbox", name="Reason for denying (optional)").fill("not now")
    order.get_by_role("button", name="Deny").click()
    expect(order.locator(".decision")).to_have_text("Denied: not now")
    expect(order.locator(".status")).to_have_text(re.compile(r"failed · \d+ ms"), timeout=10_000)
    expect(order.locator(".error")).to_contain_text("declined")
    answer = answers(page).first
    expect(answer.locator(".body").last).to_have_text("You declined the lookup, so I did not look up order 1234.")
    saved(page)
    reload(page)
    order = card(page, "lookup_order")
    expect(order.locator(".decision")).to_have_text("Denied: not now")
    expect(order.locator(".status")).to_have_text(re.compile(r"failed · \d+ ms"))


def test_a_refused_decision_is_shown_and_can_be_made_again(page, demo_tools):
    order = asked_to_approve(page)
    refused = {"error": {"code": "approval_not_pending", "message": "The call is not waiting for approval."}}
    page.route("**/approvals", lambda route: route.fulfill(status=409, json=refused))
    order.get_by_role("button", name="Approve").click()
    expect(page.locator("#notice")).to_have_text("The call is not waiting for approval.")
    expect(order.get_by_role("button", name="Approve")).to_be_enabled()  # nothing was decided
    expect(order.locator(".decision")).to_be_empty()

    page.unroute("**/approvals")
    order.get_by_role("button", name="Approve").click()
    expect(order.locator(".status")).to_have_text(re.compile(r"done · \d+ ms"), timeout=10_000)
