from django.contrib import admin
from django.contrib.auth import get_user_model
from django.db.models import Count
from django.template.response import TemplateResponse
from django.urls import NoReverseMatch, path, reverse
from django.utils.html import format_html

from . import api_keys
from .memory.tasks import enqueue_update
from .models import ApiKey, Conversation, ConversationMemory, Turn
from .ops.dashboard import dashboard_data, timeline_svg

# The project's user model names its own login field (username, email...).
OWNER_LOGIN = f"owner__{get_user_model().USERNAME_FIELD}"

TURN_METRICS = ("ttft_ms", "duration_ms", "tokens_in", "tokens_out", "tokens_estimated", "cancel_latency_ms")


class TurnInline(admin.TabularInline):
    """The conversation's turns in order, read-only: they are a record."""

    model = Turn
    ordering = ["position"]
    fields = ("position", "role", "content", "status", "finish_reason", "model", *TURN_METRICS, "trace_id")
    readonly_fields = fields
    extra = 0
    can_delete = False
    show_change_link = True

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False


MEMORY_FIELDS = (
    "status",
    "version",
    "covers_position",
    "summary",
    "facts",
    "model",
    "error",
    "failed_attempts",
    "updated_at",
    "jobs",
)


class MemoryInline(admin.StackedInline):
    """The memory the background task keeps; "Update memory now" refreshes it."""

    model = ConversationMemory
    fields = MEMORY_FIELDS
    readonly_fields = fields
    can_delete = False

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    @admin.display(description="background jobs")
    def jobs(self, obj: ConversationMemory) -> str:
        try:  # the database backend's results; another backend keeps its own
            url = reverse("admin:django_tasks_database_dbtaskresult_changelist")
        except NoReverseMatch:
            return "kept by the project's tasks backend"
        return format_html('<a href="{}">all task results</a>', url)


@admin.register(ConversationMemory)
class ConversationMemoryAdmin(admin.ModelAdmin):
    list_display = ("conversation", "status", "version", "covers_position", "failed_attempts", "updated_at")
    list_filter = ("status", "updated_at")
    search_fields = ("summary", "conversation__title", f"conversation__{OWNER_LOGIN}")
    readonly_fields = ("conversation", *MEMORY_FIELDS)
    fields = readonly_fields
    list_select_related = ("conversation",)
    actions = ["update_memory_now"]
    jobs = MemoryInline.jobs

    def has_add_permission(self, request) -> bool:
        return False

    @admin.action(description="Update memory now")
    def update_memory_now(self, request, queryset) -> None:
        _enqueue_updates(self, request, queryset.values_list("conversation_id", flat=True))


def _enqueue_updates(model_admin: admin.ModelAdmin, request, conversation_ids) -> None:
    ids = list(conversation_ids)
    for conversation_id in ids:
        enqueue_update(conversation_id)
    model_admin.message_user(request, f"Queued {len(ids)} memory update(s); a worker (manage.py db_worker) runs them.")


@admin.register(Conversation)
class ConversationAdmin(admin.ModelAdmin):
    list_display = ("__str__", "owner", "turn_count", "memory_status", "created_at", "updated_at")
    list_filter = ("turns__finish_reason", "turns__model", "created_at")
    search_fields = ("title", OWNER_LOGIN, "turns__content")
    readonly_fields = ("id", "owner", "created_at", "updated_at")
    inlines = [MemoryInline, TurnInline]
    date_hierarchy = "created_at"
    actions = ["update_memory_now"]

    def get_queryset(self, request):
        queryset = super().get_queryset(request).select_related("owner", "memory")
        return queryset.annotate(turn_total=Count("turns"))

    @admin.display(description="memory", ordering="memory__status")
    def memory_status(self, obj: Conversation) -> str:
        memory = getattr(obj, "memory", None)
        return f"{memory.status} v{memory.version}" if memory else "empty"

    @admin.action(description="Update memory now")
    def update_memory_now(self, request, queryset) -> None:
        _enqueue_updates(self, request, queryset.values_list("pk", flat=True))

    @admin.display(description="turns", ordering="turn_total")
    def turn_count(self, obj: Conversation) -> int:
        return obj.turn_total  # type: ignore[attr-defined]  # annotated in get_queryset

    def get_search_results(self, request, queryset, search_term):
        queryset, _ = super().get_search_results(request, queryset, search_term)
        return queryset.distinct(), False  # a search through turns must not repeat conversations


@admin.register(Turn)
class TurnAdmin(admin.ModelAdmin):
    list_display = ("__str__", "role", "status", "finish_reason", "model", *TURN_METRICS, "created_at")
    list_filter = ("role", "status", "finish_reason", "model", "provider", "created_at")
    search_fields = ("content", "trace_id", f"conversation__{OWNER_LOGIN}")
    list_select_related = ("conversation",)
    date_hierarchy = "created_at"
    exclude = ("token_gaps",)
    readonly_fields = ("timeline",)

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def get_urls(self):
        dashboard = self.admin_site.admin_view(self.dashboard)
        return [path("dashboard/", dashboard, name="conversations_turn_dashboard"), *super().get_urls()]

    def dashboard(self, request):
        """Time to first token and tokens per second by day and model, and
        finish reasons (ops/dashboard.py)."""
        context = {**self.admin_site.each_context(request), "title": "Streams", **dashboard_data()}
        return TemplateResponse(request, "admin/conversations/dashboard.html", context)

    @admin.display(description="Token timeline")
    def timeline(self, turn: Turn) -> str:
        """Each piece of text at its arrival, as tall as the wait for it: a
        slow start, a steady stream or a stall at a glance."""
        return timeline_svg(turn.token_gaps)


@admin.register(ApiKey)
class ApiKeyAdmin(admin.ModelAdmin):
    """Keys are created with `manage.py create_api_key` (the only time the key
    is shown) and revoked here."""

    list_display = ("prefix", "name", "user", "created_at", "last_used_at", "revoked_at")
    list_filter = ("revoked_at", "created_at")
    search_fields = ("prefix", "name", f"user__{get_user_model().USERNAME_FIELD}")
    readonly_fields = ("user", "prefix", "created_at", "last_used_at", "revoked_at")
    fields = ("name", *readonly_fields)
    actions = ["revoke_keys"]

    def has_add_permission(self, request) -> bool:
        return False

    @admin.action(description="Revoke selected API keys")
    def revoke_keys(self, request, queryset) -> None:
        for key in queryset.filter(revoked_at__isnull=True):
            api_keys.revoke(key=key)
        self.message_user(request, "Revoked.")
