"""Deleting threads, and what the database cannot do for it.

The database owns the cascade: one `DELETE` of the root threads removes their
sub-threads, messages, runs, checkpoints (and writes) and approvals, so a delete
costs the same number of queries whatever a thread holds. Around that delete, in
the same transaction:

1. the threads' projects are locked (`SELECT ... FOR NO KEY UPDATE`, in id order,
   as `create_thread` locks its project), so concurrent deletes and creates in a
   project are serialised: the project of a deleted last thread is deleted exactly
   once and never left empty. Not `FOR UPDATE`: a transaction that updates one of
   the project's threads twice (a turn) takes `FOR KEY SHARE` on the project for its
   foreign-key check, and against `FOR UPDATE` that waits while the delete waits for
   the thread — a deadlock;
2. the ids of everything going (roots and every level of sub-threads) are collected
   with one recursive query, before the cascade removes them, with the number of
   messages, runs and checkpoints of each (for the deletion receipt) — on PostgreSQL
   in the same round trip as the lock, and the same statement as the delete and the
   check for projects that may be left empty (read again under the locks when any);
3. projects left without a thread are deleted, and their sandboxes marked
   `pending_deletion` (the sandbox outbox);
4. the deletion receipt is written (one INSERT, two with sandboxes); it carries the
   outside cleanup — embedding removal and sandbox deletion at the provider, one task
   after commit, reconciled until done — and the account caches are updated after
   commit.

The steps are the functions below, used by two paths: `delete_threads` does them
set-based for any number of threads (a batch of 1000 costs the same handful of
queries as a batch of 1); `threads.signals` does them for a thread deleted any other
way (`thread.delete()`, a queryset in the shell, Django's admin), one thread at a time.
"""

from collections import Counter
from collections.abc import Iterable
from functools import cache
from typing import NamedTuple

from django.db import connection, router, transaction
from django.db.models import Exists, OuterRef

from config.errors import NotFound
from config.prepared import prepared
from projects import caches
from projects.models import Project
from projects.selectors import parse_uuid
from receipts import services as receipts
from receipts.models import DeletionKind
from sandboxes.services import request_sandbox_deletion

from ..models import ACTIVE_RUN_STATUSES_SQL, Checkpoint, Run, Thread
from ..selectors import referenced_by_a_trigger
from .runs import stop_deleted_runs


def delete_thread(*, thread: Thread) -> None:
    """Delete one thread and everything under it; 404 if it is already gone."""
    if not delete_threads(thread_ids=[thread.pk]):
        raise NotFound("Thread not found.")


@transaction.atomic
def delete_threads(*, thread_ids: Iterable) -> int:
    """Delete these threads with everything under them, set-based.

    Returns how many of the given threads were deleted (unknown ids, ids deleted
    meanwhile and duplicates are not counted; a given sub-thread of a given thread
    counts). Whatever the number of threads and their contents: on PostgreSQL one
    round trip (lock the projects; then collect and count the subtrees, delete and
    find the projects left empty), four queries on SQLite; a few more when projects
    are left empty; then the receipt (one INSERT, two with sandboxes).
    """
    root_ids = {parse_uuid(t, name="thread_ids") for t in thread_ids}
    if not root_ids:
        return 0
    receipt = inline_receipt(root_ids)
    removed, maybe_empty = delete_subtrees(root_ids=root_ids, receipt=receipt)
    roots = root_ids & {t.id for t in removed}
    if not roots:
        return 0
    emptied = delete_empty_projects(project_ids=maybe_empty) if maybe_empty else Emptied([], {})
    schedule_cleanup(removed=removed, roots=roots, emptied=emptied, receipt=None if maybe_empty else receipt)
    return len(roots)


class Removed(NamedTuple):
    """A thread removed by `delete_subtrees` on PostgreSQL (elsewhere a `Thread`
    with the same attributes)."""

    id: object
    account_id: object
    project_id: object
    emptied: bool
    n_messages: int
    n_runs: int
    n_checkpoints: int
    active_run_ids: object  # its pending and running runs (see `counts_of`)


