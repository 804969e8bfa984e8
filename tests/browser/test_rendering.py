"""How an answer shows: markdown with an injected `<script>` shown as text,
the model's thinking, tool calls and a refusal; the page's incremental render
against a whole one (open code blocks and long paragraphs too), a frame's
cost at the end of a long block against a whole render, and two
50,000-token answers, one ending in a 100 KB paragraph and one a 5,000-line
code block, with no main-thread task over 50 ms."""

import json
import os
import re
import time

import pytest
from playwright.sync_api import Page, expect

from conversations.models import Turn
from harness.fake_upstream import Behaviour, parallel_tool_calls_script, reasoning_script, refusal_script

from .helpers import ARTIFACTS, MARKDOWN_ANSWER, answers, questions, ready, reload, screenshot, send

# End to end: run on one CI leg, not on the legs that vary Django, the stack or the database.
pytestmark = pytest.mark.e2e


def test_an_answer_streams_in_as_markdown_and_stays_after_reload(page, upstream):
    upstream.behaviour = Behaviour(text=MARKDOWN_ANSWER, piece_chars=3, pace=0.03, first_token_delay=0.2)
    send(page, "Show me some code")
    expect(questions(page)).to_have_text("Show me some code")  # at once

    expect(answers(page).first.locator(".body")).to_contain_text("Here", timeout=5000)
    assert upstream.calls[-1].finished_at is None  # tokens shown while the model is still writing

    meta = answers(page).first.locator(".meta")
    expect(meta).to_contain_text(re.compile(r"first token \d+ ms · [\d.]+ tokens/s"), timeout=10_000)
    body = answers(page).first.locator(".body")
    expect(body.locator("pre code")).to_have_text("print('hi')\n")
    expect(body.get_by_role("button", name="Copy")).to_be_visible()  # in a bar above the code
    expect(body.locator("strong")).to_have_text("code")
    expect(body.locator("td").first).to_have_text("1")
    expect(body).to_contain_text("<script>window.pwned = 1</script>")  # shown as text
    assert page.evaluate("window.pwned") is None
    assert body.locator("script, img").count() == 0

    screenshot(page, "chat.png", full_page=True)

    reload(page)
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

    reload(page)
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
    reload(page)
    shown_as_cards_and_a_block()


def long_markdown(chars: int) -> str:
    """An answer as models write them, at least `chars` long: headings,
    paragraphs, nested and ordered lists, code, quotes and tables."""
    sections = []
    total = 0
    for i in range(10**6):
        section = (
            f"## Part {i}: how the cache behaves\n\n"
            f"The cache keeps **recent** entries in memory and writes older ones to disk, so a reader who asks "
            f"for part {i} gets it from the fastest place that has it. See [the guide](https://example.com/{i}) "
            f"for details; `lookup()` returns `None` when nothing matches and *never* raises.\n\n"
            f"- First, the key is hashed (`sha256`) and looked up.\n"
            f"- Then the entry's *age* is checked against the limit.\n"
            f"  - A nested point about expiry number {i}.\n"
            f"- Finally the value is returned, or fetched again.\n\n"
            f"```python\ndef lookup(cache, key):\n    entry = cache.get(key)\n\n"
            f"    if entry is None:\n        return None\n    return entry.value  # part {i}\n```\n\n"
            f"> Writes go to disk in batches of {i % 7 + 2}.\n\n"
            f"| step | cost |\n|------|------|\n| hash | {i} µs |\n| read | {2 * i} µs |\n\n"
            f"1. Ordered step one.\n2. Ordered step two, a sentence long enough to wrap on a phone and on a "
            f"desktop alike.\n\n"
        )
        sections.append(section)
        total += len(section)
        if total >= chars:
            return "".join(sections)
    raise AssertionError("unreachable")


# Long tasks on the page's main thread from now on (Chromium's Long Tasks API),
# and the frames drawn (bench/page.py reports both).
OBSERVE_LONG_TASKS = """() => {
    window.longTasks = [];
    new PerformanceObserver((list) => {
        for (const task of list.getEntries()) window.longTasks.push(task.duration);
        for (const task of list.getEntries()) window.longTaskStarts.push((task.startTime - started) / 1000);
    }).observe({ type: "longtask" });
    const started = performance.now();
    window.longTaskStarts = [];
    window.frameCount = 0;
    const count = () => { window.frameCount++; requestAnimationFrame(count); };
    requestAnimationFrame(count);
}"""

