"""The ways the tests and the benchmarks serve the app: Django's own ASGI
handler and middleware (`stock`, as a project that installs the app does),
the opt-in ones (`fast`, as chatstream's project does: conversations/asgi.py
and conversations/middleware.py), and each opt-in alone."""

# (the opt-in handler, the opt-in middleware)
STACKS = {"stock": (False, False), "middleware": (False, True), "handler": (True, False), "fast": (True, True)}

# The stock class each opt-in middleware stands in for.
STOCK_MIDDLEWARE = {
    "conversations.middleware.Security": "django.middleware.security.SecurityMiddleware",
    "conversations.middleware.Session": "django.contrib.sessions.middleware.SessionMiddleware",
    "conversations.middleware.Common": "django.middleware.common.CommonMiddleware",
    "conversations.middleware.Csrf": "django.middleware.csrf.CsrfViewMiddleware",
    "conversations.middleware.Authentication": "django.contrib.auth.middleware.AuthenticationMiddleware",
    "conversations.middleware.Messages": "django.contrib.messages.middleware.MessageMiddleware",
    "conversations.middleware.XFrameOptions": "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "conversations.middleware.ContentSecurityPolicy": "django.middleware.csp.ContentSecurityPolicyMiddleware",
}


def checked(stack: str) -> str:
    if stack not in STACKS:
        raise ValueError(f"CHATSTREAM_STACK is {stack!r}: use one of {', '.join(STACKS)}")
    return stack


def middleware(stack: str, project_middleware: list[str]) -> list[str]:
    """The project's MIDDLEWARE (on the opt-in classes) for `stack`."""
    return (
        list(project_middleware)
        if uses_opt_in_middleware(stack)
        else [STOCK_MIDDLEWARE.get(m, m) for m in project_middleware]
    )


def uses_opt_in_handler(stack: str) -> bool:
    return STACKS[checked(stack)][0]


def uses_opt_in_middleware(stack: str) -> bool:
    return STACKS[checked(stack)][1]
