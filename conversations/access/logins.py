"""Failed logins throttled at every door that logs in through Django's
`authenticate()`: the project's login form, the admin's, any other.

`ThrottledModelBackend`, in AUTHENTICATION_BACKENDS in place of Django's
ModelBackend, refuses an attempt for an account or from an address past its
bar (access/throttle.py) before the password is checked, and marks
the request; every failure
`authenticate()` reports (its `user_login_failed` signal) is counted. A
login form then tells the refusal apart from a wrong password with
`refusal(request)`, and `ThrottledForm` says so in the form's error.
"""

from asgiref.sync import async_to_sync
from django.contrib.admin.forms import AdminAuthenticationForm
from django.contrib.auth import get_user_model
from django.contrib.auth.backends import ModelBackend
from django.contrib.auth.forms import AuthenticationForm
from django.contrib.auth.signals import user_login_failed
from django.core.exceptions import PermissionDenied, ValidationError
from django.dispatch import receiver
from django.http import HttpRequest, HttpResponse

from ..exceptions import ApiError
from . import throttle

REFUSED = "chatstream_login_refused"  # the request attribute that holds the refusal


def account(username: object) -> str:
    return "user:" + str(username or "")[:150].lower()


class ThrottledModelBackend(ModelBackend):
    """Django's ModelBackend, refusing (PermissionDenied, which stops
    authenticate() there) an attempt past the throttle's bars, unchecked."""

    def authenticate(self, request, username=None, password=None, **kwargs):
        if request is not None:
            _refuse(request, username or kwargs.get(self._field()))
        return super().authenticate(request, username, password, **kwargs)

    async def aauthenticate(self, request, username=None, password=None, **kwargs):
        if request is not None:
            await _arefuse(request, username or kwargs.get(self._field()))
        return await super().aauthenticate(request, username, password, **kwargs)

    @staticmethod
    def _field() -> str:
        return get_user_model().USERNAME_FIELD


async def _arefuse(request: HttpRequest, username: object) -> None:
    try:
        await throttle.refuse_if_blocked(throttle.client_address(request), account(username))
    except ApiError as refused:
        setattr(request, REFUSED, refused)
        raise PermissionDenied from refused


_refuse = async_to_sync(_arefuse)


@receiver(user_login_failed, dispatch_uid="chatstream-login-failed")
def count_failure(sender, credentials: dict, request: HttpRequest | None = None, **kwargs) -> None:
    # A refused attempt was never checked: it is not one more failure.
    if request is not None and refusal(request) is None:
        throttle.failed_sync(throttle.client_address(request), account(credentials.get("username")))


def refusal(request: HttpRequest) -> ApiError | None:
    return getattr(request, REFUSED, None)


def with_refusal_status(request: HttpRequest, response: HttpResponse) -> HttpResponse:
    """A login page answering a refused attempt: 429, with Retry-After."""
    refused = refusal(request)
    if refused is not None:
        response.status_code = refused.status
        response["Retry-After"] = refused.headers["Retry-After"]
    return response


class ThrottledForm(AuthenticationForm):
    """Says "too many failed attempts" rather than "wrong password" when the
    attempt was refused unchecked."""

    def get_invalid_login_error(self) -> ValidationError:
        refused = refusal(self.request) if self.request is not None else None
        if refused is None:
            return super().get_invalid_login_error()
        return ValidationError(refused.message, code=refused.code)


class ThrottledAdminForm(ThrottledForm, AdminAuthenticationForm):
    pass