def inline_receipt(root_ids: set) -> "receipts.InlineReceipt | None":
    """On PostgreSQL, for one root outside an open operation: the receipt as an INSERT
    of the delete statement (`receipts.inline_receipt`), written when the root is
    removed and no project may be left empty (a project's deletion adds to the
    receipt: then it is recorded after the statement, as elsewhere)."""
    if connection.vendor != "postgresql" or len(root_ids) != 1:
        return None
    (root,) = root_ids
    tally = receipts.Tally(root_ids=[root], embedding_thread_ids=[root])
    return receipts.inline_receipt(
        DeletionKind.THREAD_DELETE, tally,
        from_sql={"account_id": "(SELECT account_id FROM removed LIMIT 1)",
                  "threads": "(SELECT COUNT(*) FROM removed)",
                  **{name: f"(SELECT COALESCE(SUM(n_{name}), 0) FROM removed)"
                     for name in ("messages", "runs", "checkpoints")},
                  "embedding_thread_ids": "(SELECT jsonb_agg(id::text) FROM removed)"},
        source="(SELECT 1) one WHERE EXISTS (SELECT 1 FROM roots) AND NOT EXISTS (SELECT 1 FROM removed WHERE emptied)")


def delete_subtrees(*, root_ids: Iterable, receipt: "receipts.InlineReceipt | None" = None) -> tuple[list, list]:
    """Lock the projects of these roots (`SELECT ... FOR NO KEY UPDATE` in id order, as
    `create_thread` locks its project), then delete the roots with every sub-thread
    and what they hold; returns every thread removed (as (id, account_id,
    project_id) with `n_messages`, `n_runs` and `n_checkpoints`) and the projects
    that may be left without a thread (to be checked again by the caller).

    On PostgreSQL one round trip of five statements, each taking its snapshot once
    the locks before it are held: the agent triggers of the projects (a thread's, or a
    project's that may go with its last thread — `FOR UPDATE`, first: a webhook or a
    schedule firing holds its trigger, then takes the project and thread locks, and
    the cascade would reach the trigger after them); the projects' lock; the roots'
    threads, then their
    subtrees' (`FOR NO KEY UPDATE`, in id order, as every writer of a thread locks it,
    and roots first as `close_threads` locks them), so a message or run written
    meanwhile is committed before the counts are read, and the receipt counts what
    the cascade removes; then a recursive CTE that collects and
    counts the subtrees, a data-modifying CTE that deletes the roots (the database
    cascade takes the rest), the check for projects left empty, and `receipt`'s
    INSERT, if any (see `inline_receipt`).
    Elsewhere: lock, collect and count, delete; every project touched may be empty.
    """
    if connection.vendor != "postgresql":
        of_roots = Thread.objects.filter(id__in=list(root_ids)).order_by().values("project_id")
        removed = lock_and_collect(root_ids=root_ids, project_ids=of_roots)
        roots = set(root_ids) & {t.id for t in removed}
        if roots:
            Thread.objects.filter(id__in=roots)._raw_delete(router.db_for_write(Thread))
        return removed, sorted({t.project_id for t in removed}) if roots else []
    with connection.cursor() as cursor, prepared(*delete_subtrees_sql(receipt.cte if receipt else ""),
                                                   generic=len(root_ids) == 1) as message:
        message.execute(cursor, {"ids": list(root_ids), **(receipt.params if receipt else {})}, at=4)
        removed = [Removed(*row) for row in cursor.fetchall()]
    return removed, sorted({t.project_id for t in removed if t.emptied})


@cache
def delete_subtrees_sql(receipt: str) -> tuple[str, ...]:
    """The five statements of `delete_subtrees` on PostgreSQL (built once; the root
    ids are the parameters; sent `prepared`, with PostgreSQL's generic plans for one
    root). The messages, runs and checkpoints are counted in the
    delete's snapshot (correlated counts, each an index lookup), so before it; the
    database cascade removes them (explicit data-modifying deletes that count what
    they return measured slower: 1.7x the cascade at 100k messages). `receipt`: the
    CTE of an INSERT reading `roots` and `removed` (the removed threads with their
    counts), appended to the last statement's."""
    from agents.models import AgentTrigger

    q = connection.ops.quote_name
    table, projects = q(Thread._meta.db_table), q(Project._meta.db_table)
    of_roots = f"SELECT id FROM {projects} WHERE id IN (SELECT project_id FROM {table} WHERE id = ANY(%(ids)s))"
    return (f"""
        SELECT id FROM {q(AgentTrigger._meta.db_table)} WHERE project_id IN (SELECT project_id FROM {table}
            WHERE id = ANY(%(ids)s)) ORDER BY id FOR UPDATE""",
            f"{of_roots} ORDER BY id FOR NO KEY UPDATE",
            f"SELECT id FROM {table} WHERE id = ANY(%(ids)s) ORDER BY id FOR NO KEY UPDATE",
            f"""
        WITH RECURSIVE subtree(id) AS (
            SELECT id FROM {table} WHERE id = ANY(%(ids)s)
            UNION SELECT child.id FROM {table} child JOIN subtree ON child.parent_thread_id = subtree.id
        )
        SELECT t.id FROM {table} t WHERE t.id IN (SELECT id FROM subtree) ORDER BY t.id FOR NO KEY UPDATE OF t""",
            f"""
        WITH RECURSIVE roots(id) AS (
            SELECT id FROM {table} WHERE id = ANY(%(ids)s) AND project_id IN ({of_roots} FOR NO KEY UPDATE)
        ),
        subtree(id) AS (
            SELECT id FROM roots
            UNION SELECT child.id FROM {table} child JOIN subtree ON child.parent_thread_id = subtree.id
        ),
        gone AS (DELETE FROM {table} WHERE id IN (SELECT id FROM roots)),
        touched(project_id) AS (SELECT DISTINCT project_id FROM {table} WHERE id IN (SELECT id FROM subtree)),
        emptied(project_id) AS (
            SELECT project_id FROM touched WHERE NOT EXISTS (
                SELECT 1 FROM {table} other WHERE other.project_id = touched.project_id
                AND NOT EXISTS (SELECT 1 FROM subtree WHERE subtree.id = other.id))
            AND NOT {referenced_by_a_trigger("touched.project_id", "subtree")}
        ),
        removed AS (
            SELECT id, account_id, project_id, project_id IN (SELECT project_id FROM emptied) AS emptied,
            {counts_of(table)}
            FROM {table} WHERE id IN (SELECT id FROM subtree)
        ){receipt}
        SELECT * FROM removed
    """)


