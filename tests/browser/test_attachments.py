"""Files in a message (issue 26): attached through the button, dropped on
the chat or pasted; each a chip that uploads at once and can be removed; sent
with the message and shown in the conversation (images inline, documents as
links), on a desktop and on a phone."""

import base64
import io
import re

import pytest
from PIL import Image
from playwright.sync_api import Page, expect

from conversations.files.sizes import human_size
from harness.fake_upstream import Behaviour

from .helpers import model_picker, reload, saved, screenshot, send

# End to end: run on one CI leg, not on the legs that vary Django, the stack or the database.
pytestmark = pytest.mark.e2e

PHONE = {"width": 390, "height": 844}
NOTES = b"Milk\nEggs\nFlour\n"


def png(width: int = 4, height: int = 3, colour: tuple[int, int, int] = (200, 40, 40)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), colour).save(buffer, format="PNG")
    return buffer.getvalue()


def image_file(name: str = "red.png", **size) -> dict:
    return {"name": name, "mimeType": "image/png", "buffer": png(**size)}


def text_file(name: str = "notes.txt", data: bytes = NOTES) -> dict:
    return {"name": name, "mimeType": "text/plain", "buffer": data}


def attach_button(page: Page):
    return page.get_by_role("button", name="Attach files")


def chips(page: Page):
    return page.get_by_role("list", name="Attached files").get_by_role("listitem")


def chip(page: Page, name: str):
    return chips(page).filter(has=page.get_by_role("button", name=f"Remove {name}"))


def file_input(page: Page):
    return page.locator("#composer input[type=file]")


def files_url(page: Page, path: str = "") -> str:
    return page.locator("#app").get_attribute("data-files") + path


def attach(page: Page, file: dict) -> dict:
    """A file chosen in the file input: the server's answer, once its chip
    shows it uploaded."""
    with page.expect_response(is_upload) as upload:
        file_input(page).set_input_files([file])
    expect(chip(page, file["name"])).to_have_attribute("data-state", "uploaded")
    return upload.value.json()


def is_upload(response) -> bool:
    return is_upload_request(response.request)


def chip_appears_uploaded(page: Page, name: str, size: str) -> None:
    item = chip(page, name)
    expect(item).to_have_attribute("data-state", "uploaded")
    expect(item.locator(".name")).to_have_text(name)
    expect(item.locator(".size")).to_have_text(size)


# --- in the page: a drop and a paste, as a browser dispatches them ------------------

DISPATCH = """([kind, target, files]) => {
  const data = new DataTransfer();
  for (const [name, type, b64] of files) {
    const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
    data.items.add(new File([bytes], name, { type }));
  }
  const element = document.querySelector(target);
  const init = { bubbles: true, cancelable: true };
  const event = kind === "paste"
    ? new ClipboardEvent("paste", { ...init, clipboardData: data })
    : new DragEvent(kind, { ...init, dataTransfer: data });
  return element.dispatchEvent(event); // false: the page took it (preventDefault)
}"""


# Loaded as an image: the page's policy lets blob: URLs in as images only.
IS_REVOKED = """(url) => new Promise((resolve) => {
  const image = new Image();
  image.onload = () => resolve(false);
  image.onerror = () => resolve(true);
  image.src = url;
})"""


def dispatch(page: Page, kind: str, target: str, *files: dict) -> bool:
    encoded = [[each["name"], each["mimeType"], base64.b64encode(each["buffer"]).decode()] for each in files]
    return page.evaluate(DISPATCH, [kind, target, encoded])


@pytest.fixture
def seeing(upstream, settings):
    """The fake upstream as a model that sees images. Named before `page`,
    so the page reads the model's catalogue entry as it is then."""
    settings.LLM_VISION = True
    return upstream


# --- the tests ------------------------------------------------------------------------


