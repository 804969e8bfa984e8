"""A tool that needs approval (issue 25): the answer asks, waits with its
stream open, and runs the tool only when the user approves; each step is
saved when its tools have run; a budget reached between steps ends the
answer. Through the live server and the fake upstream."""

import contextlib

import pytest
from django.utils import timezone

from conversations import recovery, tool_runs
from conversations.models import AnswerStep, Spend, ToolRun, Turn
from harness.fake_upstream import Behaviour, tool_calls_behaviour

from .helpers import read_events, saved_answer, sse_events, start_turn, stream, wait_for
from .test_tool_loop import RUNS, answer_with, joined, kinds, loop_answer, tools  # noqa: F401 (a fixture)

pytestmark = pytest.mark.usefixtures("tools")


def until(events, kind: str) -> list[dict]:
    """The events up to and including the first of `kind`."""
    seen = [next(events)]
    while seen[-1]["event"] != kind:
        seen.append(next(events))
    return seen


def decide(api_user, turn_id: str, call_id: str, approved: bool, **more):
    body = {"tool_call_id": call_id, "approved": approved, **more}
    return api_user.client.post(f"/api/turns/{turn_id}/approvals", json=body)


def guarded_answer(upstream) -> None:
    answer_with(upstream, tool_calls_behaviour(("g1", "guarded", {}), text="Checking. "), Behaviour(text="Done."))


@contextlib.contextmanager
def waiting_answer(api_user, upstream):
    """An answer asking to run `guarded`, streamed up to its request:
    (conversation id, turn id, the rest of its events to come)."""
    guarded_answer(upstream)
    conversation_id = api_user.new_conversation()
    with stream(api_user, conversation_id, "Go") as response:
        events = sse_events(response)
        turn_id = until(events, "approval_request")[0]["data"]["turn_id"]
        yield conversation_id, turn_id, events


def test_an_approved_call_runs_and_the_answer_goes_on(alice, upstream):
    guarded_answer(upstream)
    conversation_id = alice.new_conversation()
    with stream(alice, conversation_id, "Go") as response:
        events = sse_events(response)
        seen = until(events, "approval_request")
        turn_id, request = seen[0]["data"]["turn_id"], seen[-1]["data"]
        assert request == {"id": "g1", "name": "guarded", "arguments": "{}"} and RUNS == []
        decided = decide(alice, turn_id, "g1", True)
        rest = list(events)
    assert decided.status_code == 200, decided.text
    body = decided.json()
    assert (body["tool_call_id"], body["approved"], body["decided_by"]) == ("g1", True, "alice")
    assert kinds(joined(rest)) == ["tool_result", "step", "delta", "done"]
    assert rest[0]["data"]["output"] == "ran" and RUNS == ["guarded"]

    turn = saved_answer(conversation_id)
    assert turn.finish_reason == "stop" and turn.content == "Checking. Done."
    [approval] = turn.approvals
    assert approval["approved"] is True and approval["decided_by"] == "alice" and approval["decided_at"]
    run = ToolRun.objects.get(turn_id=turn_id)
    assert (run.approval, run.decided_by.username, run.output) == ("approved", "alice", "ran")
    # The saved turn replays as it streamed, the request in its place.
    assert read_events(alice.client.get(f"/api/turns/{turn_id}/events")) == joined(seen + rest)
    assert alice.client.get(f"/api/conversations/{conversation_id}").json()["turns"][1]["approvals"] == [approval]


def test_a_denied_call_is_not_run_and_the_model_is_told_why(alice, upstream):
    with waiting_answer(alice, upstream) as (conversation_id, turn_id, events):
        assert decide(alice, turn_id, "g1", False, reason="Not today").status_code == 200
        rest = list(events)
    assert "declined" in rest[0]["data"]["error"] and "Not today" in rest[0]["data"]["error"]
    assert RUNS == []
    tool_message = upstream.calls[1].body["messages"][-1]
    assert tool_message["role"] == "tool" and "Not today" in tool_message["content"]
    [approval] = saved_answer(conversation_id).approvals
    assert approval["approved"] is False and approval["reason"] == "Not today"


