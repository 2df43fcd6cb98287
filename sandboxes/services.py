"""Writes on sandboxes: provisioning, and deletion through an outbox.

Deletion never happens inside the deleting transaction. The row is marked
`pending_deletion` there (it outlives its project: `project` is set null), a task
deletes it at the provider after commit with retries and exponential backoff, and
the reconciler retries every row still pending (broker down, worker crash, provider
outage) until the provider confirms. Provider errors are logged with the sandbox id
and recorded on the row (`attempts`, `last_error`); they never fail the delete that
asked for them.

A reconciler pass (and a deletion's cleanup) runs inside `one_pass()`: once a provider
is unreachable or times out, its other sandboxes are left for the next pass instead of
each waiting out `SANDBOX_API_TIMEOUT` in turn (500 sandboxes × 10 s held a worker for
over an hour per pass while the provider was down).
"""

import logging
import math
from collections.abc import Iterable
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.dispatch import Signal
from django.utils import timezone

from config.errors import Conflict, Invalid, NotFound
from config.tasks import send_after_commit
from projects.models import Project

from .models import Sandbox, SandboxState
from .providers import ProviderError, ProviderUnavailable, get_provider

logger = logging.getLogger(__name__)

LIVE_STATES = (SandboxState.CREATING, SandboxState.READY, SandboxState.ERROR)

# Sent when the provider confirmed deletions: `sandbox_ids`.
sandbox_deleted = Signal()

# The providers found unreachable in the current pass (None: outside a pass).
_unreachable: ContextVar[set | None] = ContextVar("unreachable_providers", default=None)


@contextmanager
def one_pass():
    """A pass over many sandboxes: a provider that was unreachable or timed out is not
    called again until the pass ends (its sandboxes stay pending, untouched, for the
    next pass). Nested passes are one."""
    if _unreachable.get() is not None:
        yield
        return
    token = _unreachable.set(set())
    try:
        yield
    finally:
        _unreachable.reset(token)


def _note_unreachable(provider: str, exc: ProviderError) -> None:
    unreachable = _unreachable.get()
    if unreachable is not None and isinstance(exc, ProviderUnavailable):
        unreachable.add(provider)


# --- Provisioning ----------------------------------------------------------------


IN_FLIGHT = "its creation may still be under way at the provider; deleted once it is over"


def creation_lease() -> timedelta:
    """How long a claimed creation may still be under way (twice the provider timeout
    and a margin): after it the claim may be taken again, and a deletion requested
    meanwhile no longer finds it in flight."""
    return timedelta(seconds=2 * settings.SANDBOX_API_TIMEOUT + 5)


@transaction.atomic
def provision_sandbox(*, project: Project) -> tuple[Sandbox, bool]:
    """The project's sandbox, created if it has none (or its creation failed).

    Returns (sandbox, created). The provider call runs in a task after commit.
    """
    from .tasks import create_sandbox

    if not Project.objects.select_for_update().filter(pk=project.pk).exists():
        raise NotFound("Project not found.")
    sandbox = Sandbox.objects.filter(project_id=project.pk).first()
    if sandbox is not None and sandbox.state in (SandboxState.CREATING, SandboxState.READY):
        return sandbox, False
    if sandbox is not None and sandbox.state == SandboxState.PENDING_DELETION:
        raise Conflict("The project's sandbox is being deleted.")
    if sandbox is None:
        sandbox = Sandbox(project_id=project.pk, account_id=project.account_id)
    sandbox.provider = settings.SANDBOX_PROVIDER
    sandbox.external_id = ""
    sandbox.state = SandboxState.CREATING
    sandbox.last_error = ""
    # Not claimed: the task (or the reconciler) claims it. A row whose creation was
    # attempted before (it failed, maybe after the provider made it) keeps saying so —
    # claimable at once, but its deletion still looks for it at the provider.
    sandbox.last_attempt_at = None if sandbox.last_attempt_at is None else timezone.now() - creation_lease()
    sandbox.save()
    # The `creating` row is the outbox: the task after commit creates it at the
    # provider; with the broker down, `reconcile_sandbox_creation` (beat) does.
    send_after_commit(create_sandbox, str(sandbox.pk))
    return sandbox, True


