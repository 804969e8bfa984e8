"""Staff review conversations in the admin."""

import dataclasses
from decimal import Decimal

import pytest
from django.contrib.auth import get_user_model
from django.urls import reverse

from conversations import services
from conversations.access import api_keys
from conversations.models import ApiKey, Conversation, ToolRun, Turn
from harness.fake_upstream import Behaviour, tool_calls_behaviour

from .helpers import exchange, log_in, saved_answer, start_turn, tool_loop_answer
from .test_tool_loop import answer_with, loop_answer, tools  # noqa: F401 (a fixture)


@pytest.fixture
def answered(owner, conversation) -> Conversation:
    """`conversation` with a message and an answer the client left."""
    exchange(
        owner,
        conversation,
        "Find me <b>this</b>",
        "An answer",
        finish_reason="client_disconnected",
        model="m-1",
        trace_id="trace-1",
        ttft_ms=40,
        duration_ms=900,
        tokens_in=5,
        tokens_out=12,
        tokens_estimated=True,
    )
    return Conversation.objects.get(pk=conversation.pk)


def test_conversation_list_search_and_filters(staff_client, answered):
    url = reverse("admin:conversations_conversation_changelist")
    assert staff_client.get(url).status_code == 200
    found = staff_client.get(url, {"q": "this"})
    assert found.status_code == 200 and str(answered.pk) in found.text
    assert staff_client.get(url, {"q": answered.owner.username}).context["cl"].result_count == 1
    assert staff_client.get(url, {"q": "nothing-like-it"}).context["cl"].result_count == 0
    filtered = staff_client.get(url, {"turns__finish_reason": "client_disconnected"})
    assert filtered.context["cl"].result_count == 1


def test_conversation_page_shows_turns_in_order_read_only(staff_client, answered):
    page = staff_client.get(reverse("admin:conversations_conversation_change", args=[answered.pk]))
    assert page.status_code == 200
    text = page.content.decode()
    assert text.index("Find me &lt;b&gt;this&lt;/b&gt;") < text.index("An answer")
    assert "trace-1" in text


def test_turn_list_has_metric_columns_and_filters(staff_client, answered):
    url = reverse("admin:conversations_turn_changelist")
    page = staff_client.get(url, {"finish_reason": "client_disconnected", "model": "m-1"})
    assert page.status_code == 200 and page.context["cl"].result_count == 1
    for column in ("column-ttft_ms", "column-tokens_out", "column-finish_reason"):
        assert column in page.text
    turn = Turn.objects.get(role="assistant")
    assert staff_client.get(reverse("admin:conversations_turn_change", args=[turn.pk])).status_code == 200


def test_api_keys_listed_and_revoked(staff_client, owner):
    key, _ = api_keys.create_api_key(user=owner, name="laptop")
    url = reverse("admin:conversations_apikey_changelist")
    assert key.prefix in staff_client.get(url).text
    staff_client.post(url, {"action": "revoke_keys", "_selected_action": [key.pk]})
    assert ApiKey.objects.get(pk=key.pk).revoked_at is not None


def test_admin_under_the_asgi_server(live):
    """Log-in, a changelist and an action with its message, through the real
    server: the session and messages middleware save in a thread there."""
    import httpx

    get_user_model().objects.create_superuser("staff", "staff@example.com", "pw-staff")
    key, _ = api_keys.create_api_key(user=get_user_model().objects.get(username="staff"), name="old")
    with httpx.Client(base_url=live.url, follow_redirects=True, timeout=30) as browser:
        log_in(browser, "/admin/login/?next=/admin/", "staff", "pw-staff")
        url = reverse("admin:conversations_apikey_changelist")
        assert key.prefix in browser.get(url).text
        token = browser.cookies["csrftoken"]
        done = browser.post(
            url, data={"action": "revoke_keys", "_selected_action": [key.pk], "csrfmiddlewaretoken": token}
        )
        assert done.status_code == 200 and "Revoked." in done.text
    assert ApiKey.objects.get(pk=key.pk).revoked_at is not None


