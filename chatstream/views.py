"""The project's own pages beside Django's: sign-up (only where
CHATSTREAM_SIGNUP opens it) and a login form whose failures are throttled."""

from django.conf import settings
from django.contrib import admin
from django.contrib.auth import login, views
from django.contrib.auth.forms import UserCreationForm
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render

from conversations.access import logins


def signup(request: HttpRequest) -> HttpResponse:
    if not settings.CHATSTREAM_SIGNUP:
        raise Http404("Sign-up is closed: an administrator creates accounts.")
    if request.user.is_authenticated:
        return redirect("conversations:chat")
    form: UserCreationForm = UserCreationForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        login(request, form.save())
        return redirect("conversations:chat")
    return render(request, "registration/signup.html", {"form": form})


class LoginView(views.LoginView):
    """Django's login, refused for a while (429) after too many failures for
    the account or from the address (conversations/access/logins.py)."""

    authentication_form = logins.ThrottledForm

    def get_context_data(self, **kwargs) -> dict:
        context = super().get_context_data(**kwargs)
        return {**context, "signup_open": settings.CHATSTREAM_SIGNUP, "throttled": logins.refusal(self.request)}

    def form_invalid(self, form) -> HttpResponse:
        return logins.with_refusal_status(self.request, super().form_invalid(form))


def admin_login(request: HttpRequest, extra_context: dict | None = None) -> HttpResponse:
    """The admin's login page, throttled as the project's own."""
    return logins.with_refusal_status(request, admin.site.login(request, extra_context))
