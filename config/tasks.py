"""Sending work to Celery after commit, never at the cost of a request.

`send_after_commit(task, ...)` queues the task once the current transaction commits.
With a broker, the request only hands the task to this process's publisher thread
(a queue put, microseconds); the thread publishes it, and a broker that is down is
logged and forgotten there: the work is recorded in the database (an outbox row, a
state) that a periodic reconciler drains. With tasks executed in-process (no broker,
`CELERY_TASK_ALWAYS_EAGER`), the task body runs at once, without Celery's retries
(which would run back-to-back inside the request): a failure is logged and left to
the reconciler and its backoff.
"""

import atexit
import logging
import os
import queue
import threading
import time
from functools import partial

from django.db import transaction

logger = logging.getLogger(__name__)


def eager() -> bool:
    from config.celery import app

    return bool(app.conf.task_always_eager)


class Publisher:
    """One daemon thread per process that publishes the tasks handed to it, in order.

    Started on first use (and again in a forked child, which has no thread); at exit
    it is given a few seconds to empty its queue. A task it could not publish is left
    to its reconciler, as with a broker outage.
    """

    def __init__(self):
        self._lock = threading.Lock()
        self._pid = None
        self._queue: queue.Queue | None = None

    def put(self, task, args: tuple, kwargs: dict) -> None:
        self._started().put((task, args, kwargs))

    def flush(self, timeout: float = 5.0) -> bool:
        """Wait until every task handed over so far is published (or failed)."""
        pending = self._queue if self._pid == os.getpid() else None
        deadline = time.monotonic() + timeout
        while pending is not None and pending.unfinished_tasks:
            if time.monotonic() > deadline:
                return False
            time.sleep(0.005)
        return True

    def _started(self) -> queue.Queue:
        if self._pid != os.getpid():
            with self._lock:
                if self._pid != os.getpid():
                    self._queue = queue.Queue()
                    threading.Thread(target=self._publish, args=(self._queue,), name="task-publisher",
                                     daemon=True).start()
                    self._pid = os.getpid()
        return self._queue

    @staticmethod
    def _publish(tasks: queue.Queue) -> None:
        while True:
            task, args, kwargs = tasks.get()
            try:
                task.apply_async(args, kwargs)
            except Exception as exc:
                logger.warning("Task %s not sent; left to its reconciler: %s", task.name, exc)
            finally:
                tasks.task_done()


publisher = Publisher()
atexit.register(publisher.flush)


def send_now(task, *args, **kwargs) -> None:
    if eager():
        try:
            task.run(*args, **kwargs)
        except Exception as exc:
            logger.warning("Task %s failed in-process; left to its reconciler: %s", task.name, exc)
        return
    publisher.put(task, args, kwargs)


def send_after_commit(task, *args, **kwargs) -> None:
    transaction.on_commit(partial(send_now, task, *args, **kwargs), robust=True)


def retry_or_leave(task, exc: Exception, *, what: str) -> None:
    """In a bound task that failed on an outside outage: retry it with exponential
    backoff (`SANDBOX_RETRY_BACKOFF` seconds, doubling, at most
    `SANDBOX_RETRY_BACKOFF_MAX`); after its last retry return, with a warning — an
    outage is expected, not a bug worth a traceback — and the reconciler takes over."""
    from django.conf import settings

    if task.request.retries >= task.max_retries:
        logger.warning("%s given up after %d attempts; left to the reconciler: %s", what, task.request.retries + 1, exc)
        return
    countdown = min(settings.SANDBOX_RETRY_BACKOFF * 2 ** task.request.retries, settings.SANDBOX_RETRY_BACKOFF_MAX)
    raise task.retry(exc=exc, countdown=countdown)