# The page's own whole-text render (render.js) of `text`, against the DOM an
# element shows: [equal, shown HTML length, whole HTML length].
SAME_AS_WHOLE_RENDER = """async ([selector, text]) => {
    const src = document.querySelector("script[type=module]").src.replace("chat.js", "render.js");
    const { renderMarkdown } = await import(src);
    const whole = document.createElement("div");
    renderMarkdown(whole, text);
    const shown = document.querySelector(selector).innerHTML;
    return [shown === whole.innerHTML, shown.length, whole.innerHTML.length];
}"""

# LiveMarkdown fed each text in uneven pieces: after every piece its DOM must
# equal a whole render's of the text so far (unless `endOnly`), and at the end
# a whole render's of all of it. Returns where it differs.
INCREMENTAL_EQUALS_WHOLE = """async ([samples, endOnly, sizes]) => {
    const src = document.querySelector("script[type=module]").src.replace("chat.js", "render.js");
    const { LiveMarkdown, renderMarkdown } = await import(src);
    const whole = (text) => {
        const div = document.createElement("div");
        renderMarkdown(div, text);
        return div;
    };
    const wrong = [];
    for (const sample of samples) {
        for (const size of sizes) {
            const live = new LiveMarkdown(document.createElement("div"));
            for (let end = size; end < sample.length + size; end += size) {
                const text = sample.slice(0, end);
                live.render(text);
                const same = endOnly || live.body.innerHTML === whole(text).innerHTML;
                if (!same) wrong.push({ sample, size, text, final: false });
            }
            live.render(sample, { final: true });
            if (live.body.innerHTML !== whole(sample).innerHTML) wrong.push({ sample, size, final: true });
        }
    }
    return wrong;
}"""

# Texts where a later character changes how earlier lines parse.
TRICKY_MARKDOWN = [
    "para\n#x\n\nnext",  # "#" alone is a heading; "#x" continues the paragraph
    "para\n***x\n\nafter",  # "***" is a rule; "***x" is text
    "para\n---\n\nafter",  # setext heading
    "- a\n\n  b\n\n- c\n\nd",  # a loose list continued after a blank line
    "1. one\n\n  two\n\n10. ten",
    "```js\nlet a = 1;\n\nlet b = 2;\n```\n\ntext after `code`",
    "    indented\n\n    still code\n\nparagraph",
    "> quote\n\n> another quote\n\n| a | b |\n|---|---|\n| 1 | 2 |\n\nend",
    "Windows lines\r\n\r\n- one\r\n- two\r\n\r\nend",
]
# A link reference defined after its use: "[x]" shows as text while the
# answer streams, and as the link once it ends (the whole is rendered then).
LATE_REFERENCE = "see [x]\n\n[x]: https://example.com\n\nand [x] again"


# Code blocks as they stream: a fence closed later and text after it, ~~~
# fences closed by a longer run, an indented fence (its lines lose up to its
# indent), a fence in a list, one never closed with lines that look like a
# closing fence but are not, and a fence inside a longer one.
CODE_TEXT = "".join(f"line {i} = `x` * 2  # <b>&amp;\n" for i in range(30))
OPEN_CODE = [
    f"Intro:\n```python\n{CODE_TEXT}```\nafter, no blank line",
    f"~~~\n{CODE_TEXT}~~~~\n\nafter",
    "   ```js\n   let a;\n  let b;\n let c;\nd\n    ```\n   ```\nafter",
    f"- item\n\n  ```\n  {CODE_TEXT.replace(chr(10), chr(10) + '  ')}```\n- next\n\nend",
    "```\nunclosed\n``\n` ``\n    ```\n```x\nmore",
    "````md\n```\ninner\n```\n````\n\n```\nlast\n",
]
# Long enough for blocks of 100 lines (render.js: splitCode), one closed and
# one never closed, with a line that could close it 150 lines in.
LONG_CODE = [
    f"```python\n{CODE_TEXT * 8}```\n\nafter",
    f"~~~\n{CODE_TEXT * 5}  ~~\n{CODE_TEXT * 5}\n   \n\t",
]