# --- The steps, shared with threads.signals ----------------------------------------


def lock_and_collect(*, root_ids: Iterable, project_ids: Iterable) -> list[Thread]:
    """Lock the projects, then return every thread to be removed (the roots in those
    projects and all their sub-threads, any depth) as (id, account_id, project_id).

    Sub-threads share their parent's project, so under these locks the set cannot
    change before the delete.
    """
    locked = list(
        Project.objects.select_for_update(no_key=True).filter(id__in=project_ids).order_by("id")
        .values_list("id", flat=True)
    )
    if not locked:
        return []
    return collect_subtrees(root_ids=root_ids, project_ids=locked, counted=True)


def counts_of(table: str) -> str:
    """Select-list columns: the messages, runs and checkpoints of each row of `table`,
    read in the statement's snapshot, so before a delete in the same statement. The
    messages are the thread's `last_message_seq` (see `Thread.last_message_seq`: no
    scan of them, which took ~15–25 ms of a 100,000-message delete); the runs and
    checkpoints, which go on their own too, are counted (correlated counts, each an
    index-only lookup). Then `active_run_ids`, the ids of its pending and running runs
    (an index probe; an array on PostgreSQL, a comma-separated text elsewhere, NULL
    for none: see `active_runs_of`), whose executors and streams are stopped after
    commit."""
    q = connection.ops.quote_name
    runs = q(Run._meta.db_table)
    of_thread = f"FROM {runs} WHERE thread_id = {table}.id AND status IN ({ACTIVE_RUN_STATUSES_SQL})"
    active_ids = (f"(SELECT array_agg(id) {of_thread})" if connection.vendor == "postgresql"
                  else f"(SELECT group_concat(id) {of_thread})")
    return f"{table}.{q(Thread._meta.get_field('last_message_seq').column)} AS n_messages, " + ", ".join(
        f"(SELECT COUNT(*) FROM {q(model._meta.db_table)} WHERE thread_id = {table}.id) AS n_{name}"
        for name, model in (("runs", Run), ("checkpoints", Checkpoint))
    ) + f", {active_ids} AS active_run_ids"


def active_runs_of(removed: list[Thread]) -> list[tuple]:
    """(run id, thread id) of the pending and running runs of these removed threads
    (`counts_of`'s `active_run_ids`)."""
    found = []
    for thread in removed:
        ids = getattr(thread, "active_run_ids", None) or []
        if isinstance(ids, str):
            ids = ids.split(",")
        found += [(Run._meta.pk.to_python(run_id), thread.id) for run_id in ids]
    return found