def test_memory_is_shown_and_can_be_updated_now(staff_client, answered):
    from django_tasks_db.models import DBTaskResult

    from conversations.models import ConversationMemory

    ConversationMemory.objects.create(conversation=answered, summary="They talked about <relays>.", version=3)
    page = staff_client.get(reverse("admin:conversations_conversation_change", args=[answered.pk]))
    assert "They talked about &lt;relays&gt;." in page.content.decode()
    listing = staff_client.get(reverse("admin:conversations_conversation_changelist"))
    assert "empty v0" not in listing.content.decode() and "empty v3" in listing.content.decode()

    changelist = reverse("admin:conversations_conversation_changelist")
    done = staff_client.post(changelist, {"action": "update_memory_now", "_selected_action": [answered.pk]})
    assert done.status_code == 302
    job = DBTaskResult.objects.get()
    assert job.task_path == "conversations.memory.tasks.update_memory" and job.args_kwargs["args"] == [str(answered.pk)]
    jobs_page = staff_client.get(reverse("admin:django_tasks_database_dbtaskresult_changelist"))
    assert jobs_page.status_code == 200
    assert staff_client.get(reverse("admin:conversations_conversationmemory_changelist")).status_code == 200


@pytest.fixture
def thinking_turn(db, settings) -> Turn:
    """An answer with reasoning, a tool call and a cost, saved as the relay saves it."""
    settings.LLM_PRICES = {"m-2": {"input": 1, "output": 4}}
    owner = get_user_model().objects.create_user("frank")
    key, _ = api_keys.create_api_key(user=owner, name="ci")
    prepared = start_turn(owner=owner, conversation_id=services.create_conversation(owner=owner).pk, content="Weather?")
    prepared = dataclasses.replace(prepared, api_key_id=key.pk)
    call = {"id": "call_9", "name": "get_weather", "arguments": '{"city": "<Oslo>"}'}
    services.record_answer(
        prepared=prepared,
        answer=services.Answer(
            content="",
            reasoning="I need <the> weather first.",
            tool_calls=[call],
            output_runs=[["reasoning", 27], ["tool_call", 60]],
            finish_reason="tool_calls",
            model="m-2",
            provider="openai",
            trace_id="trace-2",
            ttft_ms=40,
            ttft_answer_ms=None,
            duration_ms=900,
            tokens_in=1000,
            tokens_out=250,
            tokens_estimated=False,
            usage_source="reported",
        ),
    )
    return Turn.objects.get(role="assistant", trace_id="trace-2")


def test_a_turn_shows_its_reasoning_tool_calls_and_cost(staff_client, thinking_turn):
    assert thinking_turn.cost == Decimal("0.002")  # 1000 x 1 + 250 x 4, per million
    page = staff_client.get(reverse("admin:conversations_turn_change", args=[thinking_turn.pk])).content.decode()
    assert "I need &lt;the&gt; weather first." in page
    assert "get_weather" in page and "&quot;city&quot;: &quot;&lt;Oslo&gt;&quot;" in page  # laid out, escaped
    listing = staff_client.get(reverse("admin:conversations_turn_changelist"), {"usage_source": "reported"})
    assert listing.context["cl"].result_count == 1 and "column-cost" in listing.text
    conversations = staff_client.get(reverse("admin:conversations_conversation_changelist"))
    assert "column-spend" in conversations.text and "0.0020000000" in conversations.text


def test_a_single_call_with_tool_calls_shows_its_own_usage(staff_client, thinking_turn):
    page = staff_client.get(reverse("admin:conversations_turn_change", args=[thinking_turn.pk])).content.decode()
    assert in_order(page, "Model call 1 · m-2", "1000 in / 250 out", "cost 0.0020000000", "weather", "get_weather")
    assert "No result saved." in page and "less the earlier calls" not in page


def test_the_dashboard_shows_spend_by_day_model_user_and_key(staff_client, thinking_turn):
    page = staff_client.get(reverse("admin:conversations_turn_dashboard"))
    tables = {table["title"]: table["rows"] for table in page.context["spend"]}
    assert [row["label"] for row in tables["Model"]] == ["m-2"] and tables["Model"][0]["spend"] == Decimal("0.002")
    assert [row["label"] for row in tables["User"]] == ["frank"]
    assert [row["label"] for row in tables["API key"]] == [thinking_turn.api_key.prefix]
    assert "Time to first answer token" in page.content.decode()


def test_the_ledger_is_listed_read_only_and_outlives_the_conversation(staff_client, thinking_turn):
    thinking_turn.conversation.delete()
    listing = staff_client.get(reverse("admin:conversations_spend_changelist"), {"kind": "answer"})
    assert listing.context["cl"].result_count == 1 and "0.0020000000" in listing.text
    assert staff_client.get(reverse("admin:conversations_spend_add")).status_code == 403


