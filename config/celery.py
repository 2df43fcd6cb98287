"""The Celery app. Tasks are autodiscovered from each app's `tasks.py`."""

import os

import logging

from celery import Celery
from celery.signals import celeryd_init, worker_ready

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

app = Celery("config", task_cls="celery.contrib.django.task:DjangoTask")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


# The node name of the worker this process belongs to ("" outside a worker): each run
# records the worker that started it. Set in the worker's main process before its pool
# starts, so its pool processes inherit it.
_worker = {"name": ""}


def worker_name() -> str:
    return _worker["name"]


@celeryd_init.connect
def _remember_worker_name(sender=None, **kwargs):
    _worker["name"] = str(sender or "")


@worker_ready.connect
def _recover_lost_runs(sender=None, **kwargs):
    """A worker starting again ends the runs it left `running` when it stopped."""
    from django.db import connection

    from threads.services.runs import recover_lost_runs

    try:
        recover_lost_runs(executor=getattr(sender, "hostname", "") or worker_name())
    except Exception:  # never keeps the worker from serving
        logging.getLogger(__name__).exception("Recovering the runs this worker lost failed")
    finally:
        connection.close()
