from django.urls import path, re_path

from .views import api, errors

app_name = "api"

urlpatterns = [
    path("conversations", api.conversations, name="conversations"),
    path("conversations/<str:conversation_id>", api.conversation, name="conversation"),
    path("conversations/<str:conversation_id>/messages", api.messages, name="messages"),
    path("turns/<str:turn_id>/events", api.turn_events, name="turn-events"),
    path("turns/<str:turn_id>/cancel", api.cancel_turn, name="cancel-turn"),
    path("openapi.yaml", api.openapi_description, name="openapi"),
    re_path(r"", errors.api_not_found),  # JSON, not an HTML page, for unknown API paths
]
