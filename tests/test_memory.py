"""Conversation memory: the on-commit hook, the real database worker,
retries against the fake upstream, concurrent updates, the prompt budget."""

import itertools
import os
import signal
import threading
import time

import orjson
import pytest
from django.core.management import call_command
from django.db import connection, transaction
from django_tasks_db.models import DBTaskResult

from conversations import services
from conversations.guardrails.refusals import record_refusal
from conversations.memory import update_memory
from conversations.memory.leases import take_up_lost_jobs
from conversations.models import Conversation, ConversationMemory, Spend, TaskLease, Turn
from conversations.providers.demo import DemoProvider, extract_memory
from harness.fake_upstream import Behaviour
from harness.servers import PYTHON, popen, stop

from .helpers import answer, exchange, process_env, start_turn, wait_for

# The memory's job is queued when the answer commits, and run by workers in
# other threads and processes: every test here commits for real.
pytestmark = pytest.mark.django_db(transaction=True)


def run_worker() -> None:
    """The real `db_worker`, until no job is ready."""
    call_command("db_worker", "--batch", "--interval", "0", "--no-startup-delay", "--no-reload")


def memory_of(conversation) -> ConversationMemory:
    return ConversationMemory.objects.get(conversation=conversation)


def test_a_job_queued_under_the_tasks_old_path_still_runs(owner, conversation):
    exchange(owner, conversation, "What is a relay?")
    DBTaskResult.objects.update(task_path="conversations.memory.update_memory")  # queued before the move
    run_worker()
    assert DBTaskResult.objects.get().status == "SUCCESSFUL" and memory_of(conversation).version == 1


def test_a_committed_answer_queues_one_job_that_the_worker_runs(owner, conversation):
    exchange(owner, conversation, "My name is Mia and I live in Lyon. What is a relay?")
    jobs = DBTaskResult.objects.all()
    assert [job.task_path for job in jobs] == ["conversations.memory.tasks.update_memory"]

    run_worker()

    memory = memory_of(conversation)
    assert (memory.version, memory.covers_position, memory.status) == (1, 1, "current")
    assert "What is a relay?" in memory.summary
    assert memory.facts == ["My name is Mia and I live in Lyon"]
    assert memory.covers_turn_id == Turn.objects.get(conversation=conversation, position=1).pk
    assert DBTaskResult.objects.get().status == "SUCCESSFUL"


def test_a_rolled_back_answer_queues_nothing(owner, conversation):
    prepared = start_turn(owner=owner, conversation_id=conversation.pk, content="q")
    with pytest.raises(RuntimeError), transaction.atomic():
        services.record_answer(prepared=prepared, answer=answer())
        raise RuntimeError("the surrounding work failed")
    assert not DBTaskResult.objects.exists()
    assert not Turn.objects.filter(role="assistant").exists()


def test_an_update_for_covered_turns_does_nothing(owner, conversation):
    exchange(owner, conversation, "first")
    assert update_memory.call(str(conversation.pk))["outcome"] == "updated"
    assert update_memory.call(str(conversation.pk)) == {"outcome": "up to date", "version": 1}
    assert memory_of(conversation).version == 1


def test_an_answer_still_streaming_is_not_skipped(owner, conversation):
    slow = start_turn(owner=owner, conversation_id=conversation.pk, content="slow question")
    exchange(owner, conversation, "fast question")  # positions 2 and 3, saved before 1
    update_memory.call(str(conversation.pk))
    assert memory_of(conversation).covers_position == 0  # stops before the missing answer

    services.record_answer(prepared=slow, answer=answer(content="slow reply", finish_reason="stop"))
    update_memory.call(str(conversation.pk))
    memory = memory_of(conversation)
    assert memory.covers_position == 3 and "fast question" in memory.summary


class GatedProvider(DemoProvider):
    """The demo memory, but the first call waits until the test lets it go."""

    arrived = threading.Event()
    release = threading.Event()
    calls = 0

    async def remember(self, summary, facts, turns):
        GatedProvider.calls += 1
        if GatedProvider.calls == 1:
            GatedProvider.arrived.set()
            GatedProvider.release.wait(timeout=10)
        return await super().remember(summary, facts, turns)


def test_concurrent_updates_lose_nothing(owner, conversation, settings):
    settings.LLM_PROVIDER = "tests.test_memory.GatedProvider"
    exchange(owner, conversation, "early question")

    def slow_update() -> None:
        try:
            update_memory.call(str(conversation.pk))
        finally:
            connection.close()  # this thread's own

    slow = threading.Thread(target=slow_update)
    slow.start()  # reads version 0 with turns 0-1, then waits inside the model call
    assert GatedProvider.arrived.wait(timeout=10)

    exchange(owner, conversation, "later question")
    update_memory.call(str(conversation.pk))  # meanwhile: version 1, covering turns 0-3
    GatedProvider.release.set()
    slow.join(timeout=10)

    # The slow update's write matched no row; it read again and found nothing new.
    memory = memory_of(conversation)
    assert (memory.version, memory.covers_position) == (1, 3)
    assert "early question" in memory.summary and "later question" in memory.summary