def test_attach_files_opens_the_picker_and_remove_deletes_the_upload(page):
    with page.expect_file_chooser() as chooser:
        attach_button(page).click()
    assert chooser.value.is_multiple()
    with page.expect_response(is_upload) as upload:
        chooser.value.set_files([image_file()])
    uploaded = upload.value.json()
    assert upload.value.status == 201 and uploaded["kind"] == "image", uploaded
    chip_appears_uploaded(page, "red.png", human_size(uploaded["size"]))
    thumbnail = chip(page, "red.png").locator("img.thumb")
    expect(thumbnail).to_be_visible()
    expect(thumbnail).to_have_attribute("src", re.compile(r"^blob:"))
    expect(thumbnail).to_have_js_property("naturalWidth", 4)  # the page's policy lets blob: images in
    object_url = thumbnail.get_attribute("src")
    assert not page.evaluate(IS_REVOKED, object_url)
    assert page.request.get(files_url(page, f"/{uploaded['id']}")).status == 200

    with page.expect_response(lambda response: response.request.method == "DELETE") as deleted:
        page.get_by_role("button", name="Remove red.png").click()
    assert deleted.value.status == 204
    expect(chips(page)).to_have_count(0)
    expect(attach_button(page)).to_be_focused()  # focus goes back where the chips began
    assert page.request.get(files_url(page, f"/{uploaded['id']}")).status == 404
    assert page.evaluate(IS_REVOKED, object_url)  # the thumbnail's memory is given back


def test_the_keyboard_attaches_and_removes(page):
    # Playwright starts catching the file chooser without waiting for the
    # browser to say it does: a key pressed at once can beat it.
    with page.expect_file_chooser() as chooser:
        page.locator("#message").focus()
        page.keyboard.press("Shift+Tab")
        expect(attach_button(page)).to_be_focused()
        page.keyboard.press("Enter")
    chooser.value.set_files([text_file()])
    expect(chip(page, "notes.txt")).to_have_attribute("data-state", "uploaded")
    page.keyboard.press("Shift+Tab")  # the chips come before Attach
    remove = page.get_by_role("button", name="Remove notes.txt")
    expect(remove).to_be_focused()
    page.keyboard.press("Enter")
    expect(chips(page)).to_have_count(0)
    expect(attach_button(page)).to_be_focused()


def test_a_dropped_file_and_a_pasted_image_become_chips(page):
    chat = page.locator(".chat")
    assert not dispatch(page, "dragenter", "#turns", text_file())
    dispatch(page, "dragover", "#turns", text_file())
    expect(chat).to_have_class(re.compile(r"\bdropping\b"))  # the drop zone shows itself
    with page.expect_response(is_upload):
        assert not dispatch(page, "drop", "#turns", text_file())  # taken: the browser does not open it
    expect(chat).not_to_have_class(re.compile(r"\bdropping\b"))
    chip_appears_uploaded(page, "notes.txt", human_size(len(NOTES)))
    expect(chip(page, "notes.txt").locator("img.thumb")).to_be_hidden()  # a document shows its name and size

    with page.expect_response(is_upload) as upload:
        assert not dispatch(page, "paste", "#message", image_file("image.png"))
    assert upload.value.json()["name"] == "pasted-image.png"
    chip_appears_uploaded(page, "pasted-image.png", human_size(upload.value.json()["size"]))
    expect(chip(page, "pasted-image.png").locator("img.thumb")).to_be_visible()
    expect(page.locator("#message")).to_have_value("")  # nothing pasted as text

    assert not dispatch(page, "drop", "#sidebar", text_file("beside.txt"))  # the page is not left for the file
    expect(chips(page)).to_have_count(2)  # nor is it attached


def test_pasted_text_stays_text(page):
    page.locator("#message").focus()
    taken = page.evaluate("""() => {
      const data = new DataTransfer();
      data.setData("text/plain", "just words");
      return !document.querySelector("#message").dispatchEvent(
        new ClipboardEvent("paste", { bubbles: true, cancelable: true, clipboardData: data }));
    }""")
    assert not taken
    expect(chips(page)).to_have_count(0)


def test_an_unsupported_file_shows_the_servers_error_on_its_chip(page):
    program = {
        "name": "setup.exe",
        "mimeType": "application/octet-stream",
        "buffer": b"MZ\x90\x00\x03\x00\x00\x00" * 64,
    }
    with page.expect_response(is_upload) as upload:
        file_input(page).set_input_files([program])
    assert upload.value.status == 415
    message = upload.value.json()["error"]["message"]
    refused = chip(page, "setup.exe")
    expect(refused).to_have_attribute("data-state", "failed")
    expect(refused.get_by_role("alert")).to_have_text(message)
    expect(page.locator("#send")).to_be_enabled()  # a refused file holds nothing up
    page.get_by_role("button", name="Remove setup.exe").click()
    expect(chips(page)).to_have_count(0)


