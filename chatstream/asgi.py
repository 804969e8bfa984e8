"""The ASGI application: served by daphne (`manage.py runserver`) in
development and by uvicorn in production. There is no WSGI entry point on
purpose: a WSGI server would buffer every answer whole."""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "chatstream.settings")

application = get_asgi_application()
