"""Each conversation's own instructions: its system prompt, its parameters and
response format (set on the conversation, overridden by a message), what a
catalogue entry allows of them, an answer checked against its format, and
conversations started from a staff's prompt."""

import httpx
import pytest

from conversations.catalogue import CatalogueError, catalogue
from conversations.checks import check_llm_settings
from conversations.instructions import output_check
from conversations.models import Conversation, Prompt, Turn

from .helpers import read_events, saved_answer, send

PERSON = {
    "type": "json_schema",
    "json_schema": {
        "name": "person",
        "schema": {
            "type": "object",
            "properties": {"name": {"type": "string"}, "age": {"type": "integer"}},
            "required": ["name", "age"],
        },
    },
}


def new_conversation(api_user, **body) -> str:
    response = api_user.client.post("/api/conversations", json=body)
    assert response.status_code == 201, response.text
    return response.json()["id"]


def error_of(response) -> dict:
    return response.json()["error"]


def done_event(response) -> dict:
    final = read_events(response)[-1]
    assert final["event"] == "done", final
    return final["data"]


def test_parameters_and_response_format_reach_the_model(alice, upstream):
    conversation_id = new_conversation(
        alice, parameters={"temperature": 0.2, "seed": 7, "stop": ["END"]}, response_format={"type": "json_object"}
    )
    send(alice, conversation_id)
    body = upstream.calls[-1].body
    assert (body["temperature"], body["seed"], body["stop"]) == (0.2, 7, ["END"])
    assert body["response_format"] == {"type": "json_object"}


def test_whole_numbers_may_be_written_as_floats(alice, upstream):
    conversation_id = new_conversation(alice, parameters={"max_tokens": 40.0, "seed": 3.0})
    send(alice, conversation_id)
    body = upstream.calls[-1].body
    assert (body["max_tokens"], body["seed"]) == (40, 3) and isinstance(body["seed"], int)


def test_a_message_overrides_the_conversations_parameters(alice, upstream):
    conversation_id = new_conversation(alice, parameters={"temperature": 0.2, "top_p": 0.5})
    send(alice, conversation_id, parameters={"temperature": 1.1, "max_tokens": 40}, response_format=PERSON)
    body = upstream.calls[-1].body
    assert (body["temperature"], body["top_p"], body["max_tokens"]) == (1.1, 0.5, 40)
    assert body["response_format"] == PERSON
    assert saved_answer(conversation_id).parameters == {"temperature": 1.1, "top_p": 0.5, "max_tokens": 40}
    send(alice, conversation_id)  # the next message has the conversation's again
    body = upstream.calls[-1].body
    assert body["temperature"] == 0.2 and "response_format" not in body


def test_the_system_prompt_replaces_the_settings_one(alice, upstream, settings):
    settings.LLM_SYSTEM_PROMPT = "You are the default."
    plain = new_conversation(alice)
    own = new_conversation(alice, system_prompt="You answer in French.")
    send(alice, plain)
    assert upstream.calls[-1].body["messages"][0] == {"role": "system", "content": "You are the default."}
    send(alice, own)
    assert upstream.calls[-1].body["messages"][0] == {"role": "system", "content": "You answer in French."}
    send(alice, own, system_prompt="You answer in German.")
    assert upstream.calls[-1].body["messages"][0]["content"] == "You answer in German."


def test_a_conversation_shows_its_instructions_and_patch_changes_them(alice, upstream):
    conversation_id = new_conversation(alice, system_prompt="Be brief.", parameters={"temperature": 0.3})
    shown = alice.client.get(f"/api/conversations/{conversation_id}").json()
    assert (shown["system_prompt"], shown["parameters"], shown["response_format"], shown["prompt"]) == (
        "Be brief.",
        {"temperature": 0.3},
        None,
        None,
    )
    changed = alice.client.patch(
        f"/api/conversations/{conversation_id}",
        json={"parameters": {"seed": 3}, "response_format": {"type": "json_object"}, "system_prompt": ""},
    )
    assert changed.status_code == 200, changed.text
    assert (changed.json()["parameters"], changed.json()["response_format"]) == ({"seed": 3}, {"type": "json_object"})
    cleared = alice.client.patch(f"/api/conversations/{conversation_id}", json={"response_format": None})
    assert cleared.json()["response_format"] is None
    saved = Conversation.objects.get(pk=conversation_id)
    assert (saved.system_prompt, saved.parameters, saved.response_format) == ("", {"seed": 3}, None)


