"""Messages sent while an answer streams that wait for it to end
("while_answering": "queue"; conversations/queue/)."""

import uuid

from django.db import models

from .conversations import Conversation


class QueuedMessage(models.Model):
    """A message waiting for the answer in progress in its conversation. Its
    row is deleted by the transaction that saves it as a turn (with the ids
    given here), so it starts once, or by a cancel before that."""

    # The ids its turn and its answer's turn will have: the client follows
    # GET api/turns/<answer_id>/events from the moment it is queued.
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    answer_id = models.UUIDField(unique=True, default=uuid.uuid4, editable=False)
    conversation = models.ForeignKey(Conversation, on_delete=models.CASCADE, related_name="queued")
    content = models.TextField(blank=True)
    model_name = models.CharField(max_length=200, blank=True, help_text='The model it asked for ("": the default)')
    instructions = models.JSONField(default=dict, blank=True, help_text="Its own system prompt, parameters, format")
    file_ids = models.JSONField(default=list, blank=True, help_text="The files it sends (checked when it starts)")
    idempotency_key = models.CharField(max_length=200, blank=True)
    api_key = models.ForeignKey(
        "ApiKey", null=True, blank=True, on_delete=models.SET_NULL, related_name="+", help_text="The key that sent it"
    )
    trace_id = models.CharField(max_length=64, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["created_at", "id"]
        indexes = [models.Index(fields=["conversation", "created_at"], name="queued_conversation_order")]

    def __str__(self) -> str:
        return f"queued {self.id} in {self.conversation_id}"