def test_an_image_and_a_text_file_are_sent_and_shown_after_a_reload(seeing, page):
    seeing.behaviour = Behaviour(tokens=3)
    image = attach(page, image_file("photo.png", width=800, height=600))
    notes = attach(page, text_file())
    object_url = chip(page, "photo.png").locator("img.thumb").get_attribute("src")
    send(page, "What is in these?")
    expect(chips(page)).to_have_count(0)  # the chips go with the message
    assert page.evaluate(IS_REVOKED, object_url)
    question = page.locator("#turns > li.user").first
    expect(question.locator(".body")).to_have_text("What is in these?")
    turn_shows_files(page, question, image, notes)
    expect(page.locator("#turns > li.assistant .meta")).to_contain_text("tokens", timeout=10_000)

    reload(page)
    question = page.locator("#turns > li.user").first
    turn_shows_files(page, question, image, notes)
    shown = question.get_by_role("img", name="photo.png")
    box = shown.bounding_box()
    assert box and box["height"] <= 241 and abs(box["width"] / box["height"] - 800 / 600) < 0.02, box
    shown.click()  # the full-size image, over the page
    full = page.get_by_role("dialog", name="photo.png")
    expect(full).to_be_visible()
    expect(full.get_by_role("img", name="photo.png")).to_have_js_property("naturalWidth", 800)
    expect(full.get_by_role("link", name="Open in a new tab")).to_have_attribute(
        "href", files_url(page, f"/{image['id']}/content")
    )
    with page.expect_popup() as opened:
        full.get_by_role("link", name="Open in a new tab").click()
    tab = opened.value
    tab.wait_for_load_state()
    assert tab.evaluate("document.images[0]?.naturalWidth") == 800  # the image's own page shows it
    tab.close()
    page.keyboard.press("Escape")
    expect(full).to_be_hidden()
    shown.click()
    full.get_by_role("button", name="Close").click()
    expect(full).to_be_hidden()


def turn_shows_files(page: Page, question, image: dict, notes: dict) -> None:
    shown = question.get_by_role("img", name=image["name"])
    expect(shown).to_be_visible()
    expect(shown).to_have_attribute("loading", "lazy")
    page.wait_for_function("(img) => img.complete && img.naturalWidth > 0", arg=shown.element_handle())
    document = question.get_by_role("link", name=re.compile(rf"^{re.escape(notes['name'])} "))
    expect(document).to_have_text(f"{notes['name']} {human_size(notes['size'])}")
    expect(document).to_have_attribute("href", files_url(page, f"/{notes['id']}/content"))


def test_sizes_read_as_the_admin_and_the_exports_write_them(page):
    sizes = [0, 1, 512, 1023, 1024, 1536, 10 * 1024 - 1, 10 * 1024, 20 * 1024**2, 5 * 1024**3, 3 * 1024**5]
    shown = page.evaluate(
        """async (sizes) => {
          const url = document.querySelector("script[type=module]").src.replace(/chat\\.js$/, "files.js");
          const { formatSize } = await import(url);
          return sizes.map(formatSize);
        }""",
        sizes,
    )
    assert shown == [human_size(size) for size in sizes]


def test_a_file_over_the_limit_is_refused_before_it_is_sent(page, settings):
    settings.CHATSTREAM_MAX_FILE_BYTES = 1000
    reload(page)
    uploads = []
    page.on("request", lambda request: is_upload_request(request) and uploads.append(request))
    file_input(page).set_input_files([text_file("long.txt", b"word " * 400)])
    refused = chip(page, "long.txt")
    expect(refused).to_have_attribute("data-state", "failed")
    expect(refused.get_by_role("alert")).to_have_text("long.txt is 2 KB: the largest file is 1000 bytes.")
    assert not uploads


