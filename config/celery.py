"""The Celery app. Tasks are autodiscovered from each app's `tasks.py`."""

import logging
import os
import uuid

from celery import Celery
from celery.signals import celeryd_init, worker_process_init, worker_ready, worker_shutdown

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

app = Celery("config", task_cls="celery.contrib.django.task:DjangoTask")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


# The node name of the worker this process belongs to ("" outside a worker) and the id
# of its lease (None outside a worker; see threads.services.workers): each run records
# the worker that started it. Set in the worker's main process before its pool starts,
# so its pool processes inherit them.
_worker = {"name": "", "lease": None, "heartbeat": None, "pid": None}


def worker_name() -> str:
    return _worker["name"]


def worker_lease() -> uuid.UUID | None:
    return _worker["lease"]


@celeryd_init.connect
def _remember_worker_name(sender=None, **kwargs):
    _worker["name"] = str(sender or "")
    _worker["lease"] = uuid.uuid4()  # this start of the worker's; taken when it is ready
    _worker["pid"] = os.getpid()  # its main process


@worker_ready.connect
def _take_lease_and_recover_lost_runs(sender=None, **kwargs):
    """A worker ready takes its lease, keeps renewing it (a heartbeat thread), and ends
    the runs its name lost when it stopped before (those of a predecessor whose lease
    is still live: once it expires)."""
    from django.db import connection

    from threads.models import WorkerLease
    from threads.services.runs import recover_lost_runs
    from threads.services.workers import Heartbeat, take_lease

    name = getattr(sender, "hostname", "") or worker_name()
    if _worker["lease"] is None:
        _worker["lease"] = uuid.uuid4()
    lease, recheck = WorkerLease(pk=_worker["lease"], name=name), False
    try:
        lease, others = take_lease(lease_id=lease.pk, name=name)
        recheck = bool(others)
        recover_lost_runs(executor=name)
    except Exception:  # never keeps the worker from serving (the heartbeat takes the lease later)
        logging.getLogger(__name__).exception("Taking this worker's lease or recovering its lost runs failed")
    finally:
        connection.close()
    _worker["heartbeat"] = Heartbeat(lease, recheck=recheck)
    _worker["heartbeat"].start()


@worker_process_init.connect
def _take_pool_process_lease(**kwargs):
    """A prefork pool process executes runs itself, so it holds a lease of its own,
    renewed by a heartbeat thread of its own: one killed (out of memory, a signal)
    while the worker's main process lives lets its lease expire, and its run ends —
    under the main process's lease it would stay `running` as long as the worker
    lives. Named after the worker and the process (not taken for a second worker
    under the worker's name); runs still record the worker's node name."""
    from threads.models import WorkerLease
    from threads.services.workers import Heartbeat

    if not _worker["name"] or os.getpid() == _worker.get("pid"):  # the solo pool sends it in the main process
        return
    _worker["lease"] = uuid.uuid4()
    _worker["heartbeat"] = Heartbeat(WorkerLease(pk=_worker["lease"], name=f"{_worker['name']} process {os.getpid()}"))
    _worker["heartbeat"].start()


@worker_shutdown.connect
def _stop_heartbeat(**kwargs):
    if _worker["heartbeat"] is not None:
        _worker["heartbeat"].stop()
