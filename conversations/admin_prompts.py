"""The staff's named prompts in the admin: a system prompt with its
parameters and response format, which a conversation may start from
(`{"prompt": "<name>"}`, instructions.py)."""

from django.contrib import admin
from django.db.models import Count

from .models import Prompt


@admin.register(Prompt)
class PromptAdmin(admin.ModelAdmin):
    list_display = ("name", "conversation_count", "updated_at")
    search_fields = ("name", "system_prompt")
    fields = ("name", "system_prompt", "parameters", "response_format", "created_at", "updated_at")

    def get_readonly_fields(self, request, obj=None):
        # Conversations name the prompt they started from: its name stays once it is made.
        return ("name", "created_at", "updated_at") if obj is not None else ("created_at", "updated_at")

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(conversation_total=Count("conversations"))

    @admin.display(description="conversations", ordering="conversation_total")
    def conversation_count(self, obj: Prompt) -> int:
        return obj.conversation_total  # type: ignore[attr-defined]