def test_prices_and_budgets_are_edited_in_the_admin(staff_client, thinking_turn):
    from conversations.spend import pricing

    added = staff_client.post(
        reverse("admin:conversations_modelprice_add"), {"model": "m-2", "input": "3", "cached_input": "", "output": "6"}
    )
    assert added.status_code == 302 and pricing.prices()["m-2"].output == Decimal(6)
    owner = thinking_turn.conversation.owner
    budget_url = reverse("admin:conversations_budget_add")
    both = staff_client.post(budget_url, {"user": owner.pk, "api_key": thinking_turn.api_key_id, "period": "day"})
    assert both.status_code == 200  # a budget is a user's or a key's, not both
    made = staff_client.post(budget_url, {"user": owner.pk, "period": "month", "max_spend": "1"})
    assert made.status_code == 302
    listing = staff_client.get(reverse("admin:conversations_budget_changelist")).content.decode()
    assert "0.0020 · 1250 tokens" in listing


def test_the_model_catalogue_and_router_are_shown_read_only(staff_client, settings, monkeypatch):
    monkeypatch.setenv("BIG_KEY", "sk-x")
    settings.LLM_MODELS = {
        "small": {"provider": "openai", "base_url": "http://127.0.0.1:9/v1", "model": "qwen3:4b"},
        "big": {
            "provider": "openai",
            "model": "gpt-big",
            "api_key_env": "BIG_KEY",
            "prices": {"input": 1, "output": 4},
        },
    }
    settings.LLM_ROUTER = {"small": "small", "big": "big", "rules": [{"if": {"min_chars": 500}, "use": "big"}]}
    page = staff_client.get(reverse("admin:conversations_turn_models")).content.decode()
    assert "qwen3:4b" in page and "(default)" in page and "$BIG_KEY set" in page and "sk-x" not in page
    assert "min_chars 500 → big" in page


def _answered(owner, content: str, **fields) -> Turn:
    prepared = exchange(owner, services.create_conversation(owner=owner), "A question", content, **fields)
    return Turn.objects.get(pk=prepared.answer_turn_id)


def test_the_review_queue_puts_what_needs_a_look_first(staff_client, owner):
    liked = _answered(owner, "A liked answer")
    fine = _answered(owner, "An answer nobody rated")
    disliked = _answered(owner, "A disliked answer")
    failed = _answered(owner, "", finish_reason="error", error_code="upstream_timeout")
    masked = _answered(owner, "Write to [email]", redactions=1)
    services.rate_answer(owner=owner, turn_id=liked.pk, rating="up", comment="")
    services.rate_answer(owner=owner, turn_id=disliked.pk, rating="down", comment="It made up a date")

    url = reverse("admin:conversations_reviewitem_changelist")
    page = staff_client.get(url)
    listed = [turn.pk for turn in page.context["cl"].result_list]
    assert set(listed[:3]) == {disliked.pk, failed.pk, masked.pk}  # then the newest of the rest
    assert listed[3:] == [fine.pk, liked.pk]
    assert "It made up a date" in page.text and "upstream_timeout" in page.text and "1 masked" in page.text
    assert page.context["cl"].result_count == 5  # answers only, never questions

    by_feedback = staff_client.get(url, {"feedback": "down"}).context["cl"].result_list
    assert [turn.pk for turn in by_feedback] == [disliked.pk]
    assert staff_client.get(url, {"feedback": "none"}).context["cl"].result_count == 3
    assert staff_client.get(url, {"q": "made up"}).context["cl"].result_count == 1  # comments are searched
    assert staff_client.get(url, {"user": owner.pk, "model_name": "", "status": "failed"}).status_code == 200

    # Staff record a verdict and notes; what was said stays as it was.
    change = reverse("admin:conversations_reviewitem_change", args=[disliked.pk])
    form = staff_client.get(change)
    assert form.status_code == 200 and "A disliked answer" in form.text
    saved = staff_client.post(change, {"review_status": "needs_work", "review_notes": "Dates need a source"})
    assert saved.status_code == 302
    disliked.refresh_from_db()
    assert (disliked.review_status, disliked.review_notes) == ("needs_work", "Dates need a source")
    assert disliked.content == "A disliked answer"
    assert staff_client.get(url, {"review_status__exact": "needs_work"}).context["cl"].result_count == 1


@pytest.fixture
def tool_answer(staff_client, owner, settings) -> Turn:
    settings.LLM_PRICES = {"m-2": {"input": 1, "output": 4}}
    return tool_loop_answer(owner, decider=get_user_model().objects.get(username="root"))


