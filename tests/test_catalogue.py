"""The model catalogue: several models, each on its own upstream, chosen per
message or per conversation; a single LLM_MODEL setup as before."""

from decimal import Decimal

import httpx
import pytest

from conversations import catalogue
from conversations.checks import check_llm_settings
from conversations.models import Spend
from harness.fake_upstream import Behaviour, reasoning_script

from .helpers import read_events, saved_answer, send, wait_for_answer


@pytest.fixture
def three_models(two_models, settings, monkeypatch, fresh_prices):
    """two_models with more to tell apart: the small one's 60-token
    context, the big one's own key and prices, and the demo, offline."""
    monkeypatch.setenv("BIG_MODEL_KEY", "sk-big")
    small, big = settings.LLM_MODELS["small"], settings.LLM_MODELS["big"]
    settings.LLM_MODELS = {
        "small": {**small, "context_tokens": 60},
        "big": {**big, "api_key_env": "BIG_MODEL_KEY", "prices": {"input": 1, "output": 2}},
        "offline": {"provider": "demo", "model": "demo-1"},
    }
    return two_models


def test_one_llm_model_is_a_catalogue_of_one(alice, upstream):
    listed = alice.client.get("/api/models").json()
    assert listed["default"] == "fake-model" and [m["name"] for m in listed["models"]] == ["fake-model"]
    conversation_id = alice.new_conversation()
    send(alice, conversation_id)
    turn = saved_answer(conversation_id)
    assert (turn.model, turn.model_name) == ("fake-model", "fake-model")


def test_a_message_names_its_model_and_reaches_that_upstream(alice, three_models):
    listed = alice.client.get("/api/models").json()
    assert listed["default"] == "small" and [m["name"] for m in listed["models"]] == ["small", "big", "offline"]
    assert listed["auto"] is False
    assert "base_url" not in listed["models"][0] and "api_key_env" not in listed["models"][1]
    conversation_id = alice.new_conversation()
    response = alice.client.post(
        f"/api/conversations/{conversation_id}/messages", json={"content": "Hi", "model": "big"}
    )
    events = read_events(response)
    call = three_models.calls[-1]
    assert call.body["model"] == "gpt-big" and call.authorization == "Bearer sk-big"
    turn = saved_answer(conversation_id)
    assert (turn.model_name, turn.model) == ("big", "gpt-big")
    assert turn.cost == Decimal("0.000051") and events[-1]["data"]["cost"] == str(turn.cost)  # 11 x 1 + 20 x 2


def test_a_conversation_has_a_default_model_of_its_own(alice, three_models, settings):
    settings.LLM_DEMO_TOKENS_PER_SECOND, settings.LLM_DEMO_FIRST_TOKEN_DELAY = 0, 0  # the offline model, at once
    created = alice.client.post("/api/conversations", json={"model": "offline"}).json()
    assert created["model"] == "offline"
    send(alice, created["id"])
    assert not three_models.calls  # the demo answered, offline
    assert alice.client.patch(f"/api/conversations/{created['id']}", json={"model": "big"}).json()["model"] == "big"
    send(alice, created["id"], content="Again")
    assert three_models.calls[-1].body["model"] == "gpt-big"
    renamed = alice.client.patch(f"/api/conversations/{created['id']}", json={"title": "Kept model"}).json()
    assert (renamed["title"], renamed["model"]) == ("Kept model", "big")
    assert alice.client.patch(f"/api/conversations/{created['id']}", json={"model": ""}).json()["model"] is None


def test_an_unknown_model_is_refused_before_anything_is_saved(alice, three_models):
    conversation_id = alice.new_conversation()
    refused = alice.client.post(f"/api/conversations/{conversation_id}/messages", json={"content": "Hi", "model": "x"})
    assert refused.status_code == 404 and refused.json()["error"]["code"] == "model_not_found"
    assert "small, big, offline" in refused.json()["error"]["message"]
    assert alice.client.get(f"/api/conversations/{conversation_id}").json()["turns"] == []
    assert alice.client.post("/api/conversations", json={"model": 3}).status_code == 400


def test_each_model_has_its_own_prompt_budget(alice, three_models):
    three_models.behaviour = Behaviour(tokens=40)  # answers of ~40 tokens: the small model's 60 fit one at most
    conversation_id = alice.new_conversation()
    for _ in range(3):
        send(alice, conversation_id, content="Tell me more")
    small_prompt = three_models.calls[-1].body["messages"]
    send(alice, conversation_id, content="Tell me more", model="big")
    big_prompt = three_models.calls[-1].body["messages"]
    assert len(small_prompt) < len(big_prompt)


