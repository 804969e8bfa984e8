"""A URLconf that mounts the app under a prefix, as a project might."""

from django.urls import include, path

urlpatterns = [path("chat/", include("conversations.urls"))]
