"""Sending work to Celery after commit, never at the cost of a request.

`send_after_commit(task, ...)` queues the task once the current transaction commits.
With a broker, the request only hands the task to this process's publisher thread
(a queue put, microseconds); the thread publishes it, and a broker that is down is
logged and forgotten there: the work is recorded in the database (an outbox row, a
state) that a periodic reconciler drains.

Publishing a task costs ~0.7 ms of Python (Celery's message building), which the
GIL takes from the requests: a task whose one keyword argument is a list of ids
(`batch_kwarg`, set on the task) is held for `BATCH_WINDOW` and sent once with the
ids of every call handed over meanwhile — one cleanup task for a burst of deletes,
one indexing task for a burst of messages; other tasks go at once.

With tasks executed in-process (no broker, `CELERY_TASK_ALWAYS_EAGER`), the task
body runs at once, without Celery's retries (which would run back-to-back inside the
request): a failure is logged and left to the reconciler and its backoff.
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

BATCH_WINDOW = 0.02  # seconds a batched task waits for more ids
BATCH_MAX = 1000  # ids per task at most


def eager() -> bool:
    from config.celery import app

    return bool(app.conf.task_always_eager)


class Publisher:
    """One daemon thread per process that publishes the tasks handed to it, in order
    (a batched task at the end of its window).

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
        """Send every task handed over so far (a batch's window cut short) and wait
        until each is published (or failed)."""
        pending = self._queue if self._pid == os.getpid() else None
        if pending is None:
            return True
        pending.put(_FLUSH)
        deadline = time.monotonic() + timeout
        with pending.all_tasks_done:
            while pending.unfinished_tasks:
                if (left := deadline - time.monotonic()) <= 0:
                    return False
                pending.all_tasks_done.wait(left)
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
            item = tasks.get()
            if item is _FLUSH:
                tasks.task_done()
            elif _batch_kwarg(item):
                for items in _held_for_window(item, tasks).values():
                    _send(items, tasks)
            else:
                _send([item], tasks)


def _held_for_window(first, tasks: queue.Queue) -> dict:
    """The batched calls handed over within `BATCH_WINDOW` of `first`, by task name
    (other tasks handed over meanwhile are sent at once); a flush ends the window."""
    held = {first[0].name: [first]}
    deadline = time.monotonic() + BATCH_WINDOW
    while (left := deadline - time.monotonic()) > 0:
        try:
            item = tasks.get(timeout=left)
        except queue.Empty:
            break
        if item is _FLUSH:
            tasks.task_done()
            break
        if _batch_kwarg(item):
            held.setdefault(item[0].name, []).append(item)
        else:
            _send([item], tasks)
    return held


_FLUSH = object()  # handed over by `flush`: send what is held now


def _batch_kwarg(item) -> str | None:
    """The keyword argument whose ids calls of this task may be merged by, if any."""
    task, args, kwargs = item
    name = getattr(task, "batch_kwarg", None)
    return name if name and not args and list(kwargs) == [name] else None


def _send(items: list, tasks: queue.Queue) -> None:
    """Publish these calls of one task (one call, or batched calls merged, in chunks of
    `BATCH_MAX` ids), then mark them done."""
    task, args, kwargs = items[0]
    try:
        if len(items) == 1:
            task.apply_async(args, kwargs)
        else:
            name = _batch_kwarg(items[0])
            ids = list(dict.fromkeys(i for _, _, kw in items for i in kw[name]))
            for start in range(0, len(ids), BATCH_MAX):
                task.apply_async((), {name: ids[start:start + BATCH_MAX]})
    except Exception as exc:
        logger.warning("Task %s not sent; left to its reconciler: %s", task.name, exc)
    finally:
        for _ in items:
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
