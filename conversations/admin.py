import json
from datetime import UTC, datetime

from django.contrib import admin
from django.contrib.auth import get_user_model
from django.db.models import Count, Sum
from django.template.response import TemplateResponse
from django.urls import NoReverseMatch, path, reverse
from django.utils.html import format_html, format_html_join

from . import admin_prompts, admin_review  # noqa: F401  (the prompts and the review queue register themselves)
from .access import api_keys
from .admin_data import AuditedAdmin
from .admin_files import FILES_CSS, StoredFileAdmin, files_fieldsets, render_file_cuts, render_turn_files
from .admin_timeline import STEPS_CSS, STEPS_FIELDSET, render_steps, uses_tools
from .catalogue import catalogue, default_entry
from .memory.tasks import enqueue_update
from .models import ApiKey, Budget, Conversation, ConversationMemory, ModelPrice, Spend, StoredFile, Turn
from .ops.dashboard import dashboard_data, timeline_svg
from .routing import router
from .spend import budgets, pricing

# The project's user model names its own login field (username, email...).
OWNER_LOGIN = f"owner__{get_user_model().USERNAME_FIELD}"

TURN_METRICS = ("ttft_ms", "ttft_answer_ms", "duration_ms", "tokens_in", "tokens_out", "usage_source", "cost")


class RecordInline(admin.TabularInline):
    """Rows shown read-only, each linked to its own page: they are a record."""

    extra = 0
    can_delete = False
    show_change_link = True

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False


class TurnInline(RecordInline):
    """The conversation's turns in order."""

    model = Turn
    ordering = ["position"]
    fields = ("position", "role", "content", "status", "finish_reason", "model", *TURN_METRICS, "trace_id")
    readonly_fields = fields


class FileInline(RecordInline):
    """The conversation's files (their bytes are a click away, on each one's page)."""

    model = StoredFile
    fields = ("name", "kind", "content_type", "size_shown", "created_at")
    readonly_fields = fields
    size_shown = StoredFileAdmin.size_shown


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
class ConversationAdmin(AuditedAdmin):
    list_display = ("__str__", "owner", "turn_count", "spend", "memory_status", "created_at", "updated_at")
    list_filter = ("turns__finish_reason", "turns__model", "created_at")
    search_fields = ("title", OWNER_LOGIN, "turns__content", "=client_id")
    readonly_fields = ("id", "client_id", "owner", "created_at", "updated_at")
    inlines = [MemoryInline, FileInline, TurnInline]
    date_hierarchy = "created_at"
    actions = ["update_memory_now"]

    def get_queryset(self, request):
        queryset = super().get_queryset(request).select_related("owner", "memory")
        return queryset.annotate(turn_total=Count("turns"), cost_total=Sum("turns__cost"))

    @admin.display(description="spend", ordering="cost_total")
    def spend(self, obj: Conversation):
        return obj.cost_total  # type: ignore[attr-defined]  # annotated in get_queryset

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
class TurnAdmin(AuditedAdmin):
    list_display = ("__str__", "role", "status", "finish_reason", "model", *TURN_METRICS, "created_at")
    list_filter = ("role", "status", "finish_reason", "model_name", "model", "provider", "usage_source", "created_at")
    search_fields = ("content", "reasoning", "trace_id", f"conversation__{OWNER_LOGIN}")
    list_select_related = ("conversation",)
    date_hierarchy = "created_at"
    readonly_fields = ("tool_call_list", "timeline", "steps", "file_list", "cut_list")

    class Media:
        css = {"all": [*STEPS_CSS["all"], *FILES_CSS["all"]]}

    # A reviewer reads what was said first, then how it ended, what it cost, how it streamed.
    fieldsets = [
        (None, {"fields": ("conversation", "position", "role", "content", "reasoning", "refusal", "tool_call_list")}),
        ("Outcome", {"fields": ("status", "finish_reason", "error_code", "error_detail", "attempts", "output_valid")}),
        (
            "Usage and cost",
            {
                "fields": (
                    ("tokens_in", "tokens_cached"),
                    ("tokens_out", "tokens_reasoning"),
                    ("usage_source", "tokens_estimated"),
                    "cost",
                    "api_key",
                )
            },
        ),
        (
            "Timing",
            {
                "fields": (
                    ("ttft_ms", "ttft_answer_ms", "duration_ms"),
                    ("cancel_latency_ms", "tokens_after_cancel"),
                    "timeline",
                )
            },
        ),
        (
            "Trace",
            {
                "fields": (
                    ("model_name", "model", "provider"),
                    ("route", "trace_id"),
                    ("prompt_turns", "prompt_tokens", "malformed_chunks", "redactions"),
                    "parameters",
                    "idempotency_key",
                    "created_at",
                )
            },
        ),
    ]

    def get_fieldsets(self, request, obj=None):
        fieldsets = super().get_fieldsets(request, obj)
        if obj is None:
            return fieldsets
        steps = [STEPS_FIELDSET] if uses_tools(obj) else []
        # What it was sent with and what it did, right under what it said.
        return [*fieldsets[:1], *files_fieldsets(obj), *steps, *fieldsets[1:]]

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def get_urls(self):
        dashboard = self.admin_site.admin_view(self.dashboard)
        models = self.admin_site.admin_view(self.models)
        return [
            path("dashboard/", dashboard, name="conversations_turn_dashboard"),
            path("models/", models, name="conversations_turn_models"),
            *super().get_urls(),
        ]

    def models(self, request):
        """The model catalogue and the router, read-only: they live in settings."""
        default = default_entry().name
        entries = [
            {**vars(entry), "default": entry.name == default, "key_set": bool(entry.api_key)}
            for entry in catalogue().values()
        ]
        context = {**self.admin_site.each_context(request), "title": "Models", "entries": entries, "router": router()}
        return TemplateResponse(request, "admin/conversations/models.html", context)

    def dashboard(self, request):
        """Time to first token and tokens per second by day and model, and
        finish reasons (ops/dashboard.py)."""
        context = {**self.admin_site.each_context(request), "title": "Streams", **dashboard_data()}
        return TemplateResponse(request, "admin/conversations/dashboard.html", context)

    @admin.display(description="Tool calls")
    def tool_call_list(self, turn: Turn) -> str:
        """Each call the model asked for: its name and its arguments, laid out."""
        if not turn.tool_calls:
            return "—"
        return format_html_join(
            "",
            '<div class="tool-call"><code>{}</code> <small>{}</small><pre>{}</pre></div>',
            map(_call_row, turn.tool_calls),
        )

    @admin.display(description="Model calls")
    def steps(self, turn: Turn) -> str:
        return render_steps(turn)

    @admin.display(description="Files sent")
    def file_list(self, turn: Turn) -> str:
        return render_turn_files(turn)

    @admin.display(description="Files cut")
    def cut_list(self, turn: Turn) -> str:
        return render_file_cuts(turn)

    @admin.display(description="Token timeline")
    def timeline(self, turn: Turn) -> str:
        """Each piece of text at its arrival, as tall as the wait for it: a
        slow start, a steady stream or a stall at a glance."""
        return timeline_svg(turn.token_gaps)


