import sys

from django.apps import AppConfig
from django.conf import settings
from django.core.signals import setting_changed


class ConversationsConfig(AppConfig):
    name = "conversations"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from . import checks, state  # noqa: F401  (register the system checks)
        from .access import logins  # noqa: F401  (count failed logins)
        from .files import cleanup  # noqa: F401  (files' bytes deleted after their rows)
        from .queued import starting  # noqa: F401  (a queued message starts when an answer ends)

        setting_changed.connect(state.setting_changed, dispatch_uid="chatstream-state")

        # redis-py is imported where it is used (live/client.py), so a process
        # without REDIS_URL never loads it; with it, the first request needs
        # it, and importing it then (about a second on a busy machine) would
        # hold the event loop. Only a module is loaded here, no state is
        # built from the setting (state.py builds the clients at first use),
        # so it is read from Django's settings and not through conf.
        if getattr(settings, "REDIS_URL", ""):
            import redis.asyncio  # noqa: F401

        # The tasks API has no signal for a worker's start: its command line says.
        if sys.argv[1:2] == ["db_worker"]:
            from .data.retention import keep_scheduled_soon
            from .memory.leases import LeaseKeeper

            LeaseKeeper().start()
            keep_scheduled_soon()  # the retention sweep, which then queues its own next run
