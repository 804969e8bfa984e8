"""A conversation's memory: a rolling summary and the facts its user stated,
kept by a background task so a prompt needs only the memory and the newest
turns.

    tasks.py     the task, queued after each answer commits, and its writes
    prompt.py    a prompt within the token budget: system, memory, newest turns
    request.py   how the memory model is asked, and how its reply is read
    leases.py    jobs whose worker died, queued again (each `db_worker` leases its job)
"""

# Jobs queued before the memory moved into this package name the task by its
# old path; the worker still finds it here.
from .tasks import update_memory

__all__ = ["update_memory"]
