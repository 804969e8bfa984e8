"""The app's URLs: the chat page at the root of wherever a project includes
them, the API under `api/`, an OpenAI-compatible door under `v1/`, and
Prometheus' `metrics`.

    path("chat/", include("conversations.urls"))
"""

from django.urls import include, path, re_path

from .ops.metrics import metrics_view
from .sharing.page import shared_page
from .views import api, data, errors, files, openai_compat, openai_responses, pages, prompts, sharing, turns, ui_chat

app_name = "conversations"

api_urlpatterns = [
    path("conversations", api.conversations, name="conversations"),
    path("conversations/<str:conversation_id>", api.conversation, name="conversation"),
    path("conversations/<str:conversation_id>/messages", api.messages, name="messages"),
    path("conversations/<str:conversation_id>/export", api.export, name="export"),
    path("turns/<str:turn_id>", api.turn, name="turn"),
    path("conversations/<str:conversation_id>/share", sharing.share, name="share"),
    path("turns/<str:turn_id>/events", api.turn_events, name="turn-events"),
    path("turns/<str:turn_id>/cancel", api.cancel_turn, name="cancel-turn"),
    path("turns/<str:turn_id>/regenerate", turns.regenerate, name="regenerate"),
    path("turns/<str:turn_id>/edit", turns.edit, name="edit"),
    path("turns/<str:turn_id>/continue", turns.continue_answer, name="continue"),
    path("turns/<str:turn_id>/feedback", turns.feedback, name="feedback"),
    path("turns/<str:turn_id>/approvals", turns.approvals, name="approvals"),
    path("files", files.files, name="files"),
    path("files/<str:file_id>", files.file, name="file"),
    path("files/<str:file_id>/content", files.file_content, name="file-content"),
    # The AI SDK's useChat: its default transport's paths under `api: "…/api/ui/chat"`.
    path("ui/chat", ui_chat.chat, name="ui-chat"),
    path("ui/chat/<str:chat_id>/stream", ui_chat.chat_stream, name="ui-chat-stream"),
    path("ui/chat/<str:chat_id>/messages", ui_chat.chat_messages, name="ui-chat-messages"),
    path("me/export", data.export, name="me-export"),
    path("me/data", data.erase, name="me-data"),
    path("models", api.models, name="models"),
    path("prompts", prompts.prompts, name="prompts"),
    path("openapi.yaml", api.openapi_description, name="openapi"),
    # Any other path under the API: the JSON 404, for every method. Reversed,
    # it names where the API is mounted (conversations.asgi uses that).
    re_path(r"", errors.api_not_found, name="root"),
]

# OpenAI's API, as its SDKs call it: base_url = "<where the app is>/v1".
openai_urlpatterns = [
    path("chat/completions", openai_compat.chat_completions, name="chat-completions"),
    path("responses", openai_responses.responses, name="responses"),
    path("responses/<str:response_id>", openai_responses.response, name="response"),
    path("models", openai_compat.models, name="models"),
    path("models/<path:model_id>", openai_compat.model, name="model"),  # a name may hold a slash
    re_path(r"", errors.api_not_found, name="root"),
]

urlpatterns = [
    path("", pages.chat, name="chat"),
    path("api/", include((api_urlpatterns, "api"))),
    path("v1/", include((openai_urlpatterns, "openai"))),
    path("shared/<str:token>", shared_page, name="shared"),  # a share link's page, for anyone holding it
    path("metrics", metrics_view, name="metrics"),
]