def in_order(page: str, *texts: str) -> bool:
    """Are `texts` all in the page's steps, each after the one before?"""
    steps, at = page[page.index('<ol class="steps">') :], 0
    for text in texts:
        at = steps.find(text, at)
        assert at != -1, f"{text!r} is missing, or not where it should be"
        at += len(text)
    return True


def test_a_tool_answer_shows_its_model_calls_in_order(staff_client, tool_answer):
    page = staff_client.get(reverse("admin:conversations_turn_change", args=[tool_answer.pk])).content.decode()
    assert in_order(
        page,
        "Model call 1 · m-2",
        "100 in / 20 out",
        "cost 0.0001800000",
        "Let me work it out.",
        "&quot;a&quot;: 2",
        "Result in 12 ms",
        "Denied by root at ",
        ": Not today",
        "Model call 2 · m-2",
        "200 in / 10 out",
        "Now the weather.",
        "Error after 30000 ms",
        "Timed out &lt;b&gt;badly&lt;/b&gt;",
        "Model call 3 · m-2",
        "300 in / 15 out",
        "cost 0.0003600000",
        "(the turn's total less the earlier calls')",
        "2 + 3 = 5",
    )
    assert "&lt;script&gt;alert(1)&lt;/script&gt;5" in page and "<script>alert(1)" not in page
    assert "<b>badly</b>" not in page


@pytest.mark.usefixtures("tools")
def test_a_live_tool_answer_shows_as_it_was_saved(staff_client, alice, upstream):
    calls = [("c1", "add", {"a": 2, "b": 3}), ("c2", "broken", {})]
    answer_with(upstream, tool_calls_behaviour(*calls, text="Let me add. "), Behaviour(text="Five."))
    turn = saved_answer(loop_answer(alice)[0])
    page = staff_client.get(reverse("admin:conversations_turn_change", args=[turn.pk])).content.decode()
    assert in_order(
        page,
        "Model call 1 · fake-model",
        "11 in / ",  # the step's row: the fake upstream reports 11 prompt tokens a call
        "Let me add.",
        "<code>add</code>",
        "Result in ",
        "<code>broken</code>",
        "Error after ",
        "out of stock",
        "Model call 2 · fake-model",
        "11 in / ",
        "(the turn's total less the earlier calls')",
        "Five.",
    )


def test_a_long_tool_output_is_folded(staff_client, tool_answer):
    tool_answer.tool_results[0]["output"] = "x" * 5000
    tool_answer.save(update_fields=["tool_results"])
    page = staff_client.get(reverse("admin:conversations_turn_change", args=[tool_answer.pk])).content.decode()
    assert "<details><summary>5000 characters</summary>" in page


def test_an_answer_without_tools_has_no_steps(staff_client, answered):
    turn = Turn.objects.get(role="assistant")
    page = staff_client.get(reverse("admin:conversations_turn_change", args=[turn.pk])).content.decode()
    assert "Model call 1" not in page and "Steps" not in page


def test_the_review_page_shows_the_steps(staff_client, tool_answer):
    page = staff_client.get(reverse("admin:conversations_reviewitem_change", args=[tool_answer.pk])).content.decode()
    assert in_order(page, "Model call 1", "Denied by root", "Model call 3")
    assert "&lt;script&gt;alert(1)&lt;/script&gt;5" in page


def _run(turn: Turn, call_id: str, **fields) -> None:
    ToolRun.objects.create(turn_id=turn.pk, conversation_id=turn.conversation_id, call_id=call_id, name="t", **fields)


def test_the_review_queue_filters_by_what_the_tools_did(staff_client, owner, tool_answer):
    plain = _answered(owner, "No tools")
    approved = _answered(owner, "An approved call that worked")
    _run(approved, "c1", output="ok", approval=ToolRun.Approval.APPROVED)
    failed = _answered(owner, "A tool that failed")
    _run(failed, "c1", output="ok")
    _run(failed, "c2", error="Boom")
    undecided = _answered(owner, "Nobody decided")
    _run(undecided, "c1", error="No decision was made", approval=ToolRun.Approval.UNDECIDED)

    def listed(choice: str) -> set:
        page = staff_client.get(reverse("admin:conversations_reviewitem_changelist"), {"tools": choice})
        return {turn.pk for turn in page.context["cl"].result_list}

    assert listed("failed") == {tool_answer.pk, failed.pk}  # a denial or no decision is not a failure
    assert listed("denied") == {tool_answer.pk}
    assert listed("approval") == {tool_answer.pk, approved.pk, undecided.pk}
    assert listed("any") == {tool_answer.pk, approved.pk, failed.pk, undecided.pk}
    assert plain.pk in listed("")
