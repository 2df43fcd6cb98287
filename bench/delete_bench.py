"""Benchmark: deleting a thread, and a run, through the services vs the fastest raw
SQL; the thread delete also on the schema before checkpoint writes were keyed by thread.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/threadkeeper_bench \\
        .venv/bin/python bench/delete_bench.py --sizes 1000,10000,100000 --run-totals 3000,30000 --rounds 5
    ... --sizes 1000000 --run-totals "" --rounds 3     # the big one: a few minutes of seeding

Thread delete: a thread of M messages holds M/100 runs and M/10 checkpoints (one pending write
each), in a project with another thread (so the project stays). Each round seeds
identical copies — for the service (`threads.services.delete_thread`, what the API,
prune, the admin and the commands run), for the raw SQL on the current schema
(`DELETE FROM threads_thread WHERE id = ...`: the database cascade is the least the
database must do), for the same statement with PostgreSQL's generic plans forced
(`raw_generic`: the service's transactions force them for their prepared statements,
and the setting reaches the cascade's own trigger queries too, which it speeds up on
big threads; still one autocommitted statement), for the same raw SQL on the old
schema, and for Django's default
Python-level cascade (`Model.delete()` with `on_delete=CASCADE`, on the old tables) —
then deletes them in an order that rotates with the round. Small threads are deleted several per round
(the times summed) to measure above the timer's noise. Printed: min/median/max of the
per-round ratios, and the service's queries per delete. After-commit cleanup is
queued (an in-memory broker), not executed, as with a worker.

Run delete: a thread holds T checkpoints (one chain, one write each) and T messages spread over
T/300 runs: each run owns 300 checkpoints and 300 messages. Each round seeds three
identical threads and deletes the same four runs from each (around the middle, none
next to another; the times summed, to measure above the timer's noise) — through
`threads.services.delete_run` (what `DELETE /api/threads/{id}/runs/{run_id}` and
rollback run) and with the raw SQL a hand-written delete needs, as one autocommitted
statement: re-link the next run's first checkpoint to the deleted run's parent
(computed beforehand, for free) in a data-modifying CTE, and `DELETE` the run (the
database cascade removes its checkpoints, writes and approvals and detaches its
messages), and the same with generic plans forced (`raw_generic`, as above). The order
rotates. Printed: min/median/max
of the per-round ratios, the service's median time per total (flat when it follows
the run), and its queries.
"""

import argparse
import statistics

from common import (OLD, build_old_schema, copy_to_old_schema, drop_accounts, drop_old_schema, new_account,
                    new_project, old_schema_models, prepare, report, run_in_turn, seed_thread, sql, vacuum)
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext

from config.tasks import publisher
from threads.models import Run, Thread
from threads.services.deletion import delete_thread
from threads.services.runs import delete_run


OldThread = old_schema_models()


