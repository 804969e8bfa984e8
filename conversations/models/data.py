"""The audit record of what was done with users' data (data/, docs/data.md)."""

from django.conf import settings
from django.db import models


class DataEvent(models.Model):
    """Who exported or erased whose data, when, and how much: counts, never
    content. Staff opening a conversation in the admin, and the retention
    sweep, are recorded the same way. Kept when either user is deleted."""

    class Action(models.TextChoices):
        EXPORT = "export"
        ERASE = "erase"
        ADMIN_VIEW_CONVERSATION = "admin_view_conversation", "Admin viewed a conversation"
        RETENTION = "retention"

    action = models.CharField(max_length=32, choices=Action.choices)
    # Empty for the retention sweep (the worker acts, no one asks).
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    subject = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    # The subject's primary key as it was: the row still says whose data it
    # was once the account itself is erased (`"account": true`).
    subject_ref = models.CharField(max_length=64, blank=True, help_text="The subject's id, kept after it is deleted")
    conversation_id = models.UUIDField(null=True, blank=True, help_text="The conversation viewed")
    counts = models.JSONField(default=dict, blank=True, help_text="What was exported or erased, counted")
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-created_at"]
        verbose_name = "data event"
        indexes = [models.Index(fields=["subject_ref", "-created_at"], name="data_event_subject")]

    def __str__(self) -> str:
        return f"{self.action} of user {self.subject_ref or '-'}"