def create_sandbox_at_provider(*, sandbox_id) -> bool:
    """Create a `creating` sandbox at its provider; `ready`, or `error` with the reason.

    Returns False when there is nothing to do: not `creating` any more, or another
    worker claimed it less than a lease ago (the claim is a conditional update of
    `last_attempt_at`, so the task and the reconciler never create it twice at once,
    and no lock is held while the provider is called). If the project was deleted
    meanwhile, the new sandbox goes straight back to the deletion outbox.

    The provider is asked first for a sandbox already labelled with this one's id: an
    earlier creation whose answer was lost (a timeout, a 5xx, a worker lost mid-call)
    may have made it. That one is adopted (one still being made cannot be seen yet: a
    second may then be made beside it, and the deletion removes both).
    """
    now = timezone.now()
    lease = now - creation_lease()
    claimed = Sandbox.objects.filter(
        Q(last_attempt_at__isnull=True) | Q(last_attempt_at__lt=lease), pk=sandbox_id, state=SandboxState.CREATING,
    ).exclude(provider__in=_unreachable.get() or ()).update(last_attempt_at=now, updated_at=now)
    sandbox = Sandbox.objects.filter(pk=sandbox_id).first() if claimed else None
    if sandbox is None:
        return False
    labels = {"project_id": str(sandbox.project_id), "account_id": str(sandbox.account_id)}
    try:
        provider = get_provider(sandbox.provider)
        found = provider.find(sandbox_id=str(sandbox.pk))
        external_id = found[0] if found else provider.create(sandbox_id=str(sandbox.pk), labels=labels)
    except ProviderError as exc:
        _note_unreachable(sandbox.provider, exc)
        logger.warning("Creating sandbox %s at %s failed: %s", sandbox.pk, sandbox.provider, exc)
        Sandbox.objects.filter(pk=sandbox.pk, state=SandboxState.CREATING).update(
            state=SandboxState.ERROR, last_error=str(exc), updated_at=timezone.now()
        )
        return True
    now = timezone.now()
    ready = Sandbox.objects.filter(pk=sandbox.pk, state=SandboxState.CREATING).update(
        external_id=external_id, state=SandboxState.READY, updated_at=now
    )
    if not ready:
        with transaction.atomic():
            Sandbox.objects.filter(pk=sandbox.pk).update(
                external_id=external_id, state=SandboxState.PENDING_DELETION, deleted_at=None, updated_at=now
            )
            _schedule_deletion([sandbox.pk])
    return True


# --- Deletion: the outbox --------------------------------------------------------


def request_sandbox_deletion(*, project_ids: Iterable = (), sandbox_ids: Iterable = ()) -> dict:
    """Mark the sandboxes of these projects (or these sandboxes) `pending_deletion`
    in the caller's transaction. Returns {sandbox id: account id} of those marked;
    the caller's deletion receipt carries them to the provider after commit
    (`receipts.services`). Two queries at most, whatever the number of projects."""
    project_ids, sandbox_ids = list(project_ids), list(sandbox_ids)
    if not project_ids and not sandbox_ids:
        return {}
    marked = dict(
        Sandbox.objects.filter(Q(project_id__in=project_ids) | Q(id__in=sandbox_ids), state__in=LIVE_STATES)
        .values_list("id", "account_id")
    )
    if marked:
        now = timezone.now()
        Sandbox.objects.filter(id__in=list(marked)).update(
            state=SandboxState.PENDING_DELETION, deletion_requested_at=now, updated_at=now
        )
    return marked


def retry_sandbox_deletion(*, sandbox_ids: Iterable) -> list:
    """Schedule the provider deletion of these sandboxes now, if still pending."""
    ids = list(
        Sandbox.objects.filter(id__in=list(sandbox_ids), state=SandboxState.PENDING_DELETION).values_list("id", flat=True)
    )
    _schedule_deletion(ids)
    return ids