def test_model_failures_are_retried_with_backoff_then_recorded(owner, conversation, upstream, settings):
    settings.CHATSTREAM_MEMORY_ATTEMPTS = 3
    settings.CHATSTREAM_MEMORY_BACKOFF_SECONDS = 0  # no waiting in tests; the schedule is run_after
    upstream.behaviour = Behaviour(status=503)
    exchange(owner, conversation, "question")

    run_worker()  # the first job, then each retry as it becomes ready

    assert len(upstream.calls) == 3 and all(call.body["stream"] is False for call in upstream.calls)
    memory = memory_of(conversation)
    assert (memory.status, memory.failed_attempts, memory.version) == ("failed", 3, 0)
    assert memory.error.startswith("upstream_status")
    statuses = list(DBTaskResult.objects.order_by("enqueued_at").values_list("status", flat=True))
    assert statuses == ["SUCCESSFUL", "SUCCESSFUL", "FAILED"]  # two retries queued, then the failure

    upstream.behaviour = Behaviour(text='{"summary": "They asked a question.", "facts": ["Likes tea"]}')
    exchange(owner, conversation, "another")  # the next answer's update covers everything
    run_worker()
    memory = memory_of(conversation)
    assert (memory.status, memory.summary, memory.facts, memory.covers_position) == (
        "current",
        "They asked a question.",
        ["Likes tea"],
        3,
    )
    assert memory.model == "fake-model"


def test_a_question_a_guardrail_refused_is_not_remembered(owner, conversation, upstream):
    refused = start_turn(owner=owner, conversation_id=conversation.pk, content="Will it rain on Tuesday?")
    record_refusal(prepared=refused, reason="No weather.", trace_id="t")
    upstream.behaviour = Behaviour(text='{"summary": "Sums.", "facts": []}')
    exchange(owner, conversation, "What is 2 + 2?")
    run_worker()
    assert memory_of(conversation).summary == "Sums."
    sent = orjson.dumps(upstream.calls[-1].body["messages"]).decode()
    assert "What is 2 + 2?" in sent and "Tuesday" not in sent


def test_a_reply_without_json_fails_the_attempt(owner, conversation, upstream, settings):
    settings.CHATSTREAM_MEMORY_ATTEMPTS = 1
    upstream.behaviour = Behaviour(text="Sure! Here is a summary.")
    exchange(owner, conversation, "question")
    run_worker()
    memory = memory_of(conversation)
    assert (memory.status, memory.summary) == ("failed", "")
    assert memory.error.startswith("upstream_protocol")


def test_prompt_holds_the_memory_and_fits_the_budget(alice, upstream, settings):
    settings.LLM_CONTEXT_TOKENS = 1000
    upstream.behaviour = Behaviour(tokens=2)
    conversation = Conversation.objects.get(pk=alice.new_conversation())
    turns = [
        Turn(conversation=conversation, position=p, role=("user", "assistant")[p % 2], content=f"turn {p} " * 20)
        for p in range(200)
    ]
    for earlier, turn in itertools.pairwise(turns):
        turn.parent = earlier.pk  # one branch, as messages make it
    Turn.objects.bulk_create(turns)
    Conversation.objects.filter(pk=conversation.pk).update(next_position=200, leaf=turns[-1].pk)
    ConversationMemory.objects.create(
        conversation=conversation, summary="MEMORY-MARK: they talked at length.", version=1, covers_position=199
    )

    alice.client.post(f"/api/conversations/{conversation.pk}/messages", json={"content": "and now?"}).read()

    sent = upstream.calls[-1].body["messages"]
    assert sent[0]["role"] == "system" and "MEMORY-MARK" in sent[1]["content"]
    assert sent[-1] == {"role": "user", "content": "and now?"}
    assert 10 < len(sent) < 60  # the newest turns only, not 200
    assert sent[-2]["content"].startswith("turn 199 ")  # newest last
    saved = Turn.objects.get(conversation=conversation, position=201)
    assert saved.prompt_turns == len(sent) - 2 and saved.prompt_tokens <= 1000


def test_the_api_shows_the_memory(alice, upstream):
    conversation_id = alice.new_conversation()
    assert alice.client.get(f"/api/conversations/{conversation_id}").json()["memory"] == {
        "summary": "",
        "facts": [],
        "version": 0,
        "covers_turn": None,
        "covers_position": None,
        "status": "empty",
        "error": None,
        "updated_at": None,
    }
    upstream.behaviour = Behaviour(tokens=2)
    alice.client.post(f"/api/conversations/{conversation_id}/messages", json={"content": "I like tea."}).read()
    run_worker()  # the demo provider is not in use here: the fake upstream's reply is not JSON
    memory = alice.client.get(f"/api/conversations/{conversation_id}").json()["memory"]
    assert memory["status"] in ("retrying", "failed") and memory["error"].startswith("upstream_protocol")


def test_demo_memory_is_extractive_and_bounded():
    turns = [
        {"role": "user", "content": f"Question {n}. I like tea." if n == 0 else f"Question {n}?"} for n in range(30)
    ]
    summary, facts = extract_memory("", [], turns)
    lines = summary.splitlines()
    assert len(lines) == 12 and lines[-1] == "- The user asked: Question 29?"
    assert facts == ["I like tea"]
    assert extract_memory(summary, facts, turns[:1])[1] == ["I like tea"]  # no duplicate fact


