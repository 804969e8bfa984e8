"""The instructions panel: a conversation's system prompt, parameters and
response format set on the chat page reach the model, a value the server
refuses is shown beside its field, a reload keeps them, a new chat may start
from a staff's prompt, and an answer says whether it was valid JSON."""

import json
import re

import pytest
from playwright.sync_api import Page, expect

from conversations.models import Conversation, Prompt
from harness.fake_upstream import Behaviour

from .helpers import answers, reload, saved, screenshot, send

# End to end: run on one CI leg, not on the legs that vary Django, the stack or the database.
pytestmark = pytest.mark.e2e

SCHEMA = {"type": "object", "properties": {"name": {"type": "string"}}, "required": ["name"]}


def panel(page: Page):
    return page.get_by_role("form", name="Instructions")


def open_panel(page: Page):
    page.get_by_role("button", name="Instructions").click()
    expect(panel(page)).to_be_visible()
    return panel(page)


def save(form) -> None:
    form.get_by_role("button", name="Save").click()


def field_error(form, param: str):
    return form.locator(f'[data-param="{param}"] > .field-error')


def test_instructions_set_in_the_panel_reach_the_model_and_stay(page, upstream):
    form = open_panel(page)
    form.get_by_label("System prompt").fill("Answer as JSON.")
    form.get_by_label("Temperature").fill("0.3")
    form.get_by_label("Response format").select_option("json_schema")
    form.get_by_label("JSON Schema").fill("{not json")
    save(form)
    expect(field_error(form, "schema")).to_contain_text("The schema is not JSON")
    assert not Conversation.objects.exists()  # nothing sent

    form.get_by_label("JSON Schema").fill(json.dumps(SCHEMA))
    save(form)
    expect(page).to_have_url(re.compile(r"#[0-9a-f-]{36}$"))  # the new chat exists, and is open
    expect(form.locator(".prompt-shown")).to_have_text("No prompt")  # the panel shows it, from the server
    conversation = Conversation.objects.get()
    assert (conversation.system_prompt, conversation.parameters) == ("Answer as JSON.", {"temperature": 0.3})

    form.get_by_label("Max tokens").fill("9000")  # over the model's cap (LLM_MAX_OUTPUT_TOKENS)
    save(form)
    expect(field_error(form, "max_tokens")).to_contain_text("takes max_tokens of at most 8192")
    expect(form.get_by_label("Max tokens")).to_have_attribute("aria-invalid", "true")
    screenshot(page, "instructions-error.png", animations="disabled")
    form.get_by_label("Max tokens").fill("")
    expect(field_error(form, "max_tokens")).to_be_empty()  # typing clears it
    save(form)
    expect(form.locator(".status")).to_have_text("Saved: the next answer follows them.")

    upstream.behaviour = Behaviour(text='{"name": "Ada"}')
    send(page, "Who wrote the first program?")
    saved(page)
    body = upstream.calls[-1].body
    assert body["messages"][0] == {"role": "system", "content": "Answer as JSON."}
    assert body["temperature"] == 0.3 and body["response_format"]["json_schema"]["schema"] == SCHEMA
    expect(answers(page).first.locator(".meta .output-check")).to_have_text("✓ valid JSON")

    reload(page)
    form = open_panel(page)
    expect(form.get_by_label("System prompt")).to_have_value("Answer as JSON.")
    expect(form.get_by_label("Temperature")).to_have_value("0.3")
    expect(form.get_by_label("Response format")).to_have_value("json_schema")
    assert json.loads(form.get_by_label("JSON Schema").input_value()) == SCHEMA
    expect(answers(page).first.locator(".meta .output-check")).to_have_text("✓ valid JSON")
    screenshot(page, "instructions-desktop.png", animations="disabled")
    page.set_viewport_size({"width": 390, "height": 844})
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    expect(form.get_by_role("button", name="Save")).to_be_visible()
    screenshot(page, "instructions-phone.png", animations="disabled")


def test_a_forbidden_parameter_is_shown_beside_its_field(page, upstream, settings):
    settings.LLM_MODELS = {"strict": {"model": "fake-model", "base_url": settings.LLM_BASE_URL, "forbid": ["seed"]}}
    form = open_panel(page)
    form.get_by_label("Seed").fill("7")
    save(form)
    expect(field_error(form, "seed")).to_have_text("'strict' does not take seed.")
    assert not Conversation.objects.exists()


def test_a_new_chat_starts_from_a_staff_prompt_and_an_invalid_answer_says_so(page, upstream):
    Prompt.objects.create(
        name="lawyer",
        system_prompt="You are a careful lawyer.\nCite the law.",
        parameters={"temperature": 0.1},
        response_format={"type": "json_object"},
    )
    form = open_panel(page)
    form.get_by_label("Start from a prompt").select_option("lawyer")
    expect(form.locator(".prompt-description")).to_have_text("You are a careful lawyer.")
    expect(form.get_by_label("Temperature")).to_have_value("0.1")
    expect(form.get_by_label("Response format")).to_have_value("json_object")
    save(form)
    expect(form.locator(".prompt-shown")).to_have_text("lawyer")
    expect(form.get_by_label("System prompt")).to_have_value("You are a careful lawyer.\nCite the law.")

    upstream.behaviour = Behaviour(text="Not JSON at all.")
    send(page, "May I?")
    saved(page)
    assert upstream.calls[-1].body["response_format"] == {"type": "json_object"}
    expect(answers(page).first.locator(".meta .output-check")).to_have_text("✗ not valid JSON")
    form.get_by_label("System prompt").press("Escape")  # closes the panel
    expect(form).to_be_hidden()
    expect(page.get_by_role("button", name="Instructions")).to_be_focused()
    screenshot(page, "instructions-invalid-answer.png", animations="disabled")
