"""A conversation's memory, and the leases of the jobs that keep it
(memory/)."""

from django.db import models

from .conversations import Conversation, Turn


class ConversationMemory(models.Model):
    """A rolling summary of a conversation and the facts its user stated,
    kept by a background task (memory/tasks.py) so that a prompt
    needs only the memory and the latest turns, not the whole history."""

    class Status(models.TextChoices):
        EMPTY = "empty"  # nothing covered yet
        CURRENT = "current"  # the last update succeeded
        RETRYING = "retrying"  # the last model call failed; another attempt is queued
        FAILED = "failed"  # every attempt failed; the next turn tries again

    conversation = models.OneToOneField(Conversation, on_delete=models.CASCADE, primary_key=True, related_name="memory")
    summary = models.TextField(blank=True)
    facts = models.JSONField(default=list, blank=True)
    # Compare-and-set: an update writes only over the version it read, so two
    # workers updating one conversation cannot lose each other's work.
    version = models.PositiveIntegerField(default=0)
    covers_position = models.IntegerField(default=-1, help_text="Position of the last turn the memory includes")
    covers_turn = models.ForeignKey(Turn, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.EMPTY)
    error = models.TextField(blank=True)
    failed_attempts = models.PositiveIntegerField(default=0)
    model = models.CharField(max_length=200, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name_plural = "conversation memories"

    def __str__(self) -> str:
        return f"memory v{self.version} of {self.conversation_id}"


class TaskLease(models.Model):
    """A background job's lease, renewed by the worker running it
    (memory/leases.py): a running job whose lease ran out lost its worker."""

    task_id = models.UUIDField(primary_key=True, help_text="The job's id in the tasks backend")
    expires_at = models.DateTimeField()

    class Meta:
        indexes = [models.Index(fields=["expires_at"], name="task_lease_expires_at")]

    def __str__(self) -> str:
        return f"lease of job {self.task_id} until {self.expires_at:%H:%M:%S}"
