from django.contrib import admin
from django.urls import include, path

from conversations.dashboard import dashboard
from conversations.metrics import metrics_view
from conversations.views import pages

urlpatterns = [
    path("admin/dashboard/", admin.site.admin_view(dashboard), name="admin-dashboard"),
    path("admin/", admin.site.urls),
    path("metrics", metrics_view, name="metrics"),
    path("accounts/signup/", pages.signup, name="signup"),
    path("accounts/", include("django.contrib.auth.urls")),
    path("api/", include("conversations.urls")),
    path("", pages.chat, name="chat"),
]
