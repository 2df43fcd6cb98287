"""Worker leases: how a live Celery worker is told from a lost one.

Each start of a worker process takes a lease (`WorkerLease`, an id of its own) when
it is ready, and a heartbeat thread of its main process renews it every quarter of
`WORKER_LEASE_SECONDS`; every run it starts or resumes records that lease
(`Run.executor_lease`). A lease not renewed for `WORKER_LEASE_SECONDS`, by the
database's clock (no machine's clock matters), has expired: its worker was killed,
lost its host, or was scaled down without finishing its runs, and
`runs.recover_lost_runs` ends them. A live worker keeps renewing, so its runs are
never ended however long they take; two workers under one node name hold two leases,
so neither's runs are taken for the other's.
"""

import logging
import threading
import time
from datetime import datetime, timedelta

from django.conf import settings
from django.db import connection
from django.db.models import Exists, OuterRef, Q
from django.db.models.functions import Now

from ..models import Run, RunStatus, WorkerLease

logger = logging.getLogger(__name__)

# An expired lease is deleted this long after its last renewal, once no running run names it.
PRUNE_AFTER = timedelta(days=7)


def expired_leases():
    """The leases not renewed within `WORKER_LEASE_SECONDS`."""
    return WorkerLease.objects.filter(renewed_at__lt=Now() - timedelta(seconds=settings.WORKER_LEASE_SECONDS))


def live_leases():
    return WorkerLease.objects.filter(renewed_at__gte=Now() - timedelta(seconds=settings.WORKER_LEASE_SECONDS))


def unrenewed() -> Q:
    """Runs whose executor's lease is not live: expired, or with no row at all (the
    worker could not take it and was lost before its heartbeat did, or the row was
    deleted by hand) once the run has been going for longer than a lease — a lease
    is taken before its worker executes anything, so a live one has its row by then."""
    lease = timedelta(seconds=settings.WORKER_LEASE_SECONDS)
    return Q(executor_lease__isnull=False) & ~Q(executor_lease__in=live_leases().values("pk")) & (
        Q(executor_lease__in=expired_leases().values("pk")) | Q(started_at__lt=Now() - lease))


def take_lease(*, lease_id, name: str) -> tuple[WorkerLease, list]:
    """A worker process, ready: its lease, renewed now, and the other live leases
    under the same node name: a worker that stopped moments ago (its runs end when its
    lease expires) or a second worker under this name (its runs are its own); logged."""
    WorkerLease.objects.update_or_create(pk=lease_id, defaults={"name": name, "renewed_at": Now()},
                                         create_defaults={"name": name})
    others = list(live_leases().filter(name=name).exclude(pk=lease_id).values_list("pk", flat=True))
    if others:
        logger.warning(
            "Another worker process under the name %s renewed its lease within the last %d s (lease %s): it "
            "stopped moments ago, and its runs end when its lease expires, or it is a second worker under this "
            "name, whose runs are left to it (give each worker its own name, -n)",
            name, settings.WORKER_LEASE_SECONDS, ", ".join(map(str, others)))
    return WorkerLease.objects.get(pk=lease_id), others


def renew_lease(lease: WorkerLease, *, known: set) -> set:
    """Renew `lease` (one `UPDATE`). A lease that lapsed is renewed again, and said:
    the runs its worker was executing may have been ended meanwhile (what they still
    produce is then dropped). Returns the ids of the other leases under the same name
    renewed since this one was taken — a second worker under this name — logged once
    each (those in `known` were already)."""
    fresh = live_leases().filter(pk=lease.pk).update(renewed_at=Now())
    if not fresh:
        if WorkerLease.objects.filter(pk=lease.pk).update(renewed_at=Now()):
            logger.error("The lease of worker %s lapsed (not renewed for %d s): the runs it was executing may have "
                         "been ended as lost, and what they still produce is dropped",
                         lease.name, settings.WORKER_LEASE_SECONDS)
        else:  # never taken (the database was unreachable when the worker started), or deleted by hand
            WorkerLease.objects.create(pk=lease.pk, name=lease.name)
    if not isinstance(lease.started_at, datetime):  # an instance never saved (its database default)
        lease.refresh_from_db()
    twins = set(WorkerLease.objects.filter(name=lease.name, renewed_at__gt=lease.started_at)
                .exclude(pk=lease.pk).values_list("pk", flat=True))
    for twin in twins - known:
        logger.error("Two workers run under the name %s (leases %s and %s): each keeps its own runs, but give "
                     "each worker its own name (-n)", lease.name, lease.pk, twin)
    return twins


def prune_leases() -> int:
    """Delete the leases expired for `PRUNE_AFTER` that no running run names."""
    deleted, _ = WorkerLease.objects.filter(renewed_at__lt=Now() - PRUNE_AFTER).exclude(
        Exists(Run.objects.filter(status=RunStatus.RUNNING, executor_lease=OuterRef("pk")))
    ).delete()
    return deleted


class Heartbeat(threading.Thread):
    """A daemon thread of a worker's main process that renews its lease every quarter
    of `WORKER_LEASE_SECONDS`, whatever its pool executes. A failure (the database
    unreachable) is logged and tried again at the next beat. `recheck`: another live
    lease was under this name when the worker started (a predecessor killed moments
    before, or a twin): once that lease would have expired, the worker ends its name's
    lost runs again (`recover_lost_runs`), without waiting for beat."""

    def __init__(self, lease: WorkerLease, *, recheck: bool = False):
        super().__init__(name="worker-lease", daemon=True)
        self.lease = lease
        self.interval = settings.WORKER_LEASE_SECONDS / 4
        self.recheck_at = time.monotonic() + settings.WORKER_LEASE_SECONDS + self.interval if recheck else None
        self.stopped = threading.Event()

    def run(self) -> None:
        from .runs import recover_lost_runs

        twins: set = set()
        first = True  # renewed (or taken: a pool process's) at once, then every interval
        while first or not self.stopped.wait(self.interval):
            first = False
            try:
                twins |= renew_lease(self.lease, known=twins)
                if self.recheck_at is not None and time.monotonic() >= self.recheck_at:
                    self.recheck_at = None
                    recover_lost_runs(executor=self.lease.name)
            except Exception:
                logger.exception("Renewing the lease of worker %s failed", self.lease.name)
            finally:
                connection.close()

    def stop(self) -> None:
        self.stopped.set()