def test_a_job_left_running_by_a_killed_worker_is_covered_by_the_next(owner, conversation):
    exchange(owner, conversation, "asked before the crash")
    stuck = DBTaskResult.objects.get()
    stuck.claim("worker-that-died")  # claimed, then the process was killed: nothing else was written
    assert memory_of_or_none(conversation) is None

    exchange(owner, conversation, "asked after it")
    run_worker()

    memory = memory_of(conversation)
    assert memory.covers_position == 3 and "asked before the crash" in memory.summary
    assert DBTaskResult.objects.get(pk=stuck.pk).status == "RUNNING"  # until its lease lapses (below)


def memory_of_or_none(conversation) -> ConversationMemory | None:
    return ConversationMemory.objects.filter(conversation=conversation).first()


def test_a_memory_call_fits_the_memory_models_context_and_is_priced(
    owner, conversation, upstream, settings, fresh_prices
):
    settings.LLM_CONTEXT_TOKENS = 4000
    settings.LLM_PRICES = {"fake-model": {"input": "1", "output": "1"}}
    upstream.behaviour = Behaviour(text='{"summary": "A long talk.", "facts": []}', usage={"prompt_tokens": 3000})
    exchange(owner, conversation, "x" * 1_000_000, reply="y" * 20_000)
    run_worker()
    prompts = [len(orjson.dumps(call.body["messages"])) for call in upstream.calls]
    assert len(prompts) >= 2 and max(prompts) < 4000 * 4  # was one call of the whole megabyte
    assert all(call.body["max_tokens"] for call in upstream.calls)
    assert memory_of(conversation).covers_position == 1  # every turn covered, over several calls
    spend = Spend.objects.filter(kind="memory")
    assert spend.count() == len(prompts) and {row.user_id for row in spend} == {owner.pk}
    assert all(row.cost and row.tokens_in == 3000 for row in spend)


# --- a worker killed mid-job: real `manage.py db_worker` processes -----------------------
LEASE_SECONDS = 0.6
MEMORY = '{"summary": "They asked about relays.", "facts": []}'


def start_worker(upstream_server, log_path):
    env = process_env(upstream_server.url, CHATSTREAM_WORKER_LEASE_SECONDS=str(LEASE_SECONDS))
    argv = [PYTHON, "manage.py", "db_worker", "--no-reload", "--no-startup-delay", "--interval", "0.05"]
    with open(log_path, "ab") as log:
        return popen(argv, env=env, stdout=log, stderr=log)


def test_a_job_whose_worker_was_killed_is_taken_up_by_another(owner, conversation, upstream, upstream_server, tmp_path):
    upstream.behaviour = Behaviour(first_token_delay=60, text=MEMORY)  # the model call outlives worker A
    exchange(owner, conversation, "What is a relay?")
    job = DBTaskResult.objects.get()

    a = start_worker(upstream_server, tmp_path / "a.log")
    b = None
    try:
        wait_for(lambda: upstream.calls, 15, "worker A asks the model")
        job.refresh_from_db()
        assert job.status == "RUNNING" and TaskLease.objects.filter(task_id=job.pk).exists()
        upstream.behaviour = Behaviour(text=MEMORY)
        b = start_worker(upstream_server, tmp_path / "b.log")
        time.sleep(2 * LEASE_SECONDS)  # A renews its lease meanwhile: its job is not lost
        assert DBTaskResult.objects.get().status == "RUNNING" and take_up_lost_jobs() == 0
        os.kill(a.pid, signal.SIGKILL)
        wait_for(lambda: DBTaskResult.objects.get().status == "SUCCESSFUL", 15, "worker B runs the job again")
    finally:
        stop(a)
        if b is not None:
            stop(b)
    job.refresh_from_db()
    assert len(job.worker_ids) == 2 and len(upstream.calls) == 2
    memory = memory_of(conversation)
    assert (memory.status, memory.version, memory.summary) == ("current", 1, "They asked about relays.")
    assert not TaskLease.objects.exists()


@pytest.mark.parametrize(("workers", "status"), [(1, "READY"), (3, "FAILED")])
def test_a_lost_job_is_queued_again_until_it_has_lost_as_many_workers_as_attempts(
    owner,
    conversation,
    settings,
    workers,
    status,
):
    settings.CHATSTREAM_MEMORY_ATTEMPTS, settings.CHATSTREAM_WORKER_LEASE_SECONDS = 3, LEASE_SECONDS
    exchange(owner, conversation, "What is a relay?")
    job = DBTaskResult.objects.get()
    job.claim("w1")
    DBTaskResult.objects.filter(pk=job.pk).update(worker_ids=[f"w{n}" for n in range(workers)])
    TaskLease.objects.create(task_id=job.pk, expires_at=job.started_at)  # lapsed at once
    assert take_up_lost_jobs() == 1
    job.refresh_from_db()
    assert job.status == status and not TaskLease.objects.exists()
