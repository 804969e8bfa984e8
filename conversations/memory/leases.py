"""Memory jobs whose worker died, taken up again.

django-tasks-db (0.13) claims a job by setting it RUNNING with the worker's
id, and nothing ever looks at it again: a worker killed with -9 (or by the
OOM killer, or with its machine) leaves the job RUNNING for ever. So each
`db_worker` process keeps a lease on the memory jobs it runs, renewed three
times per CHATSTREAM_WORKER_LEASE_SECONDS by a thread of its own, and looks
as often for memory jobs whose lease ran out. Such a job is queued again:
`update_memory` writes only over the version it read, so running it twice
is safe. One whose workers died CHATSTREAM_MEMORY_ATTEMPTS times (a job
that kills its worker) is marked failed instead.

Only the tasks API's signals are used (task_started, task_finished), so the
stock `db_worker` keeps working as it is; a job is leased from its start, a
running memory job without a lease (started before this) lapses once it has
run a whole lease period.
"""

import logging
import threading
from datetime import timedelta

from django.db import DatabaseError, close_old_connections, transaction
from django.utils import timezone
from django_tasks_db.compat import TaskResultStatus
from django_tasks_db.models import DBTaskResult

from ..conf import conf
from ..exceptions import WorkerLost
from ..models import TaskLease
from .tasks import update_memory

try:
    from django.tasks.signals import task_finished, task_started  # Django 6.0 and later
except ImportError:
    from django_tasks.signals import task_finished, task_started  # type: ignore[no-redef,unused-ignore]

logger = logging.getLogger(__name__)

# The task's path, and the one jobs queued before it moved still name.
MEMORY_TASK_PATHS = (update_memory.module_path, "conversations.memory.update_memory")


def lapse_at():
    return timezone.now() + timedelta(seconds=conf.CHATSTREAM_WORKER_LEASE_SECONDS)


def take_up_lost_jobs() -> int:
    """Queue again (or fail) every running memory job whose lease ran out;
    how many. Each in its own transaction, over the row as it was read."""
    now = timezone.now()
    running = DBTaskResult.objects.running().filter(task_path__in=MEMORY_TASK_PATHS)
    leases = dict(TaskLease.objects.filter(task_id__in=running.values("id")).values_list("task_id", "expires_at"))
    unleased_before = now - timedelta(seconds=conf.CHATSTREAM_WORKER_LEASE_SECONDS)
    taken = 0
    for job in running.only("id", "started_at", "worker_ids"):
        expires_at = leases.get(job.id)
        lapsed = expires_at < now if expires_at else bool(job.started_at and job.started_at < unleased_before)
        if lapsed:
            taken += _take_up(job)
    return taken


def _take_up(job: DBTaskResult) -> int:
    workers = len(job.worker_ids)
    give_up = workers >= conf.CHATSTREAM_MEMORY_ATTEMPTS
    with transaction.atomic():
        # Only if it is still the run we saw: its worker may have ended it meanwhile.
        same_run = DBTaskResult.objects.running().filter(pk=job.pk, started_at=job.started_at)
        if give_up:
            taken = same_run.update(
                status=TaskResultStatus.FAILED,
                finished_at=timezone.now(),
                exception_class_path=f"{WorkerLost.__module__}.{WorkerLost.__qualname__}",
                traceback=f"{WorkerLost.__name__}: the worker running it died, {workers} times\n",
            )
        else:
            taken = same_run.update(status=TaskResultStatus.READY, started_at=None)
        TaskLease.objects.filter(task_id=job.pk).delete()
    if taken:
        outcome = "failed" if give_up else "queued again"
        logger.warning("memory job %s lost its worker (%d so far): %s", job.pk, workers, outcome)
    return taken


class LeaseKeeper:
    """The worker process's thread: renews the leases of the memory jobs it
    runs, and takes up other workers' lost ones."""

    def __init__(self) -> None:
        self.running: set = set()  # ids of the memory jobs this process runs
        self.lock = threading.Lock()
        self.stopping = threading.Event()

    def job_started(self, sender, task_result, **kwargs) -> None:
        if task_result.task.module_path not in MEMORY_TASK_PATHS:
            return
        try:
            TaskLease.objects.update_or_create(task_id=task_result.id, defaults={"expires_at": lapse_at()})
        except DatabaseError:  # raised here, it would fail the job; unleased, it may run twice, which is safe
            logger.exception("memory job %s: no lease taken", task_result.id)
        with self.lock:
            self.running.add(task_result.id)

    def job_finished(self, sender, task_result, **kwargs) -> None:
        with self.lock:
            if task_result.id not in self.running:
                return
            self.running.discard(task_result.id)
        TaskLease.objects.filter(task_id=task_result.id).delete()

    def loop(self) -> None:
        """At once (jobs lost while no worker ran), then three times a lease."""
        while True:
            try:
                self.tick()
            except Exception:  # the database away for a moment: the next tick tries again
                logger.exception("memory job leases: renewal failed")
            finally:
                close_old_connections()
            if self.stopping.wait(conf.CHATSTREAM_WORKER_LEASE_SECONDS / 3):
                return

    def tick(self) -> None:
        with self.lock:
            running = list(self.running)
        if running:
            TaskLease.objects.filter(task_id__in=running).update(expires_at=lapse_at())
        take_up_lost_jobs()

    def start(self) -> None:
        task_started.connect(self.job_started, dispatch_uid="conversations.memory.leases.started")
        task_finished.connect(self.job_finished, dispatch_uid="conversations.memory.leases.finished")
        threading.Thread(target=self.loop, name="memory-job-leases", daemon=True).start()
