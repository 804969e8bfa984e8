"""Files a user uploaded (files/, docs/files.md)."""

import uuid

from django.conf import settings
from django.db import models

from .conversations import Conversation


class StoredFile(models.Model):
    """A file a user uploaded: its bytes in Django's storage (files/storage.py),
    never in a column; the row keeps what it is, whose, and where. Sent in a
    message, it belongs to that conversation and goes with it."""

    class Kind(models.TextChoices):
        IMAGE = "image", "Image"
        PDF = "pdf", "PDF"
        TEXT = "text", "Text"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="chatstream_files")
    conversation = models.ForeignKey(
        Conversation,
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="files",
        help_text="Where it was first sent (empty: an upload no message has named yet)",
    )
    name = models.CharField(max_length=255, help_text="The name it came with, for display only")
    kind = models.CharField(max_length=8, choices=Kind.choices)
    content_type = models.CharField(max_length=100, help_text="Read from the content, not the client's word")
    size = models.PositiveBigIntegerField()
    width = models.PositiveIntegerField(null=True, blank=True)
    height = models.PositiveIntegerField(null=True, blank=True)
    # Where the bytes are, and a PDF's or a text file's text (extracted once,
    # at upload): chatstream's own names in its storage, none from the client.
    path = models.CharField(max_length=255, editable=False)
    text_path = models.CharField(max_length=255, blank=True, editable=False)
    text_chars = models.PositiveIntegerField(default=0, help_text="Characters of text the model can be given")
    pages = models.PositiveIntegerField(null=True, blank=True, help_text="A PDF's pages")
    pages_read = models.PositiveIntegerField(null=True, blank=True, help_text="Of them, those whose text was read")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]
        verbose_name = "file"
        indexes = [
            models.Index(fields=["owner", "-created_at"], name="file_owner_recent"),
            models.Index(fields=["conversation"], name="file_conversation"),
            models.Index(fields=["created_at"], name="file_unsent", condition=models.Q(conversation=None)),
        ]

    def __str__(self) -> str:
        return self.name