def test_decisions_are_refused_unless_the_users_call_waits(alice, bob, upstream):
    with waiting_answer(alice, upstream) as (_, turn_id, events):
        assert decide(bob, turn_id, "g1", True).status_code == 404  # not bob's
        assert decide(alice, turn_id, "nope", True).json()["error"]["code"] == "approval_not_pending"
        assert decide(alice, turn_id, "g1", "yes").json()["error"]["code"] == "invalid_decision"
        assert decide(alice, turn_id, "g1", True).status_code == 200
        again = decide(alice, turn_id, "g1", False)  # decided already
        list(events)
    assert again.status_code == 409 and again.json()["error"]["code"] == "approval_not_pending"
    assert decide(alice, turn_id, "g1", True).status_code == 409  # the answer has ended
    assert RUNS == ["guarded"]


def test_no_decision_in_time_ends_the_answer_as_approval_timeout(alice, upstream, settings):
    settings.CHATSTREAM_APPROVAL_TIMEOUT_SECONDS = 0.5
    guarded_answer(upstream)
    conversation_id, events = loop_answer(alice)
    assert kinds(joined(events)) == ["start", "delta", "tool_call", "approval_request", "done"]
    assert events[-1]["data"]["finish_reason"] == "approval_timeout"
    turn = saved_answer(conversation_id)
    assert (turn.finish_reason, turn.status) == ("approval_timeout", "interrupted")
    assert turn.approvals[0]["approved"] is None and len(upstream.calls) == 1 and RUNS == []
    run = ToolRun.objects.get(turn_id=turn.pk)
    assert run.approval == "undecided" and run.ended_at
    assert decide(alice, str(turn.pk), "g1", True).status_code == 409


def test_the_client_may_leave_and_come_back_while_the_answer_waits(alice, upstream):
    guarded_answer(upstream)  # CHATSTREAM_ON_DISCONNECT is `cancel`: waiting for a person is not generating
    conversation_id = alice.new_conversation()
    with stream(alice, conversation_id, "Go") as response:
        seen = until(sse_events(response), "approval_request")
    turn_id = seen[0]["data"]["turn_id"]
    with alice.client.stream("GET", f"/api/turns/{turn_id}/events") as back:
        events = sse_events(back)
        replayed = until(events, "approval_request")
        assert decide(alice, turn_id, "g1", True).status_code == 200
        rest = list(events)
    assert joined(replayed) == joined(seen)
    assert rest[-1]["data"]["finish_reason"] == "stop" and RUNS == ["guarded"]
    assert saved_answer(conversation_id).content == "Checking. Done."


def test_an_approved_answer_nobody_reads_is_kept_for_its_grace_period(alice, upstream, settings):
    settings.CHATSTREAM_RESUME_GRACE_SECONDS = 0.3
    answer_with(upstream, tool_calls_behaviour(("g1", "guarded", {})), Behaviour(tokens=400, pace=0.01))
    conversation_id = alice.new_conversation()
    with stream(alice, conversation_id, "Go") as response:
        turn_id = until(sse_events(response), "approval_request")[0]["data"]["turn_id"]
    assert decide(alice, turn_id, "g1", True).status_code == 200  # and nobody comes back to read it
    wait_for(lambda: Turn.objects.filter(pk=turn_id).exists(), 10, "the answer saved after its grace period")
    assert Turn.objects.get(pk=turn_id).finish_reason == "cancelled" and RUNS == ["guarded"]


def test_a_stop_while_the_answer_waits_closes_the_request(alice, upstream):
    with waiting_answer(alice, upstream) as (_, turn_id, events):
        assert alice.client.post(f"/api/turns/{turn_id}/cancel").status_code == 200
        rest = list(events)
    assert rest[-1]["data"]["finish_reason"] == "cancelled"
    assert ToolRun.objects.get(turn_id=turn_id).approval == "undecided"
    assert decide(alice, turn_id, "g1", True).status_code == 409 and RUNS == []