def test_files_past_the_most_a_message_carries_are_refused_in_the_page(settings, page):
    settings.CHATSTREAM_MAX_FILES_PER_MESSAGE = 2
    reload(page)
    uploads = []
    page.on("request", lambda request: is_upload_request(request) and uploads.append(request))
    file_input(page).set_input_files([text_file(f"{n}.txt") for n in ("one", "two", "three")])
    expect(chip(page, "two.txt")).to_have_attribute("data-state", "uploaded")
    refused = chip(page, "three.txt")
    expect(refused.get_by_role("alert")).to_have_text("A message carries 2 files at most.")
    assert len(uploads) == 2
    page.get_by_role("button", name="Remove one.txt").click()
    file_input(page).set_input_files([text_file("four.txt")])  # room again: a refused file takes none
    expect(chip(page, "four.txt")).to_have_attribute("data-state", "uploaded")


def is_upload_request(request) -> bool:
    return request.method == "POST" and request.url.endswith("/files")


def test_files_alone_are_a_message(seeing, page):
    seeing.behaviour = Behaviour(tokens=2)
    attach(page, image_file())
    page.get_by_role("button", name="Send").click()
    question = page.locator("#turns > li.user").first
    expect(question.get_by_role("img", name="red.png")).to_be_visible()
    expect(page.locator("#turns > li.assistant .meta")).to_contain_text("tokens", timeout=10_000)


def test_send_waits_while_a_file_uploads_and_its_progress_shows(page):
    network = page.context.new_cdp_session(page)
    network.send("Network.enable")
    network.send(
        "Network.emulateNetworkConditions",
        {"offline": False, "latency": 0, "downloadThroughput": -1, "uploadThroughput": 400_000},
    )
    page.fill("#message", "a question")
    file_input(page).set_input_files([text_file("big.txt", b"words and words\n" * 60_000)])
    uploading = chip(page, "big.txt")
    expect(uploading).to_have_attribute("data-state", "uploading")
    expect(uploading.get_by_role("progressbar", name="Uploading big.txt")).to_be_visible()
    expect(page.get_by_role("button", name="Send")).to_be_disabled()
    page.wait_for_function("() => document.querySelector('.chip progress').value > 0")
    network.send(
        "Network.emulateNetworkConditions",
        {"offline": False, "latency": 0, "downloadThroughput": -1, "uploadThroughput": -1},
    )
    expect(uploading).to_have_attribute("data-state", "uploaded", timeout=15_000)
    expect(uploading.get_by_role("progressbar")).to_be_hidden()
    expect(page.get_by_role("button", name="Send")).to_be_enabled()


def test_a_phone_attaches_and_shows_files(seeing, page):
    seeing.behaviour = Behaviour(tokens=2)
    page.set_viewport_size(PHONE)
    reload(page)
    button = attach_button(page)
    expect(button).to_be_in_viewport()
    with page.expect_file_chooser() as chooser:
        button.click()
    with page.expect_response(is_upload):
        chooser.value.set_files([image_file("a-long-name-for-a-holiday-photo.png", width=640, height=480)])
    file_input(page).set_input_files([text_file()])
    chip_appears_uploaded(page, "notes.txt", human_size(len(NOTES)))
    expect(chip(page, "a-long-name-for-a-holiday-photo.png")).to_have_attribute("data-state", "uploaded")
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    page.fill("#message", "Where was this taken?")
    screenshot(page, "attachments-chips-phone.png", animations="disabled")

    page.press("#message", "Enter")
    expect(page.locator("#turns > li.assistant .meta")).to_contain_text("tokens", timeout=10_000)
    shown = page.locator("#turns > li.user").get_by_role("img", name="a-long-name-for-a-holiday-photo.png")
    expect(shown).to_be_visible()
    page.wait_for_function("(img) => img.complete && img.naturalWidth > 0", arg=shown.element_handle())
    box = shown.bounding_box()
    assert box and box["x"] + box["width"] <= PHONE["width"], box
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    screenshot(page, "attachments-sent-phone.png", animations="disabled")
    shown.click()
    full = page.get_by_role("dialog", name="a-long-name-for-a-holiday-photo.png")
    expect(full.get_by_role("button", name="Close")).to_be_in_viewport()
    full_box = full.get_by_role("img").bounding_box()
    assert full_box and full_box["x"] >= 0 and full_box["x"] + full_box["width"] <= PHONE["width"], full_box
    screenshot(page, "attachments-full-size-phone.png", animations="disabled")


