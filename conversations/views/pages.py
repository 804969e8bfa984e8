"""Server-rendered pages."""

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.csrf import ensure_csrf_cookie


@login_required
@ensure_csrf_cookie  # the page's script sends it back as X-CSRFToken
def chat(request: HttpRequest) -> HttpResponse:
    return render(request, "conversations/chat.html")
