from django.contrib import admin
from django.urls import include, path

from conversations.access import logins

from . import views

# The admin's login throttled as the project's own: the same failures counted
# (conversations/access/logins.py), the same 429.
admin.site.login_form = logins.ThrottledAdminForm

urlpatterns = [
    path("admin/login/", views.admin_login),  # before the admin's own, which it wraps
    path("admin/", admin.site.urls),
    path("accounts/signup/", views.signup, name="signup"),
    path("accounts/login/", views.LoginView.as_view(), name="login"),
    path("accounts/", include("django.contrib.auth.urls")),
    path("", include("conversations.urls")),
]