@pytest.mark.parametrize(
    ("body", "code", "param"),
    [
        ({"parameters": {"temperature": "hot"}}, "invalid_parameters", "temperature"),
        ({"parameters": {"temperature": 3}}, "invalid_parameters", "temperature"),
        ({"parameters": {"max_tokens": 0}}, "invalid_parameters", "max_tokens"),
        ({"parameters": {"seed": 1.5}}, "invalid_parameters", "seed"),
        ({"parameters": {"seed": 2**64}}, "invalid_parameters", "seed"),
        ({"parameters": {"seed": -(2**63) - 1}}, "invalid_parameters", "seed"),
        ({"parameters": {"stop": ["a", "b", "c", "d", "e"]}}, "invalid_parameters", "stop"),
        ({"parameters": {"reasoning_effort": "lots"}}, "invalid_parameters", "reasoning_effort"),
        ({"parameters": {"logit_bias": {}}}, "invalid_parameters", "logit_bias"),
        ({"parameters": []}, "invalid_parameters", "parameters"),
        ({"system_prompt": 5}, "invalid_system_prompt", "system_prompt"),
        ({"response_format": {"type": "text"}}, "invalid_response_format", "response_format"),
        ({"response_format": {"type": "json_schema", "json_schema": {"name": "x"}}}, "invalid_response_format", None),
        (
            {"response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": 5}}}},
            "invalid_response_format",
            "response_format",
        ),
    ],
)
def test_wrong_instructions_are_400_naming_them(alice, upstream, body, code, param):
    for response in (
        alice.client.post("/api/conversations", json=body),
        alice.client.patch(f"/api/conversations/{new_conversation(alice)}", json=body),
        send(alice, new_conversation(alice), **body),
    ):
        assert response.status_code == 400, response.text
        error = error_of(response)
        assert error["code"] == code and error["param"] == (param or "response_format")
    assert not Turn.objects.exists()


def test_the_catalogue_fixes_forbids_and_caps_parameters(alice, two_models, settings):
    settings.LLM_MODELS = {
        **settings.LLM_MODELS,
        "strict": {
            **settings.LLM_MODELS["small"],
            "max_output_tokens": 100,
            "parameters": {"temperature": 0.2},
            "forbid": ["seed"],
        },
    }
    for parameters, name in (
        ({"seed": 1}, "seed"),
        ({"temperature": 0.9}, "temperature"),
        ({"max_tokens": 101}, "max_tokens"),
    ):
        response = alice.client.post("/api/conversations", json={"model": "strict", "parameters": parameters})
        assert response.status_code == 400 and error_of(response)["param"] == name, response.text
        assert error_of(response)["code"] == "parameter_not_allowed"
        sent = send(alice, new_conversation(alice), model="strict", parameters=parameters)
        assert sent.status_code == 400 and error_of(sent)["param"] == name
    assert not Turn.objects.exists()
    # A conversation moved to the model keeps parameters it forbids: its next message is refused.
    conversation_id = new_conversation(alice, parameters={"seed": 1})
    moved = alice.client.patch(f"/api/conversations/{conversation_id}", json={"model": "strict"})
    assert moved.status_code == 400 and error_of(moved)["param"] == "seed"
    send(alice, new_conversation(alice, model="strict"), parameters={"max_tokens": 100})
    body = two_models.calls[-1].body
    assert (body["temperature"], body["max_tokens"]) == (0.2, 100)  # fixed, whatever the conversation says
    assert Turn.objects.get(role="assistant").parameters == {"temperature": 0.2, "max_tokens": 100}


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"parameters": {"warmth": 1}}, "unknown"),
        ({"parameters": []}, "must be an object"),
        ({"forbid": ["seed", "colour"]}, "forbid"),
        ({"forbid": "seed"}, "forbid"),
    ],
)
def test_an_entry_with_wrong_instructions_fails_at_start(settings, extra, message):
    settings.LLM_MODELS = {"m": {"model": "m", **extra}}
    with pytest.raises(CatalogueError, match="LLM_MODELS"):
        catalogue()


def test_an_entry_with_wrong_instructions_is_a_system_check_error(settings):
    settings.LLM_MODELS = {"m": {"model": "m", "parameters": {"temperature": 9}}}
    errors = [error for error in check_llm_settings(None) if error.id == "conversations.E011"]
    assert errors and "temperature" in errors[0].msg


