"""Read-only links to a conversation as it was when shared (sharing/)."""

import uuid

from django.db import models

from .conversations import Conversation


class SharedLink(models.Model):
    """A link anyone holding it may read: the branch a conversation showed
    when it was shared, copied (a snapshot: later turns are not added), so
    the page needs neither the owner nor the API. Deleting it revokes it."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    conversation = models.ForeignKey(Conversation, on_delete=models.CASCADE, related_name="shared_links")
    # Random, 43 characters (secrets.token_urlsafe(32)): the link's only secret.
    token = models.CharField(max_length=64, unique=True, editable=False)
    title = models.CharField(max_length=200, blank=True)
    display_name = models.CharField(max_length=100, blank=True, help_text="The only name the page shows")
    include_reasoning = models.BooleanField(default=False)
    turns = models.JSONField(default=list, help_text="The branch as it was shared: role, text, model, files' names")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"Link to {self.title or self.conversation_id}"
