"""Users' data in the admin (data/, docs/data.md): the audit record, read
only; what the next retention sweep would delete; and an action on the
project's own user admin that erases a user's data, added to it rather than
replacing it."""

from asgiref.sync import async_to_sync
from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.contrib.auth import get_user_model
from django.template.response import TemplateResponse
from django.urls import path

from .data import audit, erase, retention
from .models import DataEvent


@admin.register(DataEvent)
class DataEventAdmin(admin.ModelAdmin):
    list_display = ("action", "actor", "subject_ref", "conversation_id", "counts", "created_at")
    list_filter = ("action", "created_at")
    search_fields = ("=subject_ref", "=conversation_id")
    date_hierarchy = "created_at"

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False  # a record: viewable, never edited

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    def get_urls(self):
        preview = self.admin_site.admin_view(self.retention_view)
        return [path("retention/", preview, name="conversations_dataevent_retention"), *super().get_urls()]

    def retention_view(self, request):
        """What the next retention sweep would delete: counts and the oldest."""
        context = {**self.admin_site.each_context(request), "title": "Retention", **retention.preview()}
        return TemplateResponse(request, "admin/conversations/retention.html", context)


@admin.action(description="Erase their data (conversations, files, API keys; the account stays)")
def erase_user_data(model_admin: admin.ModelAdmin, request, queryset) -> TemplateResponse | None:
    """Once staff confirm, each chosen user's answers stopped, then what they
    own erased, as `DELETE api/me/data` does; recorded in the audit with staff
    as the actor."""
    if request.POST.get("post") != "yes":  # first, a page that says what will go, as deleting does
        context = {
            **model_admin.admin_site.each_context(request),
            "title": "Erase these users' data?",
            "users": list(queryset),
            "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
            "opts": model_admin.model._meta,
        }
        return TemplateResponse(request, "admin/conversations/erase_confirmation.html", context)
    for user in queryset:
        stopped = async_to_sync(erase.stop_answers_in)(user.pk, erase.conversations_of(user))
        counts = erase.erase_owned(actor=request.user, subject=user, account=False)
        shown = ", ".join(f"{n} {name}" for name, n in counts.items() if name != "account" and n) or "nothing"
        stopped_note = f" ({stopped} answers stopped)" if stopped else ""
        model_admin.message_user(request, f"{user}: erased {shown}{stopped_note}.", messages.SUCCESS)
    return None


def add_erase_action(site: admin.AdminSite = admin.site) -> bool:
    """The action added to whichever admin the project registered its user
    model with (Django's UserAdmin or its own); False if it has none."""
    user_admin = site._registry.get(get_user_model())
    if user_admin is None:
        return False
    actions = list(user_admin.actions or [])
    if erase_user_data not in actions:
        user_admin.actions = [*actions, erase_user_data]
    return True


class AuditedAdmin(admin.ModelAdmin):
    """An admin whose change page shows a user's conversation (a
    conversation, a turn, an answer in the review queue): each time staff
    open one, an `admin_view_conversation` audit row says who, whose, which."""

    def change_view(self, request, object_id, form_url="", extra_context=None):
        response = super().change_view(request, object_id, form_url, extra_context)
        shown = (getattr(response, "context_data", None) or {}).get("original")
        if request.method == "GET" and shown is not None:
            conversation = getattr(shown, "conversation", shown)  # a turn's, or the conversation itself
            audit.record(
                audit.Action.ADMIN_VIEW_CONVERSATION,
                actor=request.user,
                subject=conversation.owner,
                conversation_id=conversation.pk,
            )
        return response


add_erase_action()
