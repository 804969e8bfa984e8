"""The chat page."""

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.csrf import ensure_csrf_cookie

from ..conf import conf

# The page may run only the app's own scripts and styles, and talk only to
# its own server: model output rendered into it can never load or run
# anything. Set by the view, so it holds in any project that installs the app
# (a project's own policy, if it sets one, is left as it is). Images may also
# be blob: URLs, which only this page's script can make: the thumbnails of
# files being attached, shown before they are uploaded.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)


@login_required
@ensure_csrf_cookie  # the page's script sends it back as X-CSRFToken
def chat(request: HttpRequest) -> HttpResponse:
    # The largest file the server takes, and how many one message may carry:
    # the page refuses more before sending a byte of it.
    context = {
        "max_file_bytes": conf.CHATSTREAM_MAX_FILE_BYTES,
        "max_files_per_message": conf.CHATSTREAM_MAX_FILES_PER_MESSAGE,
    }
    response = render(request, "conversations/chat.html", context)
    response.headers.setdefault("Content-Security-Policy", CONTENT_SECURITY_POLICY)
    return response
