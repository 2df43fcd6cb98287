"""Sending work to Celery after commit, never at the cost of a request.

`send_after_commit(task, ...)` queues the task once the current transaction commits.
With a broker, a broker that is down is logged and forgotten: the work is recorded in
the database (an outbox row, a state) that a periodic reconciler drains. With tasks
executed in-process (no broker, `CELERY_TASK_ALWAYS_EAGER`), the task body runs once,
without Celery's retries (which would run back-to-back inside the request): a failure
is logged and left to the reconciler and its backoff.
"""

import logging
from functools import partial

from django.db import transaction

logger = logging.getLogger(__name__)


def eager() -> bool:
    from config.celery import app

    return bool(app.conf.task_always_eager)


def send_now(task, *args, **kwargs) -> None:
    if eager():
        try:
            task.run(*args, **kwargs)
        except Exception as exc:
            logger.warning("Task %s failed in-process; left to its reconciler: %s", task.name, exc)
        return
    task.delay(*args, **kwargs)


def send_after_commit(task, *args, **kwargs) -> None:
    transaction.on_commit(partial(send_now, task, *args, **kwargs), robust=True)
