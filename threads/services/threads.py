"""Creating and changing threads."""

from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from config.errors import Conflict, Invalid, LimitReached, NotFound
from projects import caches
from projects.models import Account, Project

from ..models import Thread, ThreadStatus


@transaction.atomic
def create_thread(
    *,
    project: Project,
    created_by=None,
    agent=None,
    parent_thread: Thread | None = None,
    title: str = "",
    metadata: dict | None = None,
    instructions: str | None = None,
    model: str = "",
    tools: list | None = None,
    ttl_minutes: int | None = None,
    tool_use_id: str = "",
) -> Thread:
    # Lock the account row, then the project's. The account lock serialises the
    # creations of an account, so the limit check and the slot it takes are one step
    # (two creations at the limit never both pass). The project lock: a concurrent
    # delete of its last thread either sees this thread (and keeps the project) or has
    # already deleted the project (404).
    account = Account.objects.select_for_update().filter(pk=project.account_id).first()
    locked = Project.objects.select_for_update().filter(pk=project.pk).first()
    if account is None or locked is None:
        raise NotFound("Project not found.")
    if caches.thread_slots_used(account.pk) >= account.effective_thread_limit:
        raise LimitReached("The account's thread limit is reached.")
    if agent is not None and agent.account_id != project.account_id:
        raise NotFound("Agent not found.")
    if parent_thread is not None:
        if parent_thread.project_id != project.pk:
            raise Invalid("The parent thread belongs to another project.", errors={"parent_thread_id": ["Not in this project."]})
        if parent_thread.status == ThreadStatus.CLOSED:
            raise Conflict("The parent thread is closed.")
        # Deleting threads locks the project too: under the lock, the parent is
        # either still there or gone for good (then a 404, not a foreign-key error).
        if not Thread.objects.filter(pk=parent_thread.pk).exists():
            raise NotFound("Parent thread not found.")
    now = timezone.now()
    caches.reserve_slot(account.pk)
    try:
        thread = Thread.objects.create(
            account_id=project.account_id,
            project=project,
            agent=agent,
            parent_thread=parent_thread,
            depth=(parent_thread.depth + 1) if parent_thread else 0,
            created_by=created_by,
            title=title,
            metadata=metadata or {},
            instructions=instructions,
            model=model or (agent and _agent_model(agent)) or "",
            tools=tools or [],
            tool_use_id=tool_use_id,
            ttl_minutes=ttl_minutes,
            last_activity_at=now,
            expires_at=expiry(ttl_minutes, now),
        )
    except BaseException:
        caches.release_slot(account.pk)
        raise
    caches.on_commit_invalidate_accounts([account.pk])
    return thread


def _agent_model(agent) -> str:
    version = agent.versions.filter(number=agent.current_version).values_list("model", flat=True).first()
    return version or ""


@transaction.atomic
def update_thread(*, thread: Thread, **fields) -> Thread:
    thread = lock_thread(thread.pk)
    for key in ("title", "metadata", "instructions", "model", "ttl_minutes"):
        if key in fields:
            setattr(thread, key, fields[key])
    if "ttl_minutes" in fields:
        thread.expires_at = expiry(thread.ttl_minutes, timezone.now())
    thread.save()
    return thread


def expiry(ttl_minutes: int | None, now):
    """When a thread idle since `now` expires: its own TTL, else the default TTL
    (`THREAD_TTL["default_ttl"]` minutes), else never (None)."""
    minutes = ttl_minutes or settings.THREAD_TTL.get("default_ttl")
    return now + timedelta(minutes=minutes) if minutes else None


def activity(thread: Thread) -> dict:
    """The fields to update when something happens on a (locked) thread: its last
    activity, and its expiry moved along with it."""
    now = timezone.now()
    thread.last_activity_at, thread.expires_at = now, expiry(thread.ttl_minutes, now)
    return {"last_activity_at": now, "expires_at": thread.expires_at}


def lock_thread(thread_id) -> Thread:
    """The thread's row, locked until the transaction ends (404 if it is gone).

    Every change of a thread's status, counters or children takes this lock first
    (then, where needed, a run's), so concurrent writers to one thread queue up in
    the same order and never deadlock. `FOR NO KEY UPDATE` (the key never changes): it
    does not block the foreign-key checks (`FOR KEY SHARE`) of rows that reference the
    thread, such as a sub-thread updated twice in one transaction. A plain `FOR
    UPDATE` would: a close holding a parent while it waits for a sub-thread whose turn
    commits (and checks its parent key) is a deadlock.
    """
    thread = Thread.objects.select_for_update(no_key=True, of=("self",)).filter(pk=thread_id).first()
    if thread is None:
        raise NotFound("Thread not found.")
    return thread


def ensure_open(thread: Thread) -> None:
    if thread.status == ThreadStatus.CLOSED:
        raise Conflict("The thread is closed: it takes no new messages, runs or turns.")