def test_each_model_caps_its_answers_and_the_api_sends_the_cap(alice, three_models, settings):
    settings.LLM_MAX_OUTPUT_TOKENS = 300
    settings.LLM_MODELS = {**settings.LLM_MODELS, "big": {**settings.LLM_MODELS["big"], "max_output_tokens": 900}}
    conversation_id = alice.new_conversation()
    send(alice, conversation_id)
    send(alice, conversation_id, model="big")
    assert [call.body["max_tokens"] for call in three_models.calls] == [300, 900]
    listed = {m["name"]: m["max_output_tokens"] for m in alice.client.get("/api/models").json()["models"]}
    assert listed == {"small": 300, "big": 900, "offline": 300}


@pytest.mark.parametrize(
    ("models", "default", "code"),
    [
        ({"a": {"model": "m", "colour": "red"}}, "", "conversations.E011"),
        ({"a": {"base_url": "http://x/v1"}}, "", "conversations.E011"),
        ({"a": {"model": "m"}}, "b", "conversations.E011"),
        ({"auto": {"model": "m"}}, "", "conversations.E011"),
        ({"a": {"model": "m", "provider": "nope"}}, "", "conversations.E012"),
        ({"a": {"model": "m", "provider": "openai", "base_url": "localhost"}}, "", "conversations.E013"),
        ({"a": {"model": "m", "provider": "openai", "api_key_env": "CHATSTREAM_TEST_UNSET"}}, "", "conversations.E014"),
    ],
)
def test_a_catalogue_that_cannot_work_fails_at_start_up(settings, models, default, code):
    settings.LLM_MODELS, settings.LLM_DEFAULT_MODEL = models, default
    assert code in {error.id for error in check_llm_settings(None)}


def test_an_output_cap_below_one_fails_at_start_up(settings):
    settings.LLM_MODELS = {"a": {"model": "m", "max_output_tokens": 0}}
    assert {error.msg for error in check_llm_settings(None)} == {
        "LLM_MODELS['a']: max_output_tokens must be at least 1, not 0."
    }
    settings.LLM_MODELS, settings.LLM_MAX_OUTPUT_TOKENS = {}, 0
    assert {error.msg for error in check_llm_settings(None)} == {
        "LLM_MAX_OUTPUT_TOKENS must be a positive whole number."
    }


def test_the_catalogue_follows_the_settings(settings):
    settings.LLM_MODELS = {"one": {"model": "m1"}}
    assert list(catalogue.catalogue()) == ["one"]
    settings.LLM_MODELS = {"two": {"model": "m2", "context_tokens": 100}}
    assert catalogue.entry_named(None).context_tokens == 100


# --- the whole answer as JSON ---------------------------------------------------------


def test_accept_json_answers_with_the_whole_turn(alice, upstream):
    upstream.behaviour = Behaviour(script=reasoning_script(["Hmm. "], ["Hello", " there"]))
    conversation_id = alice.new_conversation()
    response = alice.client.post(
        f"/api/conversations/{conversation_id}/messages", json={"content": "Hi"}, headers={"Accept": "application/json"}
    )
    turn = saved_answer(conversation_id)
    assert response.status_code == 200 and response.headers["Content-Type"] == "application/json"
    body = response.json()
    assert (body["id"], body["content"], body["reasoning"], body["finish_reason"]) == (
        str(turn.pk),
        "Hello there",
        "Hmm. ",
        "stop",
    )


def test_a_failed_model_call_is_a_gateway_error_with_the_saved_turn(alice, upstream, settings):
    settings.LLM_RETRIES = 0
    upstream.behaviour = Behaviour(status=500)
    conversation_id = alice.new_conversation()
    response = alice.client.post(
        f"/api/conversations/{conversation_id}/messages", json={"content": "Hi"}, headers={"Accept": "application/json"}
    )
    error = response.json()["error"]
    assert response.status_code == 502 and error["code"] == "upstream_status"
    assert error["turn"]["id"] == str(saved_answer(conversation_id).pk) and error["turn"]["status"] == "failed"


def test_a_json_client_that_leaves_cancels_its_answer(alice, upstream, live):
    upstream.behaviour = Behaviour(tokens=500, pace=0.01)
    conversation_id = alice.new_conversation()
    with pytest.raises(httpx.ReadTimeout):
        alice.client.post(
            f"/api/conversations/{conversation_id}/messages",
            json={"content": "Hi"},
            headers={"Accept": "application/json"},
            timeout=0.5,
        )
    turn = wait_for_answer(conversation_id)
    assert turn.finish_reason == "client_disconnected" and 0 < len(turn.content) < len("t0 ") * 500
    assert upstream.closed_within(1.0)


# --- routing: "model": "auto" ------------------------------------------------------------


@pytest.fixture
def router(three_models, settings):
    settings.LLM_ROUTER = {
        "small": "small",
        "big": "big",
        "rules": [
            {"if": {"min_chars": 200}, "use": "big"},
            {"if": {"pattern": "(?i)\\bprove\\b"}, "use": "big"},
            {"if": {"min_turns": 4}, "use": "big"},
        ],
    }
    return three_models


