"""The project's own pages beside Django's: sign-up (only where
CHATSTREAM_SIGNUP opens it) and a login form whose failures are throttled."""

from django.conf import settings
from django.contrib.auth import login, views
from django.contrib.auth.forms import UserCreationForm
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render

from conversations import throttle
from conversations.exceptions import ApiError


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
    the account or from the address (conversations/throttle.py)."""

    def get_context_data(self, **kwargs) -> dict:
        return {**super().get_context_data(**kwargs), "signup_open": settings.CHATSTREAM_SIGNUP}

    def post(self, request: HttpRequest, *args, **kwargs) -> HttpResponse:
        try:
            throttle.refuse_if_blocked_sync(request, self._account())
        except ApiError as refused:
            response = self.render_to_response(self.get_context_data(form=self.get_form(), throttled=True))
            response.status_code = refused.status
            response["Retry-After"] = refused.headers["Retry-After"]
            return response
        return super().post(request, *args, **kwargs)

    def form_invalid(self, form) -> HttpResponse:
        throttle.failed_sync(self.request, self._account())
        return super().form_invalid(form)

    def _account(self) -> str:
        return "user:" + self.request.POST.get("username", "")[:150].lower()
