"""Process-wide state: built from the settings at first use, never at
import, and forgotten when a setting it was built from changes."""

import subprocess
import sys
import textwrap

import pytest

from conversations import state
from conversations.live import LocalAnswers, client, live_answers
from conversations.live.redis import RedisAnswers
from conversations.storage import threads

from .helpers import process_env, redis_url, send

pytestmark = pytest.mark.django_db(transaction=True)


def test_no_module_reads_a_setting_at_import(upstream_server):
    """Every module of the app imported, Django set up first, with each
    setting's read recorded: a module that read one at import would build
    its state from the settings of whoever imported it first."""
    script = textwrap.dedent(
        """
        import importlib, pkgutil, traceback
        from conversations.conf import Setting

        reads = []
        get = Setting.__get__
        def recording(self, instance, owner):
            if instance is not None:
                reads.append((self.name, traceback.format_stack(limit=4)[0]))
            return get(self, instance, owner)
        Setting.__get__ = recording

        import django
        django.setup()
        import conversations
        for module in pkgutil.walk_packages(conversations.__path__, "conversations."):
            importlib.import_module(module.name)
        print(reads)
        """
    )
    env = process_env(upstream_server.url)
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_changing_redis_url_closes_the_old_clients_on_their_loop(live, alice, upstream, settings):
    settings.REDIS_URL = redis_url(1)  # the in-process server's own
    send(alice, alice.new_conversation(), "Hello")
    answers = live_answers()
    assert isinstance(answers, RedisAnswers) and answers.processes and client.loops()

    settings.REDIS_URL = ""

    assert not answers.processes and not client.loops()  # closed on the server's loop
    assert isinstance(live_answers(), LocalAnswers)
    send(alice, alice.new_conversation(), "Hello again")  # served without Redis


def test_a_new_thread_count_makes_new_database_threads(live, alice, settings):
    first = threads._executor()
    settings.CHATSTREAM_DB_THREADS = first.size + 1
    assert alice.client.get("/api/conversations").status_code == 200
    assert threads._executor().size == first.size + 1
    assert first._shutdown  # its connections closed, its threads ended


def test_reset_forgets_what_a_setting_change_does_not(settings):
    from conversations.stream import shutdown

    shutdown._draining = True
    state.reset()
    assert not shutdown.draining()
