"""What the browser tests share besides fixtures: where screenshots go, an
answer with markdown and script in it, and the page's parts as a user finds
them."""

from pathlib import Path

from playwright.sync_api import Page, expect

ARTIFACTS = Path(__file__).parent.parent / "artifacts"
MARKDOWN_ANSWER = (
    "Here is **code**:\n\n```python\nprint('hi')\n```\n\n"
    "| a | b |\n|---|---|\n| 1 | 2 |\n\n"
    '<script>window.pwned = 1</script><img src=x onerror="window.pwned = 2">'
)


def send(page: Page, text: str) -> None:
    page.fill("#message", text)
    page.press("#message", "Enter")


def new_chats(page: Page, *questions: str) -> None:
    """A new conversation for each question, each answered before the next."""
    for question in questions:
        page.click("#new-chat")
        send(page, question)
        expect(answers(page).first.locator(".meta")).to_contain_text("tokens")


def ready(page: Page) -> None:
    """Wait until the chat page has started (its script marks it ready)."""
    expect(page.locator("#app[data-ready=true]")).to_be_attached()


def reload(page: Page) -> None:
    page.reload()
    ready(page)


def answers(page: Page):
    return page.locator("#turns > li.assistant")


def answer_text(page: Page, index: int = 0):
    return answers(page).nth(index).locator(".body")


def questions(page: Page):
    """The user's messages' text (their actions are beside it)."""
    return page.locator("#turns > li.user > .body")


def saved(page: Page, index: int = 0) -> None:
    """Wait until the answer is saved and read again: its actions show."""
    expect(answers(page).nth(index).get_by_role("button", name="Regenerate")).to_be_visible(timeout=10_000)


def model_picker(page: Page):
    return page.get_by_role("combobox", name="Model")


def api_url(page: Page, path: str = "") -> str:
    return page.locator("#app").get_attribute("data-api") + path


def screenshot(page: Page, name: str, **options) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=ARTIFACTS / name, **options)
