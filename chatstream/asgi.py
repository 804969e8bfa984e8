"""The ASGI application: served by daphne (`manage.py runserver`) in
development and by uvicorn in production. There is no WSGI entry point on
purpose: a WSGI server would buffer every answer whole.

This project runs the app's opt-in handler (conversations/asgi.py: the API on
the event loop, running answers saved at shutdown); a project of your own can
serve the app with Django's `get_asgi_application()` as it is.
"""

import gc
import os

import django
from django.core import checks
from django.core.management.base import SystemCheckError

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "chatstream.settings")
django.setup(set_prefix=False)  # as get_asgi_application() does

from conversations.asgi import ChatstreamASGIHandler  # noqa: E402  (needs the apps loaded)

from .tracing import configure_from_environment  # noqa: E402

configure_from_environment()  # spans per answer, when an OTLP endpoint is set
application = ChatstreamASGIHandler()

# `runserver` runs the system checks before it serves; uvicorn does not, so a
# misconfiguration (conversations/checks.py) stops the process here instead.
serious = [message for message in checks.run_checks() if message.is_serious()]
if serious:
    raise SystemCheckError("\n".join(str(message) for message in serious))

# Everything loaded so far (Django, the URLconf, the models) lives as long as
# the process. Moving it out of the collector's sight keeps full collections
# short: otherwise each one pauses every open stream for ~50 ms (bench/).
gc.collect()
gc.freeze()
