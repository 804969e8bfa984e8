"""Files in the admin: the uploads list (read-only: files come only through
uploads; a delete takes their bytes too, after the commit, by the receiver
in files/cleanup.py), the storage each user takes, a staff-only view of a
file's bytes, and the pieces the turn and conversation pages show of theirs.

The API serves a file's bytes to its owner only; the admin's content view
serves them to staff, the same way (files/serving.py): images inline,
everything else a download, sniffing off, sandboxed."""

import codecs
import uuid
from dataclasses import dataclass
from typing import Any

from django.contrib import admin
from django.contrib.auth import get_user_model
from django.core.exceptions import PermissionDenied
from django.db.models import Count, QuerySet, Sum
from django.http import Http404, HttpRequest
from django.template.loader import render_to_string
from django.urls import path, reverse
from django.utils.html import format_html
from django.utils.safestring import SafeString

from .conf import conf
from .files import serving, storage
from .files.sizes import human_size
from .models import StoredFile, Turn

FILES_CSS = {"all": ["conversations/admin/files.css"]}  # a file: the CSP refuses inline styles
PREVIEW_CHARS = 2000  # of a document's text, on its page
THUMBNAIL_PX = 160  # an image's longer side, on a turn's page
TOP_USERS = 10  # in the storage summary


class SentFilter(admin.SimpleListFilter):
    title = "sent"
    parameter_name = "sent"

    def lookups(self, request, model_admin):
        return [("yes", "Sent in a message"), ("no", "Not sent yet")]

    def queryset(self, request, queryset: QuerySet) -> QuerySet:
        if self.value() in ("yes", "no"):
            return queryset.filter(conversation__isnull=self.value() == "no")
        return queryset


@admin.register(StoredFile)
class StoredFileAdmin(admin.ModelAdmin):
    list_display = ("name", "owner", "kind", "content_type", "size_shown", "conversation_link", "created_at", "sent")
    list_filter = ("kind", "content_type", SentFilter, ("owner", admin.RelatedOnlyFieldListFilter), "created_at")
    search_fields = ("name", f"owner__{get_user_model().USERNAME_FIELD}")
    list_select_related = ("owner", "conversation")
    date_hierarchy = "created_at"
    fieldsets = [
        (None, {"fields": ("name", "owner", "conversation", "kind", "content_type", "size_shown", "created_at")}),
        ("Content", {"fields": ("preview", ("width", "height"), ("pages", "pages_read"), "text_chars")}),
        ("Storage", {"fields": ("path", "text_path")}),
    ]
    readonly_fields = ("size_shown", "preview")

    class Media:
        css = FILES_CSS

    def has_add_permission(self, request) -> bool:
        return False  # files come through uploads only

    def has_change_permission(self, request, obj=None) -> bool:
        return False  # a record of what was sent; deleting stays allowed

    def get_urls(self):
        content = self.admin_site.admin_view(self.content_view)
        return [
            path("<uuid:file_id>/content/", content, name="conversations_storedfile_content"),
            *super().get_urls(),
        ]

    def changelist_view(self, request, extra_context=None):
        summary = {"storage_by_user": storage_by_user(), "quota": human_size(conf.CHATSTREAM_USER_FILE_QUOTA_BYTES)}
        return super().changelist_view(request, {**summary, **(extra_context or {})})

    def content_view(self, request: HttpRequest, file_id: uuid.UUID):
        """The file's bytes, for staff who may view files."""
        found = StoredFile.objects.filter(pk=file_id).first()
        if found is None:
            raise Http404("No such file.")
        if not self.has_view_permission(request, found):
            raise PermissionDenied
        try:
            opened = storage.file_storage().open(found.path, "rb")
        except FileNotFoundError:
            raise Http404("The file's bytes are not in storage.") from None
        return serving.content_response(found, opened)

    @admin.display(description="size", ordering="size")
    def size_shown(self, stored: StoredFile) -> str:
        return human_size(stored.size).replace(" ", "\u00a0")  # one line in a narrow column

    @admin.display(description="conversation", ordering="conversation")
    def conversation_link(self, stored: StoredFile) -> str:
        if stored.conversation is None:
            return "—"
        url = reverse("admin:conversations_conversation_change", args=[stored.conversation_id])
        return format_html('<a href="{}">{}</a>', url, stored.conversation)

    @admin.display(description="sent", boolean=True, ordering="conversation")
    def sent(self, stored: StoredFile) -> bool:
        return stored.conversation_id is not None

    @admin.display(description="preview")
    def preview(self, stored: StoredFile) -> str:
        """An image as itself; a document's first characters, as text."""
        if stored.kind == StoredFile.Kind.IMAGE:
            return format_html(
                '<a href="{0}"><img class="file-preview" src="{0}" alt="{1}"></a>', content_url(stored), stored.name
            )
        text, more = text_start(stored)
        if text is None:
            return format_html('<a href="{}">Download</a> (its text is not in storage)', content_url(stored))
        return format_html(
            '<a href="{}">Download</a><pre class="file-text">{}{}</pre>', content_url(stored), text, "…" if more else ""
        )


