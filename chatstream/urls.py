from django.contrib import admin
from django.urls import include, path

from conversations.views import pages

urlpatterns = [
    path("admin/", admin.site.urls),
    path("accounts/signup/", pages.signup, name="signup"),
    path("accounts/", include("django.contrib.auth.urls")),
    path("api/", include("conversations.urls")),
    path("", pages.chat, name="chat"),
]