def test_a_valid_answer_is_checked_and_parsed(alice, upstream):
    upstream.behaviour.text = '{"name": "Ada", "age": 36}'
    conversation_id = new_conversation(alice, response_format=PERSON)
    done = done_event(send(alice, conversation_id))
    assert done["output_valid"] is True and done["output"] == {"name": "Ada", "age": 36}
    assert saved_answer(conversation_id).output_valid is True
    turns = alice.client.get(f"/api/conversations/{conversation_id}").json()["turns"]
    assert [turn["output_valid"] for turn in turns] == [None, True]
    replayed = read_events(alice.client.get(f"/api/turns/{turns[1]['id']}/events"))
    assert replayed[-1]["data"]["output"] == {"name": "Ada", "age": 36}


@pytest.mark.parametrize(
    "text", ['{"name": "Ada"}', '{"name": "Ada", "age": "old"}', "Sure! Here is the JSON: {", '["not", "an object"]']
)
def test_an_invalid_answer_is_never_saved_as_valid(alice, upstream, text):
    upstream.behaviour.text = text
    conversation_id = new_conversation(alice, response_format=PERSON)
    done = done_event(send(alice, conversation_id))
    assert done["output_valid"] is False and "output" not in done
    answer = saved_answer(conversation_id)
    assert answer.output_valid is False and answer.content == text


def test_json_object_needs_only_an_object(alice, upstream):
    upstream.behaviour.text = '{"anything": [1, 2]}'
    conversation_id = new_conversation(alice, response_format={"type": "json_object"})
    assert done_event(send(alice, conversation_id))["output"] == {"anything": [1, 2]}
    assert output_check("[1]", {"type": "json_object"}) == (False, [1])


def test_without_a_response_format_nothing_is_checked(alice, upstream):
    conversation_id = new_conversation(alice)
    done = done_event(send(alice, conversation_id))
    assert "output_valid" not in done and saved_answer(conversation_id).output_valid is None


def test_a_conversation_started_from_a_prompt_records_it_and_uses_it(alice, upstream):
    Prompt.objects.create(
        name="lawyer",
        system_prompt="You are a careful lawyer.",
        parameters={"temperature": 0.1, "seed": 4},
        response_format={"type": "json_object"},
    )
    conversation_id = new_conversation(alice, prompt="lawyer", parameters={"seed": 5})
    shown = alice.client.get(f"/api/conversations/{conversation_id}").json()
    assert shown["prompt"] == "lawyer" and shown["parameters"] == {"temperature": 0.1, "seed": 5}
    upstream.behaviour.text = '{"advice": "none"}'
    assert done_event(send(alice, conversation_id))["output_valid"] is True
    body = upstream.calls[-1].body
    assert body["messages"][0] == {"role": "system", "content": "You are a careful lawyer."}
    assert (body["temperature"], body["seed"], body["response_format"]) == (0.1, 5, {"type": "json_object"})


def test_an_unknown_prompt_is_404(alice, upstream):
    response = alice.client.post("/api/conversations", json={"prompt": "nobody"})
    assert response.status_code == 404 and error_of(response)["code"] == "prompt_not_found"
    assert not Conversation.objects.exists()


def test_the_admin_keeps_prompts(staff_client):
    added = staff_client.post(
        "/admin/conversations/prompt/add/",
        {"name": "terse", "system_prompt": "Be terse.", "parameters": '{"temperature": 5}', "response_format": "null"},
    )
    assert added.status_code == 200 and not Prompt.objects.exists()  # the form says what is wrong
    assert b"temperature must be a number" in added.content
    added = staff_client.post(
        "/admin/conversations/prompt/add/",
        {"name": "terse", "system_prompt": "Be terse.", "parameters": '{"temperature": 0.5}', "response_format": ""},
    )
    assert added.status_code == 302, added.content[:2000]
    assert Prompt.objects.get(name="terse").parameters == {"temperature": 0.5}
    assert staff_client.get("/admin/conversations/prompt/").status_code == 200


def test_signed_in_users_list_the_prompts_to_start_from(alice, live):
    Prompt.objects.create(
        name="lawyer", system_prompt="\nYou are a careful lawyer.\nCite the law.", parameters={"seed": 4}
    )
    Prompt.objects.create(name="poet", system_prompt="Write " + "very " * 40 + "short poems.")
    listed = alice.client.get("/api/prompts").json()["prompts"]  # its shape checked against openapi.yaml
    assert listed[0] == {
        "name": "lawyer",
        "description": "You are a careful lawyer.",
        "parameters": {"seed": 4},
        "response_format": None,
    }
    assert listed[1]["name"] == "poet" and len(listed[1]["description"]) == 120
    assert listed[1]["description"].endswith("…")
    assert httpx.get(f"{live.url}/api/prompts").status_code == 401
