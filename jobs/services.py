"""Submitting, running and cancelling background jobs.

`submit_job` fixes the scope (the ids of a queryset, copied into `JobTarget` rows in
one statement) and sends the job to the worker after commit. `run_job` works through
the targets a batch at a time; each batch is one transaction that locks the job row,
runs the service (`delete_threads`, `keep_latest_checkpoints`, `close_threads`,
`delete_project`, `delete_account`, `release_agent_threads` then `delete_agent`), moves the job's cursor past the targets it handled and records
the progress, so the
progress shown is always what is committed. A cancel request is honoured between two
batches. There is no other way to do the work: the admin's small selections and the
`prune_threads` command's foreground run call the same services directly.
`submit_job_once` (the admin's) starts nothing when an unfinished job of the same kind
already covers the selection: a confirmation posted twice runs one job.
"""

import logging
import zlib

from django.conf import settings
from django.core.exceptions import EmptyResultSet
from django.db import connection, transaction
from django.db.models import F, QuerySet
from django.db.models.functions import Coalesce
from django.utils import timezone

from config.tasks import send_after_commit
from receipts.context import acting

from .models import Job, JobKind, JobState, JobTarget

logger = logging.getLogger(__name__)


def job_threshold() -> int:
    """Above this many threads, the admin runs a destructive operation as a job."""
    return settings.BACKGROUND_JOBS["threshold"]


@transaction.atomic
def submit_job(*, kind: str, targets: QuerySet, total: int, description: str, created_by=None,
               source: str = "admin", batch_size: int | None = None) -> Job:
    """Create a job over the ids of `targets` (threads for the thread kinds, projects,
    accounts or agents for theirs) and send it to the worker after commit. `total` is the
    number of threads it will process (its progress unit). Two queries."""
    job = Job.objects.create(
        kind=JobKind(kind), total=total, description=description[:300], source=source,
        created_by=created_by if getattr(created_by, "pk", None) else None,
        batch_size=batch_size or settings.BACKGROUND_JOBS["batch_size"],
    )
    try:
        select, params = targets.order_by().values("pk").query.sql_with_params()
    except EmptyResultSet:
        select = None
    if select is not None:
        q = connection.ops.quote_name
        table = q(JobTarget._meta.db_table)
        job_column, object_column = (q(JobTarget._meta.get_field(f).column) for f in ("job", "object_id"))
        job_id = Job._meta.pk.get_db_prep_value(job.pk, connection)
        with connection.cursor() as cursor:
            cursor.execute(
                f"INSERT INTO {table} ({job_column}, {object_column}) SELECT %s, selected.* FROM ({select}) selected",
                [job_id, *params],
            )
    send_job(job_id=job.pk)
    return job


JOB_SUBMIT_LOCK = 0x6A6F6273  # the advisory lock space of job submissions ("jobs")


