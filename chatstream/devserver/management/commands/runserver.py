"""daphne's `runserver`: the project's ASGI application, static files included."""

from daphne.management.commands.runserver import Command  # noqa: F401