def collect_subtrees(*, root_ids: Iterable, project_ids: Iterable, counted: bool = False,
                     by_root: bool = False) -> list[Thread]:
    """One recursive query (SQLite and PostgreSQL) for the roots and all their
    descendants; `counted`: with what each holds (`n_messages`, `n_runs`,
    `n_checkpoints`), for the deletion receipt; `by_root`: each thread once per given
    root it is under (itself included), with that root as `root_id`."""
    anchor, params = (
        Thread.objects.filter(id__in=list(root_ids), project_id__in=list(project_ids))
        .order_by()
        .values("id")
        .query.sql_with_params()
    )
    q = connection.ops.quote_name
    table, parent = q(Thread._meta.db_table), q(Thread._meta.get_field("parent_thread").column)
    if by_root:
        sql = (
            f"WITH RECURSIVE subtree(root_id, id) AS (SELECT anchor.id, anchor.id FROM ({anchor}) anchor "
            f"UNION SELECT subtree.root_id, child.id FROM {table} child JOIN subtree ON child.{parent} = subtree.id) "
            f"SELECT t.id, t.account_id, t.project_id, subtree.root_id FROM {table} t JOIN subtree ON subtree.id = t.id"
        )
        return list(Thread.objects.raw(sql, params))
    sql = (
        f"WITH RECURSIVE subtree(id) AS ({anchor} "
        f"UNION SELECT child.id FROM {table} child JOIN subtree ON child.{parent} = subtree.id) "
        f"SELECT id, account_id, project_id{', ' + counts_of(table) if counted else ''} "
        f"FROM {table} WHERE id IN (SELECT id FROM subtree)"
    )
    return list(Thread.objects.raw(sql, params))


class Emptied(NamedTuple):
    project_ids: list
    sandboxes: dict  # {sandbox id: account id}, now pending deletion


def delete_empty_projects(*, project_ids: Iterable) -> Emptied:
    """Of these locked projects, delete those left without threads (marking their
    sandboxes `pending_deletion`). One query, 4 when some are empty."""
    empty = empty_projects(project_ids=project_ids)
    return Emptied(empty, delete_projects(project_ids=empty) if empty else {})


def empty_projects(*, project_ids: Iterable) -> list:
    """Which of these projects have no thread and no agent trigger left (a trigger that
    starts a new thread of its project each time refers to the project, as Suna keeps
    a project that "has other references"; a thread's triggers went with it): one
    query (EXISTS per project, stopping at the first row)."""
    from agents.models import AgentTrigger

    has_threads = Exists(Thread.objects.filter(project_id=OuterRef("pk")))
    has_triggers = Exists(AgentTrigger.objects.filter(project_id=OuterRef("pk")))
    return list(
        Project.objects.filter(~has_threads, ~has_triggers, id__in=list(project_ids)).order_by("id")
        .values_list("id", flat=True)
    )


def delete_projects(*, project_ids: list) -> dict:
    """Delete these (locked, empty) projects; their sandboxes join the outbox.
    Returns {sandbox id: account id} of those sandboxes."""
    sandboxes = request_sandbox_deletion(project_ids=project_ids)
    Project.objects.filter(id__in=project_ids)._raw_delete(router.db_for_write(Project))
    return sandboxes


def tallies_of(removed: list[Thread]) -> dict:
    """{account id: Tally} of these removed threads, from their counts. No query."""
    tallies = {}
    for thread in removed:
        tally = tallies.setdefault(thread.account_id, receipts.Tally())
        tally.threads += 1
        tally.messages += getattr(thread, "n_messages", 0) or 0
        tally.runs += getattr(thread, "n_runs", 0) or 0
        tally.checkpoints += getattr(thread, "n_checkpoints", 0) or 0
        tally.embedding_thread_ids.append(thread.id)
    return tallies


def schedule_cleanup(*, removed: list[Thread], roots: Iterable, emptied: Emptied,
                     receipt: "receipts.InlineReceipt | None" = None) -> None:
    """Record the deletion — its receipt carries the outside cleanup (the embeddings of
    the removed threads and deleted projects, their sandboxes) — and update the owning
    accounts' caches after commit. One INSERT (two with sandboxes); none when the
    delete statement wrote the `receipt`."""
    account_of_thread = {t.id: t.account_id for t in removed}
    account_of_project = {t.project_id: t.account_id for t in removed}
    tallies = tallies_of(removed)
    for root in roots:
        tallies[account_of_thread[root]].root_ids.append(root)
    for project_id in emptied.project_ids:
        tally = tallies[account_of_project[project_id]]
        tally.projects += 1
        tally.embedding_project_ids.append(project_id)
    for sandbox_id, account_id in emptied.sandboxes.items():
        tallies.setdefault(account_id, receipts.Tally()).sandbox_ids.append(sandbox_id)
    receipts.record(DeletionKind.THREAD_DELETE, tallies, inline=receipt)
    caches.on_commit_threads_removed(Counter(t.account_id for t in removed))
    stop_deleted_runs(active_runs_of(removed))  # their streams end now, not at a heartbeat