def auto(api_user, conversation_id: str, content: str) -> dict:
    send(api_user, conversation_id, content, model="auto")
    return api_user.client.get(f"/api/conversations/{conversation_id}").json()["turns"][-1]


def test_each_rule_sends_a_message_where_it_should(alice, router):
    conversation_id = alice.new_conversation()
    short = auto(alice, conversation_id, "Hi")
    assert short["route"] == {"model": "small", "reason": "no rule matched"} and short["model"] == "qwen3:4b"
    long = auto(alice, conversation_id, "x" * 250)
    assert long["route"] == {"model": "big", "reason": "rule 1: min_chars 200"} and long["model"] == "gpt-big"
    other = alice.new_conversation()
    proof = auto(alice, other, "Prove that it halts")
    assert proof["route"]["model"] == "big" and proof["route"]["reason"].startswith("rule 2: pattern")
    # `conversation_id` has 4 turns now: the third rule.
    assert auto(alice, conversation_id, "Hi again")["route"] == {"model": "big", "reason": "rule 3: min_turns 4"}
    assert router.calls[-1].body["model"] == "gpt-big"


@pytest.mark.parametrize(
    ("behaviour", "reason"),
    [
        (Behaviour(text="big", tokens=1), "classifier: big"),
        (Behaviour(text="hmm, not sure"), "classifier said 'hmm, not sure': default"),
        (Behaviour(status=500), "classifier failed (UpstreamStatusError): default"),
        # Past the classifier's 0.3 s; the answer, from the same model, waits it out.
        (Behaviour(status=200, first_token_delay=0.6), "classifier failed (TimeoutError): default"),
    ],
)
def test_the_classifier_decides_and_its_failure_is_the_default(alice, router, settings, behaviour, reason):
    settings.LLM_ROUTER = {**settings.LLM_ROUTER, "rules": [], "classify": True, "classify_timeout": 0.3}
    router.by_model["qwen3:4b"] = behaviour  # the small model classifies (and answers when chosen)
    conversation_id = alice.new_conversation()
    response = alice.client.post(
        f"/api/conversations/{conversation_id}/messages", json={"content": "Hi", "model": "auto"}
    )
    response.read()
    turn = saved_answer(conversation_id)
    assert turn.route["reason"] == reason
    assert turn.route["model"] == ("big" if reason == "classifier: big" else "small")
    classify_call = router.calls[0].body
    assert classify_call["stream"] is False and "one word" in classify_call["messages"][0]["content"]


def test_auto_without_a_router_is_not_a_model(alice, three_models):
    conversation_id = alice.new_conversation()
    refused = alice.client.post(
        f"/api/conversations/{conversation_id}/messages", json={"content": "Hi", "model": "auto"}
    )
    assert refused.status_code == 404 and "LLM_ROUTER" in refused.json()["error"]["message"]


@pytest.mark.parametrize(
    "router",
    [
        {"small": "small", "big": "nope"},
        {"small": "small", "big": "big", "rules": [{"if": {"pattern": "("}, "use": "big"}]},
        {"small": "small", "big": "big", "rules": [{"if": {"min_chars": 5}, "use": "huge"}]},
        {"small": "small", "big": "big", "rules": [{"if": {"colour": 5}, "use": "big"}]},
    ],
)
def test_a_router_that_cannot_work_fails_at_start_up(three_models, settings, router):
    settings.LLM_ROUTER = router
    assert "conversations.E015" in {error.id for error in check_llm_settings(None)}


def test_a_spent_budget_refuses_auto_before_the_classifier_is_asked(alice, router, settings, fresh_prices):
    settings.LLM_ROUTER = {**settings.LLM_ROUTER, "rules": [], "classify": True}
    settings.CHATSTREAM_DAILY_BUDGET = "10"  # room for the answer's reservation (4,096 tokens out at 0.001)
    settings.LLM_PRICES = {"qwen3:4b": {"input": "1000", "output": "1000"}}
    router.by_model["qwen3:4b"] = Behaviour(text="small", tokens=1)
    conversation_id = alice.new_conversation()
    send(alice, conversation_id, "Hi", model="auto")  # the classifier's call and the answer
    assert {spend.kind for spend in Spend.objects.all()} == {"routing", "answer"}
    assert Spend.objects.get(kind="routing").tokens_in == 11 and Spend.objects.get(kind="routing").cost > 0
    settings.CHATSTREAM_DAILY_BUDGET = str(sum(spend.cost for spend in Spend.objects.all()))  # spent, all of it
    calls = len(router.calls)
    refused = alice.client.post(
        f"/api/conversations/{conversation_id}/messages", json={"content": "Hi", "model": "auto"}
    )
    assert refused.status_code == 429 and len(router.calls) == calls  # not even the classifier
