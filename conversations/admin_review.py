"""The admin's review queue: every answer, those that most need a look first
(a guardrail's flag first of all, then a user's thumbs down, an error,
something masked), with what the user said and where staff record their
verdict and notes."""

from django.contrib import admin
from django.contrib.auth import get_user_model
from django.db.models import Case, Exists, IntegerField, OuterRef, Q, QuerySet, Value, When
from django.urls import reverse
from django.utils.html import format_html
from django.utils.text import Truncator

from .admin_data import AuditedAdmin
from .admin_timeline import STEPS_CSS, render_steps, uses_tools
from .models import Feedback, ReviewItem, ToolRun, Turn

FLAGGED = ~Q(review_flag="")  # by a guardrail's after() (guardrails/review.py)
NEEDS_A_LOOK = Q(feedback__rating=Feedback.Rating.DOWN) | Q(status=Turn.Status.FAILED) | Q(redactions__gt=0)


class FeedbackFilter(admin.SimpleListFilter):
    title = "feedback"
    parameter_name = "feedback"

    def lookups(self, request, model_admin):
        return [*Feedback.Rating.choices, ("none", "No feedback")]

    def queryset(self, request, queryset: QuerySet) -> QuerySet:
        if self.value() == "none":
            return queryset.filter(feedback__isnull=True)
        if self.value() in Feedback.Rating.values:
            return queryset.filter(feedback__rating=self.value())
        return queryset


class ToolsFilter(admin.SimpleListFilter):
    """Answers by what happened to their tool calls. Read from the ToolRun
    rows rather than the turns' JSON, whose containment lookups differ
    between PostgreSQL and SQLite."""

    title = "tools"
    parameter_name = "tools"
    # A denied call and one nobody decided on carry an error for the model
    # too; "a tool failed" means the tool itself (or its arguments) did.
    NOT_RUN = (ToolRun.Approval.DENIED, ToolRun.Approval.UNDECIDED)
    RUNS = {
        "failed": Q(error__isnull=False) & ~Q(approval__in=NOT_RUN),
        "denied": Q(approval=ToolRun.Approval.DENIED),
        "approval": ~Q(approval=""),
        "any": Q(),
    }

    def lookups(self, request, model_admin):
        return [
            ("failed", "A tool failed"),
            ("denied", "A call was denied"),
            ("approval", "Waited for approval"),
            ("any", "Called a tool"),
        ]

    def queryset(self, request, queryset: QuerySet) -> QuerySet:
        runs = self.RUNS.get(self.value() or "")
        if runs is None:
            return queryset
        return queryset.filter(Exists(ToolRun.objects.filter(runs, turn_id=OuterRef("pk"))))


class OwnerFilter(admin.SimpleListFilter):
    """Users who have answers; a list of every account would be long."""

    title = "user"
    parameter_name = "user"

    def lookups(self, request, model_admin):
        login = f"conversation__owner__{get_user_model().USERNAME_FIELD}"  # a project's own user model names it
        owners = (
            Turn.objects.filter(role=Turn.Role.ASSISTANT)
            .values_list("conversation__owner_id", login)
            .distinct()
            .order_by(login)
        )
        return [(str(pk), name) for pk, name in owners[:100]]

    def queryset(self, request, queryset: QuerySet) -> QuerySet:
        return queryset.filter(conversation__owner_id=self.value()) if self.value() else queryset


@admin.register(ReviewItem)
class ReviewAdmin(AuditedAdmin):
    list_display = ("answer", "why", "feedback_rating", "feedback_comment", "model_name", "owner", "review_status")
    list_display_links = ("answer",)
    list_editable = ("review_status",)
    list_filter = (FeedbackFilter, ToolsFilter, "review_status", "status", "model_name", OwnerFilter, "created_at")
    list_select_related = ("conversation__owner", "feedback")
    search_fields = ("content", "review_notes", "feedback__comment")
    date_hierarchy = "created_at"
    fields = (
        "review_status",
        "review_notes",
        "conversation_link",
        "feedback_rating",
        "feedback_comment",
        "content",
        "reasoning",
        "finish_reason",
        "error_code",
        "error_detail",
        "review_flag",
        "redactions",
        "model_name",
        "created_at",
    )
    readonly_fields = (*fields[2:], "steps")

    class Media:
        css = STEPS_CSS

    def get_queryset(self, request) -> QuerySet:
        first = Case(
            When(FLAGGED, then=Value(0)),
            When(NEEDS_A_LOOK, then=Value(1)),
            default=Value(2),
            output_field=IntegerField(),
        )
        # Annotated before it is ordered: ModelAdmin.get_queryset orders by get_ordering() first.
        answers = self.model._default_manager.filter(role=Turn.Role.ASSISTANT).annotate(needs_a_look=first)
        return answers.order_by(*self.get_ordering(request))

    def get_ordering(self, request):
        # The changelist orders by this before the queryset's own order
        # (which would otherwise come after Turn's Meta.ordering, and so never count).
        return ["needs_a_look", "-created_at"]

    def get_fields(self, request, obj=None):
        fields = super().get_fields(request, obj)
        if obj is None or not uses_tools(obj):
            return fields
        at = fields.index("reasoning") + 1  # what it did, right under what it said
        return [*fields[:at], "steps", *fields[at:]]

    def has_add_permission(self, request) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False  # a review never removes what was said

    @admin.display(description="Answer")
    def answer(self, turn: Turn) -> str:
        return Truncator(turn.content or turn.refusal or f"({turn.finish_reason})").chars(80)

    @admin.display(description="Why first", ordering="needs_a_look")
    def why(self, turn: Turn) -> str:
        reasons, feedback = [], _feedback(turn)
        if turn.review_flag:
            reasons.append(f"flagged: {turn.review_flag}")
        if feedback is not None and feedback.rating == Feedback.Rating.DOWN:
            reasons.append("bad answer")
        if turn.status == Turn.Status.FAILED:
            reasons.append(f"error: {turn.error_code}")
        if turn.redactions:
            reasons.append(f"{turn.redactions} masked")
        return ", ".join(reasons) or "—"

    @admin.display(description="Feedback", ordering="feedback__rating")
    def feedback_rating(self, turn: Turn) -> str:
        feedback = _feedback(turn)
        return feedback.get_rating_display() if feedback else "—"

    @admin.display(description="Comment")
    def feedback_comment(self, turn: Turn) -> str:
        feedback = _feedback(turn)
        return Truncator(feedback.comment).chars(120) if feedback and feedback.comment else "—"

    @admin.display(description="User", ordering="conversation__owner")
    def owner(self, turn: Turn):
        return turn.conversation.owner

    @admin.display(description="Model calls")
    def steps(self, turn: Turn) -> str:
        return render_steps(turn)

    @admin.display(description="Conversation")
    def conversation_link(self, turn: Turn) -> str:
        url = reverse("admin:conversations_conversation_change", args=[turn.conversation_id])
        return format_html('<a href="{}">{}</a>', url, turn.conversation)


def _feedback(turn: Turn) -> Feedback | None:
    try:
        return turn.feedback
    except Feedback.DoesNotExist:
        return None