def _schedule_deletion(sandbox_ids: list) -> None:
    """After commit. With the broker down the reconciler picks them up; with tasks
    in-process, one attempt at most (no retries inside the request: the reconciler
    retries with its backoff)."""
    from .tasks import delete_sandbox

    for sandbox_id in sandbox_ids:
        send_after_commit(delete_sandbox, str(sandbox_id))


def delete_sandbox_at_provider(*, sandbox_id) -> bool:
    """Delete a `pending_deletion` sandbox at its provider and mark it `deleted`.

    Returns False when there is nothing to do (already deleted, or another worker is
    on it: the row is locked with SKIP LOCKED while the provider is called). On a
    provider error the attempt is recorded and ProviderError raised (to retry).

    A sandbox whose creation was attempted (`last_attempt_at` set) may exist at the
    provider beside, or instead of, its external id — a creation's answer was lost, or
    a second creation made a second one while the first was slow — so the provider is
    also asked for those labelled with its id, and they are deleted. Without an
    external id, a creation claimed (and not failed) less than a `creation_lease`
    before the deletion was asked may still be under way: the attempt then fails
    (retried later), so the deletion is not confirmed before that creation is over.
    """
    failure = None
    with transaction.atomic():
        sandbox = (
            Sandbox.objects.select_for_update(skip_locked=True)
            .filter(pk=sandbox_id, state=SandboxState.PENDING_DELETION)
            .first()
        )
        if sandbox is None:
            return False
        if sandbox.provider in (_unreachable.get() or ()):  # not tried: the row stays as is
            raise ProviderUnavailable(f"{sandbox.provider}: not tried, unreachable earlier in this pass")
        created_maybe = sandbox.last_attempt_at is not None  # claimed for creation once at least
        # Claimed for creation and not failed (no creation error recorded), the
        # deletion asked less than a creation lease ago: that creation may be under way.
        in_flight = (not sandbox.external_id and created_maybe and sandbox.last_error in ("", IN_FLIGHT)
                     and sandbox.deletion_requested_at is not None
                     and sandbox.deletion_requested_at > timezone.now() - creation_lease())
        sandbox.attempts += 1
        sandbox.last_attempt_at = timezone.now()
        try:
            if in_flight:
                raise ProviderError(IN_FLIGHT)
            provider = get_provider(sandbox.provider)
            if sandbox.external_id:
                provider.delete(external_id=sandbox.external_id)
            if created_maybe:  # a creation's answer may have been lost, or a second one made beside it
                for external_id in provider.find(sandbox_id=str(sandbox.pk)):
                    if external_id != sandbox.external_id:
                        provider.delete(external_id=external_id)
            # (else: never claimed for creation, nothing of it at the provider)
        except ProviderError as exc:
            failure = exc
            sandbox.last_error = str(exc)[:2000]
        else:
            sandbox.state = SandboxState.DELETED
            sandbox.deleted_at = sandbox.last_attempt_at
            sandbox.last_error = ""
        sandbox.save(update_fields=["attempts", "last_attempt_at", "last_error", "state", "deleted_at", "updated_at"])
    if failure is not None:
        _note_unreachable(sandbox.provider, failure)
        logger.warning(
            "Deleting sandbox %s (%s:%s) failed, attempt %d: %s",
            sandbox.pk, sandbox.provider, sandbox.external_id, sandbox.attempts, failure,
        )
        raise failure
    logger.info("Deleted sandbox %s (%s:%s)", sandbox.pk, sandbox.provider, sandbox.external_id)
    sandbox_deleted.send(sender=Sandbox, sandbox_ids=[sandbox.pk])
    return True


def reconcile_cutoff(min_age_seconds: float | None, *, default: float, now=None):
    """`now` less `min_age_seconds` (None: `default`), the cutoff of a reconciler.
    Invalid for an age that is negative, not finite, or reaches before year 1."""
    if min_age_seconds is None:
        min_age_seconds = default
    if not math.isfinite(min_age_seconds) or min_age_seconds < 0:
        raise Invalid(f"--min-age must be a number of seconds, 0 or more; got {min_age_seconds}.")
    try:
        return (now or timezone.now()) - timedelta(seconds=min_age_seconds)
    except OverflowError:
        raise Invalid(f"--min-age {min_age_seconds:g} reaches back before year 1: give fewer seconds.")


