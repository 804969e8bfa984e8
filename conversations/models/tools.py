"""What the tool loop keeps as an answer runs: each call, and each step (one
model call) ended, so a crash loses neither (tool_runs.py)."""

from django.conf import settings
from django.db import models
from django.utils import timezone

from .conversations import Conversation


class ToolRun(models.Model):
    """One tool call of an answer, written before the tool runs and again when
    it ends: a call id recorded once is never run again (tool_runs.claim_call)."""

    class Approval(models.TextChoices):
        PENDING = "pending"
        APPROVED = "approved"
        DENIED = "denied"
        UNDECIDED = "undecided"  # the answer ended first: a timeout, a Stop, its process lost

    turn_id = models.UUIDField(help_text="The answer's turn (its row comes when the answer ends)")
    conversation = models.ForeignKey(Conversation, on_delete=models.CASCADE, related_name="tool_runs")
    call_id = models.CharField(max_length=200)
    name = models.CharField(max_length=200)
    arguments = models.TextField(blank=True)
    # None and "" differ here: a tool may return "", and a call still running has neither.
    output = models.TextField(null=True, blank=True)  # noqa: DJ001
    error = models.TextField(null=True, blank=True)  # noqa: DJ001
    duration_ms = models.PositiveIntegerField(null=True, blank=True)
    started_at = models.DateTimeField(default=timezone.now)
    ended_at = models.DateTimeField(null=True, blank=True)
    # A tool with needs_approval: recorded `pending` before the request goes
    # out; the decision is written here by whichever process served it.
    approval = models.CharField(max_length=16, choices=Approval.choices, blank=True)
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    decided_at = models.DateTimeField(null=True, blank=True)
    decision_reason = models.TextField(blank=True)

    class Meta:
        ordering = ["started_at"]
        constraints = [models.UniqueConstraint(fields=["turn_id", "call_id"], name="tool_run_unique_call")]

    def __str__(self) -> str:
        return f"{self.name} {self.call_id} of {self.turn_id}"


class AnswerStep(models.Model):
    """One model call of a tool loop, saved when its tools have run, before
    the next call: what it streamed (with its calls, approvals and results)
    and what it cost. An answer whose process dies mid-loop is saved from
    these (recovery.py); an answer that ends keeps them for the admin's
    timeline."""

    turn_id = models.UUIDField(help_text="The answer's turn (its row comes when the answer ends)")
    conversation = models.ForeignKey(Conversation, on_delete=models.CASCADE, related_name="answer_steps")
    n = models.PositiveSmallIntegerField(help_text="The model call, counted from 1")
    model = models.CharField(max_length=200, blank=True)
    output = models.JSONField(default=list, help_text="What it streamed, in order: [kind, text] pairs")
    tokens_in = models.PositiveIntegerField(null=True, blank=True)
    tokens_out = models.PositiveIntegerField(null=True, blank=True)
    tokens_cached = models.PositiveIntegerField(null=True, blank=True)
    tokens_reasoning = models.PositiveIntegerField(null=True, blank=True)
    tokens_estimated = models.BooleanField(default=False)
    usage_source = models.CharField(max_length=16, blank=True)
    cost = models.DecimalField(max_digits=18, decimal_places=10, null=True, blank=True)
    ended_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["turn_id", "n"]
        constraints = [models.UniqueConstraint(fields=["turn_id", "n"], name="answer_step_unique")]

    def __str__(self) -> str:
        return f"step {self.n} of {self.turn_id}"