def content_url(stored: StoredFile | str) -> str:
    pk = stored.pk if isinstance(stored, StoredFile) else stored
    return reverse("admin:conversations_storedfile_content", args=[pk])


def text_start(stored: StoredFile) -> tuple[str | None, bool]:
    """A document's first PREVIEW_CHARS characters, read from storage (a
    PDF's text, kept beside it at upload; a text file itself), and whether
    there is more. None when it is not there."""
    text_path = stored.text_path if stored.kind == StoredFile.Kind.PDF else stored.path
    if not text_path:
        return None, False
    try:
        with storage.file_storage().open(text_path, "rb") as opened:
            head = opened.read(PREVIEW_CHARS * 4)  # UTF-8: at most 4 bytes a character
    except FileNotFoundError:
        return None, False
    text = codecs.getincrementaldecoder("utf-8")(errors="replace").decode(head)  # a character cut short waits
    return text[:PREVIEW_CHARS], stored.text_chars > PREVIEW_CHARS


def storage_by_user() -> list[dict[str, Any]]:
    """The users whose files take the most bytes, with how many files and
    their share of the quota: one query."""
    login = f"owner__{get_user_model().USERNAME_FIELD}"
    quota = conf.CHATSTREAM_USER_FILE_QUOTA_BYTES
    rows = (
        StoredFile.objects.values("owner_id", login)
        .annotate(total=Sum("size"), files=Count("pk"))
        .order_by("-total", login)[:TOP_USERS]
    )
    return [
        {
            "user": row[login],
            "changelist_query": f"owner__id__exact={row['owner_id']}",
            "files": row["files"],
            "bytes": row["total"],
            "size": human_size(row["total"]),
            "percent": round(100 * row["total"] / quota, 1) if quota else None,
        }
        for row in rows
    ]


# --- a turn's files and a conversation's, on their pages -------------------------------


@dataclass
class ShownFile:
    """One of a message's files as it was sent, and where it is now (None: deleted since)."""

    name: str
    content_type: str
    size: str
    change_url: str | None
    content_url: str | None
    thumbnail: tuple[int, int] | None  # an image still there: its width and height on the page


def render_turn_files(turn: Turn) -> SafeString:
    existing = {str(pk) for pk in StoredFile.objects.filter(pk__in=_ids(turn.files)).values_list("pk", flat=True)}
    shown = [_shown(entry, entry.get("id") in existing) for entry in turn.files]
    return render_to_string("admin/conversations/turn/files.html", {"files": shown})


def _ids(entries: list[dict[str, Any]]) -> list[uuid.UUID]:
    ids = []
    for entry in entries:
        try:
            ids.append(uuid.UUID(str(entry.get("id"))))
        except ValueError:
            continue  # a snapshot is data: one without a good id is shown as deleted
    return ids


def _shown(entry: dict[str, Any], exists: bool) -> ShownFile:
    file_id = entry.get("id", "")
    is_image = exists and entry.get("kind") == StoredFile.Kind.IMAGE
    return ShownFile(
        name=entry.get("name", ""),
        content_type=entry.get("content_type", ""),
        size=human_size(entry.get("size") or 0),
        change_url=reverse("admin:conversations_storedfile_change", args=[file_id]) if exists else None,
        content_url=content_url(file_id) if exists else None,
        thumbnail=_fit(entry.get("width"), entry.get("height")) if is_image else None,
    )


def _fit(width: int | None, height: int | None) -> tuple[int, int]:
    """An image's size scaled to fit THUMBNAIL_PX, never up."""
    if not width or not height:
        return THUMBNAIL_PX, THUMBNAIL_PX
    scale = min(1.0, THUMBNAIL_PX / max(width, height))
    return max(1, round(width * scale)), max(1, round(height * scale))


def render_file_cuts(turn: Turn) -> SafeString:
    """The files whose text the answer's prompt cut: how much of each it sent."""
    return render_to_string("admin/conversations/turn/file_cuts.html", {"cuts": map(_cut, turn.file_cuts)})


def _cut(cut: dict[str, Any]) -> dict[str, Any]:
    chars, sent = cut.get("chars") or 0, cut.get("chars_sent") or 0
    return {
        "name": cut.get("name", ""),
        "chars": f"{chars:,}",
        "chars_sent": f"{sent:,}" if sent else "",
        "percent": round(100 * sent / chars) if chars else None,
    }


def files_fieldsets(turn: Turn) -> list[tuple[str, dict[str, Any]]]:
    """The turn page's Files section, when its turn has files or cuts."""
    fields = [name for name, present in (("file_list", turn.files), ("cut_list", turn.file_cuts)) if present]
    return [("Files", {"fields": fields})] if fields else []