def due_id_pages(due, *, order_by: str, limit: int | None, page_size: int = 500):
    """The ids of `due`: with a `limit`, one page of the first ones by `order_by` (a
    periodic task's bounded share); without, every one, page by page (keyset on the
    primary key: each row once, however the rows handled change meanwhile)."""
    if limit is not None:
        return [list(due.order_by(order_by).values_list("id", flat=True)[:limit])]
    from threads.selectors import id_batches

    return id_batches(due, page_size)


def reconcile_sandbox_creation(*, min_age_seconds: float | None = None, limit: int | None = 500,
                               progress=None) -> int:
    """Create at the provider every sandbox still `creating` (its task was lost: broker
    down, worker crash) whose last change is older than `min_age_seconds` (default
    `SANDBOX_RECONCILE_MIN_AGE`): the `limit` oldest, or all (`limit=None`, with
    `progress(attempted, seen)` after each page of 500). Returns how many were attempted."""
    cutoff = reconcile_cutoff(min_age_seconds, default=settings.SANDBOX_RECONCILE_MIN_AGE)
    due = Sandbox.objects.filter(state=SandboxState.CREATING, updated_at__lte=cutoff)
    attempted = seen = 0
    with one_pass():
        for ids in due_id_pages(due, order_by="updated_at", limit=limit):
            attempted += sum(create_sandbox_at_provider(sandbox_id=sandbox_id) for sandbox_id in ids)
            seen += len(ids)
            if progress is not None:
                progress(attempted, seen)
    return attempted


def reconcile_sandboxes(*, min_age_seconds: float | None = None, limit: int | None = 500, progress=None) -> dict:
    """Retry every sandbox still `pending_deletion` whose last attempt is older than
    `min_age_seconds` (default `SANDBOX_RECONCILE_MIN_AGE`) — the `limit` least
    recently tried, or all (`limit=None`, with `progress(totals)` after each page of
    500) — and send to the outbox any live sandbox whose project is gone (deleted
    behind the service's back). In one pass (`one_pass`): the sandboxes of a provider
    that is unreachable are counted `failed` without being tried again.

    Returns {"orphaned": n, "deleted": n, "failed": n}.
    """
    now = timezone.now()
    cutoff = reconcile_cutoff(min_age_seconds, default=settings.SANDBOX_RECONCILE_MIN_AGE, now=now)
    orphaned = Sandbox.objects.filter(project__isnull=True, state__in=LIVE_STATES).update(
        state=SandboxState.PENDING_DELETION, deletion_requested_at=now, updated_at=now
    )
    due = Q(last_attempt_at__isnull=True) | Q(last_attempt_at__lte=cutoff)
    due = Sandbox.objects.filter(due, state=SandboxState.PENDING_DELETION)
    totals = {"orphaned": orphaned, "deleted": 0, "failed": 0}
    with one_pass():
        for ids in due_id_pages(due, order_by="last_attempt_at", limit=limit):
            for sandbox_id in ids:
                try:
                    totals["deleted"] += delete_sandbox_at_provider(sandbox_id=sandbox_id)
                except ProviderError:
                    totals["failed"] += 1
            if progress is not None:
                progress(dict(totals))
    return totals


def outbox_backlog() -> dict:
    """How many sandboxes wait for the provider: {"creating": n, "pending_deletion": n}."""
    from django.db.models import Count

    found = dict(Sandbox.objects.filter(state__in=[SandboxState.CREATING, SandboxState.PENDING_DELETION])
                 .order_by().values_list("state").annotate(n=Count("pk")))
    return {"creating": found.get(SandboxState.CREATING, 0),
            "pending_deletion": found.get(SandboxState.PENDING_DELETION, 0)}