def words(chars: int) -> str:
    return ("the cache keeps recent entries in memory and older ones on disk " * (chars // 64 + 1))[:chars]


# Paragraphs long enough that the page cuts them (render.js: OpenParagraph,
# past 4,096 characters), with markup that spans where a cut could fall: bold,
# a code span, a link and a strikethrough opened early and closed late, stars
# and underscores that pair with nothing, line breaks, and a paragraph that
# ends up a heading, a table's header or interrupted by a list.
LONG_PARAGRAPHS = [
    f"**{words(9000)}** then *more* text",
    f"start `code {words(9000)}` end and `more`",
    f"[{words(9000)}](https://example.com) tail",
    f"~~{words(6000)}~~ and ~~{words(5000)}",
    "*a* `b` **c** [d](https://e.com) _f_ x_y_z __init__ 5 * 3 \\* " * 250,
    f"{words(5000)} **open {words(5000)}",
    "line one  \nline two\\\nline three\n" * 300,
    f"{words(9000)}\n===\n\nafter",
    f"{words(9000)}\na | b\n--|--\n1 | 2",
    f"{words(9000)}\n- item\n- item two {words(5000)}",
    f"{words(5000)} https://example.com/{words(20).replace(' ', '-')} {words(5000)} <https://example.org> &amp; end",
]


def test_the_incremental_render_equals_the_whole_render(page):
    wrong = page.evaluate(INCREMENTAL_EQUALS_WHOLE, [TRICKY_MARKDOWN, False, [1, 2, 3, 7]])
    # A long text, for where its parts of 40 blocks begin and end: the
    # character-by-character cases are the short texts' (each step of it
    # renders the whole text again, so one character at a time took most of
    # a minute).
    wrong += page.evaluate(INCREMENTAL_EQUALS_WHOLE, [[long_markdown(8000)], False, [7, 23]])
    assert not wrong, {(w["sample"][:30], w["final"]) for w in wrong}
    assert page.evaluate(INCREMENTAL_EQUALS_WHOLE, [[LATE_REFERENCE], True, [1, 2, 3, 7]]) == []


def test_an_open_code_block_renders_as_the_whole_at_every_point(page):
    wrong = page.evaluate(INCREMENTAL_EQUALS_WHOLE, [OPEN_CODE, False, [1, 2, 5]])
    wrong += page.evaluate(INCREMENTAL_EQUALS_WHOLE, [LONG_CODE, False, [3, 61]])
    assert not wrong, {(w["sample"][:30], len(w.get("text", "")), w["final"]) for w in wrong}


def test_a_long_paragraph_renders_as_the_whole_at_every_point(page):
    wrong = page.evaluate(INCREMENTAL_EQUALS_WHOLE, [LONG_PARAGRAPHS, False, [89, 1013]])
    assert not wrong, {(w["sample"][:30], w["size"], len(w.get("text", "")), w["final"]) for w in wrong}


# A task a few milliseconds over the line, once in a run, came from Chromium
# being descheduled on this 2-core machine (the app's server and the fake
# upstream run beside it), not from the page's work (a trace showed ~1.5 ms a
# frame): an answer that has one is streamed once more, and must have none.
# (bench/page.py streams each once: CHATSTREAM_LONG_ANSWER_TRIES=1.)
LONG_ANSWER_TRIES = int(os.environ.get("CHATSTREAM_LONG_ANSWER_TRIES", "2"))


def long_paragraph(chars: int) -> str:
    """One paragraph of `chars` with no line break, as a model writes prose:
    some words bold, italic, in backticks or linked."""
    vocabulary = ["cache", "entry", "the", "reader", "is", "kept", "on", "disk", "and", "in", "memory", "fast"]
    marks = ["**{}**", "*{}*", "`{}()`", "[{}](https://example.com/{})"]
    out, total = [], 0
    for i in range(chars):
        word = vocabulary[i * 7 % len(vocabulary)]
        if i % 11 == 5:
            word = marks[i // 11 % len(marks)].format(word, i)
        out.append(word)
        total += len(word) + 1
        if total >= chars:
            return " ".join(out)[:chars].rstrip() + "."
    raise AssertionError("unreachable")


def long_code_block(lines: int) -> str:
    """A model writing a whole file: one ```python fence of `lines` lines."""
    body = "".join(f"    value_{i:04} = lookup(cache, key_{i % 997:03})\n" for i in range(lines))
    return f"Here is the file:\n\n```python\ndef load(cache):\n{body}```\n"


# Each 50,000 tokens of 4 characters: an answer as many blocks (100 KB, for
# the parts they fill) that ends in one paragraph of 100 KB with no line
# break, and one fenced code block of 5,000 lines (a model writing a whole
# file, 200 KB).
LONG_ANSWERS = {
    "paragraph": long_markdown(100_000) + long_paragraph(100_000),
    "code": long_code_block(5000),
}


# Tokens a second. These two tests check the whole path at size (the app's
# stream into the page, no main-thread task over 50 ms, the final DOM a
# whole render); whether they see a frame that grows with its block depends
# on the machine's speed: the page before issue 29, whose frames parse the
# open block again, passed both at 1,000 and 5,000 tokens a second on a fast
# day (2026-12-07) and failed at 1,000 on a slow one. What holds on any
# machine is the test below, so CI streams at 5,000 (10 s an answer, not
# 50), and bench/page.py at 1,000, issue 29's rate.
LONG_ANSWER_RATE = int(os.environ.get("CHATSTREAM_LONG_ANSWER_RATE", "5000"))


@pytest.mark.parametrize("kind", LONG_ANSWERS)
def test_a_long_answer_streams_without_long_tasks(page, upstream, kind):
    # 50,000 tokens, a chunk every 9 ms (~100 chunks a second).
    text = LONG_ANSWERS[kind]
    tokens_per_chunk = LONG_ANSWER_RATE // 100
    upstream.behaviour = Behaviour(text=text, piece_chars=4, tokens_per_chunk=tokens_per_chunk, pace=0.009)
    tokens = len(upstream.behaviour.pieces())
    runs = []
    for _ in range(LONG_ANSWER_TRIES):
        saved, seconds, long_tasks, frames = stream_a_long_answer(page, text)
        run = {"kind": kind, "tokens": tokens, "rate": LONG_ANSWER_RATE, "seconds": round(seconds, 1), "frames": frames}
        runs.append({**run, "long_tasks_ms": long_tasks, "long_tasks_at_s": page.evaluate("window.longTaskStarts")})
        if not long_tasks:
            break
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / f"long-answer-{kind}.json").write_text(json.dumps(runs, indent=2))
    print(f"long answer: {runs}")
    assert saved.content == text
    same, shown, whole = page.evaluate(SAME_AS_WHOLE_RENDER, ["#turns > li.assistant .body", saved.content])
    assert same, (shown, whole)
    assert tokens >= 50_000 and tokens / seconds >= 0.8 * LONG_ANSWER_RATE, (tokens, seconds)
    assert max(long_tasks, default=0) <= 50, runs


# A frame's render at the end of a long block, against a render of the
# whole text: the block taken in up to each point in large steps (out of the
# timing), then the next few characters rendered as frames do, and timed;
# the median of the last tenth of the text, and of five whole renders, in ms.
FRAME_AND_WHOLE_COST = """async ([text, step, frame]) => {
    const src = document.querySelector("script[type=module]").src.replace("chat.js", "render.js");
    const { LiveMarkdown, renderMarkdown } = await import(src);
    const median = (xs) => xs.slice().sort((a, b) => a - b)[Math.floor(xs.length / 2)];
    const live = new LiveMarkdown(document.createElement("div"));
    const frames = [];
    for (let end = step; end + 20 * frame < text.length; end += step) {
        live.render(text.slice(0, end));
        const started = performance.now();
        for (let i = 1; i <= 20; i++) live.render(text.slice(0, end + i * frame));
        frames.push((performance.now() - started) / 20);
    }
    const wholes = [];
    for (let i = 0; i < 5; i++) {
        const started = performance.now();
        renderMarkdown(document.createElement("div"), text);
        wholes.push(performance.now() - started);
    }
    return [median(frames.slice(-Math.ceil(frames.length / 10))), median(wholes)];
}"""


@pytest.mark.parametrize("kind", LONG_ANSWERS)
def test_a_frame_at_the_end_of_a_long_block_costs_a_fraction_of_a_whole_render(page, kind):
    # What keeps the long answers' frames short on any machine: a frame's
    # work is the text it adds, not the block it adds to. Parsing the open
    # block again on each frame (the page before issue 29) cost as much as
    # rendering the whole text, and over 50 ms a frame on a slow day.
    page.goto("/")
    ready(page)
    frame, whole = page.evaluate(FRAME_AND_WHOLE_COST, [LONG_ANSWERS[kind], 2000, 68])  # a frame at 1,000 tokens/s
    print(f"{kind}: a frame at the end {frame:.3f} ms, the whole text {whole:.1f} ms")
    assert frame <= whole / 10, (frame, whole)


def stream_a_long_answer(page: Page, text: str) -> tuple[Turn, float, list[float], int]:
    """Send a message in a new conversation and wait, hands off, for its long
    answer: the saved turn, the seconds it took, the page's long tasks (ms)
    and the frames it drew."""
    page.goto("/")
    ready(page)
    before = set(Turn.objects.filter(role="assistant").values_list("pk", flat=True))
    page.evaluate(OBSERVE_LONG_TASKS)
    started = time.monotonic()
    send(page, "Explain the cache, at length")
    # The test leaves the page alone while it streams: Playwright's own
    # calls (an expect's polling) are tasks on the page's main thread too.
    deadline = time.monotonic() + 180
    while not (saved := Turn.objects.filter(role="assistant").exclude(pk__in=before).first()):
        assert time.monotonic() < deadline, "the long answer was not saved in time"
        time.sleep(0.1)
    seconds = time.monotonic() - started
    time.sleep(1)  # the `done` event follows the save
    long_tasks, frames = page.evaluate("[window.longTasks, window.frameCount]")
    expect(answers(page).first.locator(".meta")).to_contain_text("tokens")
    return saved, seconds, long_tasks, frames