@transaction.atomic
def submit_job_once(*, kind: str, targets: QuerySet, **fields) -> tuple[Job, bool]:
    """`submit_job`, unless an unfinished job of the same kind (pending, or running
    with no cancel requested) already has every one of `targets` among its own: then
    that job, and nothing is started — (job, started). So a confirmation page posted
    twice (two tabs, back and submit again, two people) runs one job: the second post
    finds the first job's targets, all of them still listed while it runs (those it
    has handled are gone from the second post's selection, which is why it is "every
    one of", not "the same"). Submissions of one kind take a transaction-level lock
    (PostgreSQL advisory lock), so two posts at the same moment do not both start."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s::integer, %s::integer)",
                           [JOB_SUBMIT_LOCK, zlib.crc32(kind.encode()) >> 1])
    job = unfinished_job_covering(kind=kind, targets=targets)
    if job is not None:
        return job, False
    return submit_job(kind=kind, targets=targets, **fields), True


def unfinished_job_covering(*, kind: str, targets: QuerySet) -> Job | None:
    """The oldest unfinished job of `kind` (no cancel requested) whose targets include
    every object of `targets`; None if `targets` is empty. One query per such job (a
    handful at most), each an anti-join on the (job, object_id) index."""
    selected = targets.order_by().values("pk")
    if not selected.exists():
        return None
    candidates = Job.objects.filter(kind=kind, state__in=[JobState.PENDING, JobState.RUNNING],
                                    cancel_requested_at__isnull=True).order_by("created_at")
    for job in candidates:
        if not selected.exclude(pk__in=JobTarget.objects.filter(job_id=job.pk).values("object_id")).exists():
            return job
    return None


def send_job(*, job_id) -> None:
    """After commit; `robust`: with the broker down, the beat task sends it again."""
    from .tasks import run_job

    send_after_commit(run_job, str(job_id))


def request_cancel(*, job: Job) -> Job:
    """A pending job is cancelled at once; a running one stops before its next
    batch (the batch under way finishes or rolls back whole)."""
    now = timezone.now()
    if Job.objects.filter(pk=job.pk, state=JobState.PENDING).update(
        state=JobState.CANCELLED, cancel_requested_at=now, finished_at=now, updated_at=now
    ):
        JobTarget.objects.filter(job_id=job.pk).delete()
    else:
        Job.objects.filter(pk=job.pk, state=JobState.RUNNING, cancel_requested_at__isnull=True).update(
            cancel_requested_at=now
        )
    return Job.objects.get(pk=job.pk)


def run_job(*, job_id) -> Job | None:
    """Run (or resume) a job to its end: done, cancelled or failed."""
    now = timezone.now()
    claimed = Job.objects.filter(pk=job_id, state__in=[JobState.PENDING, JobState.RUNNING]).update(
        state=JobState.RUNNING, started_at=Coalesce(F("started_at"), now), updated_at=now
    )
    if not claimed:
        return Job.objects.filter(pk=job_id).first()
    step = STEPS[Job.objects.values_list("kind", flat=True).get(pk=job_id)]
    while True:
        try:
            with transaction.atomic():
                job = Job.objects.select_for_update().get(pk=job_id)
                if job.state != JobState.RUNNING:
                    return job
                if job.cancel_requested_at is not None:
                    return finish(job, JobState.CANCELLED)
                with acting(source=job.source, user=job.created_by, operation_id=job.pk):  # the receipts
                    progress = step(job)
                if progress is None:
                    return finish(job, JobState.DONE)
                processed, affected = progress
                job.done += processed
                job.affected += affected
                job.batches += 1
                job.save(update_fields=["done", "affected", "batches", "cursor", "updated_at"])
        except Exception as exc:  # the batch was rolled back whole
            logger.exception("Job %s failed in batch %d", job_id, Job.objects.get(pk=job_id).batches + 1)
            with transaction.atomic():
                job = Job.objects.select_for_update().get(pk=job_id)
                job.error = f"{type(exc).__name__}: {exc}"[:2000]
                return finish(job, JobState.FAILED)


def finish(job: Job, state: str) -> Job:
    job.state = state
    job.finished_at = timezone.now()
    if state == JobState.DONE:
        # What was processed: more when threads were created meanwhile in a project or
        # account being deleted, fewer when sub-threads went with their parents.
        job.total = job.done
    job.save(update_fields=["state", "finished_at", "total", "error", "updated_at"])
    if state != JobState.FAILED:
        JobTarget.objects.filter(job_id=job.pk).delete()  # what a cancelled job did not reach is not its work any more
    return job


def requeue_stalled_jobs(*, pending_for: int = 60, silent_for: int = 600) -> int:
    """Send again the jobs the broker lost (pending for a minute) or whose worker died
    (running, no batch for ten minutes). Safe: batches lock the job row."""
    now = timezone.now()
    from datetime import timedelta

    stalled = list(
        Job.objects.filter(state=JobState.PENDING, created_at__lt=now - timedelta(seconds=pending_for))
        .union(Job.objects.filter(state=JobState.RUNNING, updated_at__lt=now - timedelta(seconds=silent_for)))
        .values_list("pk", flat=True)
    )
    for job_id in stalled:
        send_job(job_id=job_id)
    return len(stalled)


# --- One batch of each kind: (threads processed, threads deleted or pruned), or
# --- None when no target is left.


def next_targets(job: Job, size: int) -> list:
    """The next targets after the cursor (an index range scan on (job, object_id))."""
    targets = JobTarget.objects.filter(job=job)
    if job.cursor is not None:
        targets = targets.filter(object_id__gt=job.cursor)
    return list(targets.order_by("object_id").values_list("object_id", flat=True)[:size])


def _thread_batch(service, job: Job):
    ids = next_targets(job, job.batch_size)
    if not ids:
        return None
    affected = service(thread_ids=ids)
    job.cursor = ids[-1]
    return len(ids), affected


def _delete_threads(job):
    from threads.services import delete_threads

    return _thread_batch(delete_threads, job)


def _keep_latest(job):
    from threads.services import keep_latest_checkpoints

    return _thread_batch(keep_latest_checkpoints, job)


def _container_batch(job, *, field: str, delete_container):
    """Delete the threads of the first target (a project or an account) a batch at a
    time; when it holds none, delete the target itself through its service."""
    from threads.models import Thread
    from threads.services import delete_threads

    ids = next_targets(job, 1)
    if not ids:
        return None
    ids_in_target = list(  # any batch of them (no sort): those deleted are gone from the next one
        Thread.objects.filter(**{field: ids[0]}).order_by().values_list("pk", flat=True)[: job.batch_size]
    )
    if ids_in_target:
        return len(ids_in_target), delete_threads(thread_ids=ids_in_target)
    delete_container(ids[0])
    job.cursor = ids[0]
    return 0, 0


def _delete_projects(job):
    from config.errors import NotFound
    from projects.models import Project
    from projects.services import delete_project

    def delete(project_id):
        project = Project.objects.filter(pk=project_id).first()
        if project is not None:  # its last thread's deletion usually took it
            try:
                delete_project(project=project)
            except NotFound:  # or a concurrent deletion, meanwhile
                pass

    return _container_batch(job, field="project_id", delete_container=delete)


def _delete_accounts(job):
    from projects.models import Account
    from projects.services import delete_account

    def delete(account_id):
        account = Account.objects.filter(pk=account_id).first()
        if account is not None:
            delete_account(account=account)

    return _container_batch(job, field="account_id", delete_container=delete)


def _close_threads(job):
    from threads.services import close_threads

    return _thread_batch(lambda thread_ids: close_threads(thread_ids=thread_ids)[0], job)


def _delete_agents(job):
    """Release (close and detach) the threads of the first target agent a batch at a
    time; when none is left, delete the agent through `delete_agent`. An agent gone
    meanwhile, or made default or system since it was confirmed, is passed over."""
    from agents.models import Agent
    from agents.services import delete_agent, release_agent_threads
    from config.errors import NotFound, Protected

    ids = next_targets(job, 1)
    if not ids:
        return None
    agent = Agent.objects.filter(pk=ids[0]).first()
    if agent is not None:
        try:
            released, closed = release_agent_threads(agent=agent, limit=job.batch_size)
            if released:
                return released, closed
            delete_agent(agent=agent)
        except (NotFound, Protected) as exc:
            logger.warning("Job %s: agent %s passed over: %s", job.pk, agent.pk, exc)
    job.cursor = ids[0]
    return 0, 0


STEPS = {
    JobKind.DELETE_THREADS: _delete_threads,
    JobKind.PRUNE_KEEP_LATEST: _keep_latest,
    JobKind.DELETE_PROJECTS: _delete_projects,
    JobKind.DELETE_ACCOUNTS: _delete_accounts,
    JobKind.CLOSE_THREADS: _close_threads,
    JobKind.DELETE_AGENTS: _delete_agents,
}
