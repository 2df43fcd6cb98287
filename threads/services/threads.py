"""Creating and changing threads."""

from contextlib import nullcontext
from datetime import timedelta
from functools import partial

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from config.errors import Conflict, Invalid, LimitReached, NotFound
from projects import caches
from projects.models import Account, Project

from ..models import Run, Thread, ThreadStatus
from ..streams.events import reset_thread_log


IF_EXISTS = ("raise", "do_nothing")


@transaction.atomic
def create_thread(
    *,
    project: Project | None = None,
    account: Account | None = None,
    thread_id=None,
    if_exists: str = "raise",
    created_by=None,
    agent=None,
    parent_thread: Thread | None = None,
    title: str = "",
    metadata: dict | None = None,
    instructions: str | None = None,
    model: str = "",
    tools: list | None = None,
    ttl_minutes: int | None = None,
    ttl_strategy: str = "",
    tool_use_id: str = "",
    supersteps: list | None = None,
) -> Thread:
    """Create a thread in `project`, or without one in `account`'s default project
    (created on demand, under the account's lock).

    `thread_id`: the caller's id for it; if a thread has it already, `if_exists`
    says what happens: `raise` (409) or `do_nothing` (that thread is returned, with
    `existed` set). `supersteps`: LangGraph's state updates applied in order as the
    thread's first checkpoints.
    """
    from projects.services import default_project

    if if_exists not in IF_EXISTS:
        raise Invalid(f"Unknown if_exists '{if_exists}'.", errors={"if_exists": ["raise or do_nothing."]})
    validate_ttl_strategy(ttl_strategy)
    # Lock the account row, then the project's. The account lock serialises the
    # creations of an account, so the limit check and the slot it takes are one step
    # (two creations at the limit never both pass). The project lock: a concurrent
    # delete of its last thread either sees this thread (and keeps the project) or has
    # already deleted the project (404).
    if project is None and account is None:
        raise Invalid("A thread needs a project or an account.", errors={"project_id": ["Required."]})
    account = Account.objects.select_for_update(no_key=True).filter(pk=account.pk if project is None else project.account_id).first()
    if account is None:
        raise NotFound("Project not found." if project is not None else "Account not found.")
    if project is None:
        project = locked = default_project(account=account)
    else:
        locked = Project.objects.select_for_update(no_key=True).filter(pk=project.pk).first()
    if locked is None:
        raise NotFound("Project not found.")
    if thread_id is not None:
        existing = Thread.objects.filter(pk=thread_id).first()
        if existing is not None:
            if if_exists == "do_nothing":
                existing.existed = True
                return existing
            raise Conflict(f"Thread {thread_id} already exists.")
    # The counter is the fast check; a refusal is confirmed by the database (counted
    # under the account's lock, which every creation holds while it reserves): the
    # counter runs ahead when a slot was reserved here and an outer transaction then
    # rolled back (a run refused after `if_not_exists` made its thread), and no hook
    # gives that slot back.
    limit = account.effective_thread_limit
    if caches.thread_slots_used(account.pk) >= limit and caches.recount_slots(account.pk) >= limit:
        raise LimitReached("The account's thread limit is reached.")
    if agent is not None:
        if agent.account_id != project.account_id:
            raise NotFound("Agent not found.")
        from agents.services import hold_agent

        hold_agent(agent.pk)  # under the account's lock, which an agent's deletion takes first
    if parent_thread is not None:
        if parent_thread.project_id != project.pk:
            raise Invalid("The parent thread belongs to another project.", errors={"parent_thread_id": ["Not in this project."]})
        # The parent's row lock, after the project's (as every creation orders them),
        # and its status read under it, not from the caller's copy: a close holding it
        # either commits first (then the parent is closed here: 409) or waits for this
        # sub-thread and closes it with the rest of the subtree — never a closed parent
        # over an open sub-thread. Deleting threads locks the project too: under that
        # lock the parent is still there or gone for good (a 404, not a foreign-key error).
        try:
            parent_status = lock_thread(parent_thread.pk).status
        except NotFound:
            raise NotFound("Parent thread not found.") from None
        if parent_status == ThreadStatus.CLOSED:
            raise Conflict("The parent thread is closed.")
    now = timezone.now()
    caches.reserve_slot(account.pk)
    try:
        # A chosen id: in a savepoint, so the same id created meanwhile elsewhere is a 409.
        with transaction.atomic() if thread_id is not None else nullcontext():
            thread = Thread.objects.create(
                **({"id": thread_id} if thread_id is not None else {}),
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
                ttl_strategy=ttl_strategy or "",
                last_activity_at=now,
                expires_at=expiry(ttl_minutes, now),
            )
    except IntegrityError:
        caches.release_slot(account.pk)
        if thread_id is not None and Thread.objects.filter(pk=thread_id).exists():
            raise Conflict(f"Thread {thread_id} already exists.")
        raise
    except BaseException:
        caches.release_slot(account.pk)
        raise
    caches.on_commit_invalidate_accounts([account.pk])
    if thread_id is not None:  # the id may be a deleted thread's, whose stream must not go on in this one
        transaction.on_commit(partial(reset_thread_log, thread))
    if supersteps:
        from .state import apply_supersteps

        apply_supersteps(thread=thread, supersteps=supersteps)
    thread.existed = False
    return thread


def validate_ttl_strategy(strategy: str) -> None:
    from .pruning import STRATEGIES

    if strategy and strategy not in STRATEGIES:
        raise Invalid(f"Unknown TTL strategy '{strategy}': use delete or keep_latest.",
                      errors={"ttl": ["strategy must be delete or keep_latest."]})


def _agent_model(agent) -> str:
    version = agent.versions.filter(number=agent.current_version).values_list("model", flat=True).first()
    return version or ""


@transaction.atomic
def update_thread(*, thread: Thread, **fields) -> Thread:
    thread = lock_thread(thread.pk)
    if "ttl_strategy" in fields:
        validate_ttl_strategy(fields["ttl_strategy"] or "")
        fields["ttl_strategy"] = fields["ttl_strategy"] or ""
    if "metadata_merge" in fields:  # LangGraph's PATCH: the keys given replace theirs, the others stay
        thread.metadata = {**(thread.metadata or {}), **fields["metadata_merge"]}
    for key in ("title", "metadata", "instructions", "model", "ttl_minutes", "ttl_strategy"):
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
    activity and `updated_at` (LangGraph's thread moves it with its status and state,
    and sorts on it), and its expiry moved along with it."""
    now = timezone.now()
    thread.last_activity_at = thread.updated_at = now
    thread.expires_at = expiry(thread.ttl_minutes, now)
    return {"last_activity_at": now, "updated_at": now, "expires_at": thread.expires_at}


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


def ensure_run_of(thread: Thread, run) -> None:
    """`run` (the caller's copy, read before any lock) is still a run of this locked
    thread: one of another thread, or deleted since it was read — run deletions take
    the thread's lock first, so under it the answer holds until commit — is a 422,
    not a foreign-key violation at commit (a 500)."""
    if run is not None and not Run.objects.filter(pk=run.pk, thread_id=thread.pk).exists():
        raise Invalid("The run is not a run of this thread.", errors={"run_id": ["No such run."]})


def ensure_open(thread: Thread) -> None:
    if thread.status == ThreadStatus.CLOSED:
        raise Conflict("The thread is closed: it takes no new messages, runs or turns.")
