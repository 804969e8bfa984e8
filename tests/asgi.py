"""The app as the suite's stack serves it (tests/settings.py): Django's own
ASGI handler, or the project's opt-in one. The tests serve it in a thread
(conftest.py) or run it under uvicorn in processes of its own."""

import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.settings")

from django.conf import settings  # noqa: E402

if settings.STACK == "fast":
    from chatstream.asgi import application
else:
    from django.core.asgi import get_asgi_application

    application = get_asgi_application()

__all__ = ["application"]