def test_screenshots_on_a_desktop(seeing, page):
    """tests/artifacts/attachments-*.png: the chips (one refused), the sent
    message in light and dark, and an image at full size."""
    seeing.behaviour = Behaviour(tokens=12)
    picture = {"name": "sunset.png", "mimeType": "image/png", "buffer": sunset(900, 500)}
    attach(page, picture)
    attach(page, text_file("shopping-list.md"))
    file_input(page).set_input_files(
        [{"name": "archive.zip", "mimeType": "application/zip", "buffer": b"PK\x03\x04" + bytes(200)}]
    )
    expect(chip(page, "archive.zip")).to_have_attribute("data-state", "failed")
    page.fill("#message", "Plan a picnic for this view")
    screenshot(page, "attachments-chips.png", animations="disabled")
    page.get_by_role("button", name="Remove archive.zip").click()
    page.press("#message", "Enter")
    expect(page.locator("#turns > li.assistant .meta")).to_contain_text("tokens", timeout=10_000)
    page.locator("#turns > li.user img").evaluate("(img) => img.decode()")
    screenshot(page, "attachments-sent.png", animations="disabled")
    page.emulate_media(color_scheme="dark")
    screenshot(page, "attachments-sent-dark.png", animations="disabled")
    page.emulate_media(color_scheme="light")
    page.get_by_role("img", name="sunset.png").click()
    expect(page.get_by_role("dialog", name="sunset.png")).to_be_visible()
    screenshot(page, "attachments-full-size.png", animations="disabled")


def sunset(width: int, height: int) -> bytes:
    """A picture with something in it: a sky fading to orange."""
    fade = Image.linear_gradient("L").resize((width, height))
    sky = Image.merge(
        "RGB",
        (fade.point(lambda v: 90 + v * 0.6), fade.point(lambda v: 120 + v * 0.2), fade.point(lambda v: 200 - v * 0.6)),
    )
    buffer = io.BytesIO()
    sky.save(buffer, format="PNG")
    return buffer.getvalue()


def test_an_edited_question_keeps_its_files(seeing, page):
    seeing.behaviour = Behaviour(tokens=2)
    attach(page, image_file())
    send(page, "What colour?")
    saved(page)
    page.locator("#turns > li.user").get_by_role("button", name="Edit").click()
    page.get_by_role("textbox", name="Edited message").fill("Which colour is it?")
    page.get_by_role("button", name="Save").click()
    question = page.locator("#turns > li.user")
    expect(question.get_by_role("img", name="red.png")).to_be_visible()
    saved(page)
    reload(page)
    expect(question.locator(".body")).to_have_text("Which colour is it?")
    expect(question.get_by_role("img", name="red.png")).to_be_visible()
    expect(question.locator(".versions .count")).to_have_text("2 / 2")


def test_an_image_for_a_model_that_cannot_see_waits_for_another_model(two_models, settings, page):
    settings.LLM_MODELS = {**settings.LLM_MODELS, "big": {**settings.LLM_MODELS["big"], "vision": True}}
    reload(page)
    attach(page, image_file())
    send(page, "What is this?")
    expect(page.locator("#notice")).to_have_text(re.compile(r"^small cannot see images"))
    expect(chips(page)).to_have_count(1)  # nothing was sent: the message and its files wait
    expect(page.locator("#turns > li")).to_have_count(0)
    model_picker(page).select_option("big")
    page.press("#message", "Enter")
    expect(page.locator("#turns > li.user").get_by_role("img", name="red.png")).to_be_visible()
    expect(page.locator("#turns > li.assistant .meta")).to_contain_text("tokens", timeout=10_000)
    assert two_models.calls[-1].body["model"] == "gpt-big"


def test_an_answer_says_how_much_of_a_long_document_it_read(seeing, settings, page):
    settings.LLM_CONTEXT_TOKENS = 1000
    seeing.behaviour = Behaviour(tokens=2)
    attach(page, text_file("novel.txt", b"It was a dark and stormy night. " * 2000))
    send(page, "Summarise it")
    saved(page)
    expect(page.locator("#turns > li.assistant .meta")).to_have_text(re.compile(r"^Read \d{1,2}% of novel\.txt · "))