def _call_row(call: dict) -> tuple[str, str, str]:
    try:
        arguments = json.dumps(json.loads(call.get("arguments", "")), indent=2, ensure_ascii=False)
    except (TypeError, ValueError):
        arguments = call.get("arguments", "")  # as the model wrote it, broken or not
    return call.get("name", ""), call.get("id", ""), arguments


@admin.register(ModelPrice)
class ModelPriceAdmin(admin.ModelAdmin):
    """Prices per million tokens, over LLM_PRICES; a save applies to the
    answers this process saves next (others within 30 s)."""

    list_display = ("model", "input", "cached_input", "output", "updated_at")
    search_fields = ("model",)

    def save_model(self, request, obj, form, change) -> None:
        super().save_model(request, obj, form, change)
        pricing.forget_prices()

    def delete_model(self, request, obj) -> None:
        super().delete_model(request, obj)
        pricing.forget_prices()


@admin.register(Spend)
class SpendAdmin(admin.ModelAdmin):
    """The ledger budgets read: one row per model call, written by the app
    and never edited (a deleted conversation's calls stay here)."""

    list_display = ("created_at", "user", "api_key", "kind", "model", "tokens_in", "tokens_out", "cost")
    list_filter = ("kind", "model", "created_at")
    search_fields = (f"user__{get_user_model().USERNAME_FIELD}", "api_key__prefix", "=conversation_id", "=turn_id")
    date_hierarchy = "created_at"
    list_select_related = ("user", "api_key")

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


@admin.register(Budget)
class BudgetAdmin(admin.ModelAdmin):
    """A user's own budget (over CHATSTREAM_DAILY_BUDGET / _MONTHLY_BUDGET) or
    an API key's."""

    list_display = ("__str__", "user", "api_key", "period", "max_spend", "max_tokens", "spent_now")
    list_filter = ("period",)
    search_fields = (f"user__{get_user_model().USERNAME_FIELD}", "api_key__prefix", "api_key__name")
    raw_id_fields = ("user", "api_key")

    def save_model(self, request, obj, form, change) -> None:
        super().save_model(request, obj, form, change)
        budgets.forget_rows()

    @admin.display(description="spent this period")
    def spent_now(self, budget: Budget) -> str:
        start, _ = budgets.period_bounds(budget.period, datetime.now(UTC))
        key = budget.api_key_id
        spend, tokens = budgets.spent(user_id=None if key else budget.user_id, api_key_id=key, since=start)
        return f"{spend:.4f} · {tokens} tokens"


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
