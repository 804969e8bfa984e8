"""The app as a settings module with a STACK (harness/settings.py,
tests/settings.py) serves it: Django's own ASGI handler, or the opt-in one;
set up as chatstream/asgi.py sets it up, so only the stack differs."""

import gc
import os

import django
from django.conf import settings

from harness import stacks

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "harness.settings")
django.setup(set_prefix=False)

if stacks.uses_opt_in_handler(settings.STACK):
    from conversations.asgi import ChatstreamASGIHandler

    application = ChatstreamASGIHandler()
else:
    from django.core.handlers.asgi import ASGIHandler

    application = ASGIHandler()  # what get_asgi_application() returns

gc.collect()
gc.freeze()  # as chatstream/asgi.py does