def test_each_step_is_saved_when_its_tools_have_run(alice, upstream):
    answer_with(
        upstream,
        tool_calls_behaviour(("c1", "add", {"a": 2, "b": 3}), text="Adding. "),
        tool_calls_behaviour(("c2", "add", {"a": 5, "b": 5})),
        Behaviour(text="Ten."),
    )
    conversation_id, _ = loop_answer(alice)
    turn = saved_answer(conversation_id)
    steps = list(AnswerStep.objects.filter(turn_id=turn.pk))
    assert [step.n for step in steps] == [1, 2]
    assert [kind for kind, _ in steps[0].output] == ["delta", "tool_call", "tool_result"]
    assert [kind for kind, _ in steps[1].output] == ["step", "tool_call", "tool_result"]
    assert steps[0].tokens_in == 11 and steps[0].usage_source == "reported"
    assert turn.tokens_in == 33  # three model calls


def test_a_budget_reached_between_steps_ends_the_answer(alice, upstream, settings, fresh_prices):
    settings.LLM_PRICES = {"fake-model": {"input": "1000", "output": "1000"}}  # 18 tokens: 0.018 a call
    # The first call's reservation (its prompt, about 22 tokens estimated,
    # and 20 out: 0.042) fits; the second's, with the first call's 0.013 spent, does not.
    settings.CHATSTREAM_DAILY_BUDGET = "0.05"
    settings.CHATSTREAM_RESERVE_TOKENS = 20
    answer_with(upstream, tool_calls_behaviour(("c1", "add", {"a": 1, "b": 1})), Behaviour(text="Never."))
    conversation_id, events = loop_answer(alice)
    assert kinds(events) == ["start", "tool_call", "tool_result", "done"]
    assert events[-1]["data"]["finish_reason"] == "budget_exceeded"
    turn = saved_answer(conversation_id)
    assert turn.finish_reason == "budget_exceeded" and len(upstream.calls) == 1
    assert turn.cost is not None and turn.cost > 0  # the call made is paid for


def test_an_answer_lost_without_redis_keeps_its_ended_steps(owner, conversation):
    """A process that died mid-loop (one process, no Redis): at the next
    start its answer is saved with the steps that had ended, and what they cost."""
    lost = start_turn(owner=owner, conversation_id=conversation.pk, content="Killed mid-loop")
    step = {"turn_id": lost.answer_turn_id, "conversation": conversation, "model": "fake-model"}
    call = '{"id":"c1","name":"add","arguments":"{}"}'
    result = '{"id":"c1","name":"add","output":"2","duration_ms":1}'
    AnswerStep.objects.create(
        **step,
        n=1,
        output=[["delta", "Adding. "], ["tool_call", call], ["tool_result", result]],
        tokens_in=11,
        tokens_out=7,
    )
    ToolRun.objects.create(
        turn_id=lost.answer_turn_id, conversation=conversation, call_id="g1", name="guarded", approval="pending"
    )
    assert recovery.save_lost_answers(before=timezone.now()) == 1
    turn = Turn.objects.get(pk=lost.answer_turn_id)
    assert (turn.error_code, turn.content, turn.tokens_in, turn.tokens_out) == ("process_lost", "Adding. ", 11, 7)
    assert [r["output"] for r in turn.tool_results] == ["2"] and turn.usage_source == "estimated"
    assert Spend.objects.get(turn_id=lost.answer_turn_id).tokens_out == 7  # the steps' cost is in the ledger
    assert ToolRun.objects.get(call_id="g1").approval == "undecided"  # never to be run


@pytest.mark.django_db(transaction=True)
def test_a_call_of_a_deleted_conversation_is_not_run(owner, conversation):
    prepared = start_turn(owner=owner, conversation_id=conversation.pk, content="Go")
    conversation.delete()
    call = {"prepared": prepared, "id": "c1", "name": "add", "arguments": "{}"}
    assert tool_runs.claim_call(**call, approval=False).error == tool_runs.CONVERSATION_GONE
    assert tool_runs.decision_on(turn_id=prepared.answer_turn_id, call_id="c1").approved is False