def per_round(size):
    return max(1, min(20, 20_000 // size))


def seed_copies(project, size, count):
    def one():
        return seed_thread(project, messages=size, runs=max(size // 100, 1), checkpoints=max(size // 10, 1)).pk

    service = [one() for _ in range(count)]
    raw = [one() for _ in range(count)]
    generic = [one() for _ in range(count)]
    old = [one() for _ in range(count)]
    default = [one() for _ in range(count)]
    copy_to_old_schema(old + default)
    Thread.objects.filter(pk__in=old + default)._raw_delete(Thread.objects.db)
    return service, raw, generic, old, default


def generic_plans(statement: str) -> str:
    """`statement` with PostgreSQL's generic plans forced for its own statement's
    (and its cascade's triggers') prepared queries — what the service's transactions
    set — still one autocommitted statement: `set_config(..., true)` lasts to its end."""
    generic = "WITH generic AS (SELECT set_config('plan_cache_mode', 'force_generic_plan', true))"
    if statement.startswith("WITH "):
        return f"{generic}, {statement.removeprefix('WITH ')} AND EXISTS (SELECT FROM generic)"
    return f"{generic} {statement} AND EXISTS (SELECT FROM generic)"


def one_round(size, round_no, queries):
    account = new_account(f"delete-{size}")
    project = new_project(account)
    seed_thread(project, messages=1, runs=1, checkpoints=1)  # the project keeps a thread
    try:
        count = per_round(size)
        service, raw, generic, old, default = seed_copies(project, size, count)
        vacuum()

        def run_service():
            with CaptureQueriesContext(connection) as q:  # the first delete's queries
                delete_thread(thread=Thread(pk=service[0]))
            queries.append(len(q.captured_queries))
            for pk in service[1:]:
                delete_thread(thread=Thread(pk=pk))
            publisher.flush()  # the cleanup tasks published (batched): their cost counts

        def run_raw(table):
            def go():
                for pk in (raw if table.startswith("threads") else old):
                    sql(f"DELETE FROM {table} WHERE id = %s", [pk])
            return go

        def run_raw_generic():
            for pk in generic:
                sql(generic_plans("DELETE FROM threads_thread WHERE id = %s"), [pk])

        def run_default():
            for pk in default:
                with transaction.atomic():
                    OldThread.objects.filter(pk=pk).delete()

        return run_in_turn({"service": run_service, "raw": run_raw("threads_thread"), "raw_generic": run_raw_generic,
                            "old_raw": run_raw(f"{OLD}.threads_thread"), "default": run_default}, round_no)
    finally:
        sql(f"DELETE FROM {OLD}.threads_thread")
        drop_accounts([account])


PER_RUN = 300
RUNS_PER_ROUND = 4


def spaced_runs(thread, count):
    """`count` runs of the thread around its middle, none next to another nor first or
    last (so each deleted run's ancestor, in the run before it, stays)."""
    runs = list(Run.objects.filter(thread=thread).order_by("seq").values_list("pk", flat=True))
    start = max(1, len(runs) // 2 - count)
    picked = runs[start:-1:2][:count]
    assert len(picked) == count, "too few runs in the thread"
    return picked


def run_round(total, round_no, queries):
    account = new_account(f"run-delete-{total}")
    project = new_project(account)
    try:
        runs = max(total // PER_RUN, 3)
        service_thread, raw_thread, generic_thread = (seed_thread(project, messages=total, runs=runs, checkpoints=total)
                                                      for _ in range(3))
        service_runs, raw_runs, generic_runs = (spaced_runs(thread, RUNS_PER_ROUND)
                                                for thread in (service_thread, raw_thread, generic_thread))

        def ancestors_of(runs):
            return [sql("SELECT parent_checkpoint_id FROM threads_checkpoint WHERE run_id = %s ORDER BY id LIMIT 1",
                        [run])[0][0] for run in runs]

        ancestors, generic_ancestors = ancestors_of(raw_runs), ancestors_of(generic_runs)
        vacuum()

        def service():
            for run in service_runs:
                with CaptureQueriesContext(connection) as q:  # no measurable cost for a handful of queries
                    delete_run(thread=Thread(pk=service_thread.pk), run_id=run)
                queries.append(len(q.captured_queries))
            publisher.flush()

        def raw_delete(thread, runs, ancestors, wrap=str):
            def go():  # one autocommitted statement each: the re-link in a data-modifying CTE, then the delete
                for run, ancestor in zip(runs, ancestors):
                    sql(wrap("WITH relinked AS (UPDATE threads_checkpoint SET parent_checkpoint_id = %s"
                             " WHERE thread_id = %s AND parent_checkpoint_id IN"
                             " (SELECT checkpoint_id FROM threads_checkpoint WHERE run_id = %s)"
                             " AND run_id <> %s) DELETE FROM threads_run WHERE id = %s"),
                        [ancestor, thread.pk, run, run, run])
            return go

        result = run_in_turn({"service": service, "raw": raw_delete(raw_thread, raw_runs, ancestors),
                              "raw_generic": raw_delete(generic_thread, generic_runs, generic_ancestors, generic_plans)},
                             round_no)
        assert not Run.objects.filter(pk__in=service_runs + raw_runs + generic_runs).exists()
        return result
    finally:
        drop_accounts([account])


def thread_deletes(sizes, rounds):
    build_old_schema()
    try:
        for size in sizes:
            print(f"thread delete: {size:,} messages, {max(size // 100, 1):,} runs, {max(size // 10, 1):,} checkpoints"
                  f" (+1 write each), {per_round(size)} per round, {rounds} rounds", flush=True)
            queries = []
            one_round(min(size, 1000), 0, [])  # warm-up: code paths and plans
            done = [one_round(size, r, queries) for r in range(rounds)]
            report(f"{size:>9,} messages", done,
                   [("service", "raw"), ("service", "raw_generic"), ("service", "old_raw"), ("raw", "old_raw"),
                    ("default", "service")])
            print(f"  service queries per delete (incl. BEGIN/COMMIT): {max(queries)}", flush=True)
    finally:
        drop_old_schema()


def run_deletes(totals, rounds):
    run_round(3000, 0, [])  # warm-up
    medians = {}
    for total in totals:
        print(f"run delete: runs of {PER_RUN} checkpoints and {PER_RUN} messages in a thread of {total:,}"
              f" ({RUNS_PER_ROUND} per round, {rounds} rounds)", flush=True)
        queries = []
        done = [run_round(total, r, queries) for r in range(rounds)]
        report(f"{total:>7,} in the thread", done, [("service", "raw"), ("service", "raw_generic")])
        medians[total] = statistics.median(r["service"] for r in done)
        print(f"  service queries (incl. BEGIN/COMMIT): {max(queries)}", flush=True)
    if medians:
        first = min(medians)
        for total, median in medians.items():
            print(f"  run delete, service median at {total:,}: {median / RUNS_PER_ROUND * 1000:.1f} ms per run"
                  f" ({median / medians[first]:.2f}x the {first:,} case)", flush=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000,10000,100000", help="messages per thread, comma-separated")
    parser.add_argument("--run-totals", default="3000,30000", help="checkpoints per thread around the deleted run")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    prepare()
    sizes = [int(s) for s in args.sizes.split(",") if s]
    totals = [int(t) for t in args.run_totals.split(",") if t]
    if sizes:
        thread_deletes(sizes, args.rounds)
    if totals:
        run_deletes(totals, args.rounds)


if __name__ == "__main__":
    main()
