"""Benchmark: pruning threads through the service vs the fastest raw SQL (the lower
bound), on the current schema and, for the raw SQL, on the schema before checkpoint
writes were keyed by thread.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/threadkeeper_bench \\
        .venv/bin/python bench/prune_bench.py --threads 1000,10000 --rounds 3

For each size, strategy and round it seeds three identical copies of N threads (four
for keep_latest: also the service as it was before its one-statement form, `previous`)
(each with 100 messages (`--messages`), 10 runs, 20 checkpoints and one pending
write per checkpoint, in 10 projects that keep another thread), prunes one through
`threads.services.pruning.prune_batch` (what the API, the `prune_threads` command
and the TTL sweeper call) and the others with hand-written SQL — on the current
schema and on the old one — in the same batches, in an order that rotates with the
round, after a small warm-up. Printed: min/median/max of the per-round ratios,
threads/s and the service's queries per batch. After-commit cleanup (embeddings,
sandboxes, caches) is queued as in production, not executed: an in-memory broker.
"""

import argparse
import statistics

from common import (OLD, build_old_schema, copy_to_old_schema, drop_accounts, drop_old_schema, new_account,
                    new_project, prepare, report, run_in_turn, seed_thread, seed_threads, sql, vacuum)
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext

from config.tasks import publisher
from threads.models import Thread
from threads.services.pruning import prune_batch, prune_locked_step_by_step, record_keep_latest

NEWEST = ("SELECT thread_id, checkpoint_ns, max(id) AS newest FROM {s}.threads_checkpoint"
          " WHERE thread_id = ANY(%(ids)s::uuid[]) GROUP BY thread_id, checkpoint_ns")
# The newest checkpoints become roots, in the same statement as the deletes.
ROOTS = ("UPDATE {s}.threads_checkpoint SET parent_checkpoint_id = NULL"
         " WHERE id IN (SELECT newest FROM k) AND parent_checkpoint_id IS NOT NULL")
# The lower bounds: what the database must do at least, nothing around it.
RAW_SQL = {
    "delete": {
        # The cascade removes messages, runs, checkpoints, writes, approvals, sub-threads.
        "raw": ["DELETE FROM public.threads_thread WHERE id = ANY(%(ids)s::uuid[])"],
        "old_raw": [f"DELETE FROM {OLD}.threads_thread WHERE id = ANY(%(ids)s::uuid[])"],
    },
    "keep_latest": {
        # One statement: the newest id per (thread, namespace), then every other
        # checkpoint and write of the threads goes (an anti-join against the newest ids,
        # each table through its thread_id index) and the newest become roots. The
        # fastest of the forms tried; joining writes to checkpoints on `c.id < k.newest`
        # (the bound before) and a separate UPDATE were 1.4-1.5x slower.
        "raw": [
            f"WITH k AS MATERIALIZED ({NEWEST.format(s='public')}),"
            " w AS (DELETE FROM public.threads_checkpointwrite w WHERE w.thread_id = ANY(%(ids)s::uuid[])"
            "  AND NOT EXISTS (SELECT 1 FROM k WHERE k.newest = w.checkpoint_id)),"
            " c AS (DELETE FROM public.threads_checkpoint c WHERE c.thread_id = ANY(%(ids)s::uuid[])"
            "  AND NOT EXISTS (SELECT 1 FROM k WHERE k.newest = c.id))"
            f" {ROOTS.format(s='public')}",
        ],
        # Before: the writes went by the per-row cascade from their checkpoint.
        "old_raw": [
            f"WITH k AS MATERIALIZED ({NEWEST.format(s=OLD)}),"
            f" c AS (DELETE FROM {OLD}.threads_checkpoint c WHERE c.thread_id = ANY(%(ids)s::uuid[])"
            "  AND NOT EXISTS (SELECT 1 FROM k WHERE k.newest = c.id))"
            f" {ROOTS.format(s=OLD)}",
        ],
    },
}


@transaction.atomic
def previous_keep_latest(thread_ids):
    """keep_latest as the service did it before its one-statement form (kept as the
    SQLite path): lock, find the prunable threads, delete `checkpoint_id IN (the
    superseded checkpoints)` with their writes, clear the parents, the receipt."""
    locked = list(Thread.objects.select_for_update(no_key=True, of=("self",)).filter(pk__in=thread_ids)
                  .order_by("pk").values_list("pk", flat=True))
    deleted = prune_locked_step_by_step(locked)
    record_keep_latest(deleted)
    return len(deleted)


def make_copies(n, messages, copies=3):
    account = new_account(f"prune-{n}")
    projects = [new_project(account, f"p{i}") for i in range(10)]
    for project in projects:
        seed_thread(project, messages=1, runs=1, checkpoints=1)  # every project keeps a thread

    def copy():
        ids = []
        for start in range(0, n, 1000):
            ids += [t.pk for t in seed_threads(projects, min(1000, n - start), messages=messages, runs=10,
                                                   checkpoints=20)]
        return sorted(ids)

    service, raw, old = copy(), copy(), copy()
    previous = copy() if copies > 3 else []
    for start in range(0, n, 1000):
        copy_to_old_schema(old[start:start + 1000])
    sql("ANALYZE")  # fresh statistics: the cascade's per-thread queries once chose scans of the whole tables here
    Thread.objects.filter(pk__in=old)._raw_delete(Thread.objects.db)
    return account, service, raw, old, previous


def batches(ids, size):
    return [ids[i:i + size] for i in range(0, len(ids), size)]


def one_round(n, messages, strategy, batch_size, round_no, stats):
    account, service_ids, raw_ids, old_ids, previous_ids = make_copies(n, messages,
                                                                        4 if strategy == "keep_latest" else 3)
    vacuum()
    try:
        def service():
            for ids in batches(service_ids, batch_size):
                with CaptureQueriesContext(connection) as q:
                    stats["pruned"] += prune_batch(thread_ids=ids, strategy=strategy)
                stats["queries"] = max(stats["queries"], len(q.captured_queries))
            publisher.flush()  # the cleanup tasks published: their cost counts

        def raw(kind, ids_all):
            def go():
                for ids in batches(ids_all, batch_size):
                    with transaction.atomic(), connection.cursor() as cur:
                        for statement in RAW_SQL[strategy][kind]:
                            cur.execute(statement, {"ids": [str(i) for i in ids]})
            return go

        def previous():
            for ids in batches(previous_ids, batch_size):
                previous_keep_latest(ids)

        fns = {"service": service, "raw": raw("raw", raw_ids), "old_raw": raw("old_raw", old_ids)}
        if previous_ids:
            fns["previous"] = previous
        return run_in_turn(fns, round_no)
    finally:
        sql(f"DELETE FROM {OLD}.threads_thread")
        drop_accounts([account])


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", default="1000,10000", help="threads per copy, comma-separated")
    parser.add_argument("--messages", type=int, default=100, help="messages per thread")
    parser.add_argument("--strategies", default="delete,keep_latest")
    parser.add_argument("--batch-size", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    prepare()
    build_old_schema()
    try:
        for n in (int(x) for x in args.threads.split(",")):
            for strategy in args.strategies.split(","):
                one_round(20, 10, strategy, 20, 0, {"pruned": 0, "queries": 0})  # warm-up
                stats = {"pruned": 0, "queries": 0}
                rounds = [one_round(n, args.messages, strategy, args.batch_size, r, stats) for r in range(args.rounds)]
                print(f"prune {strategy}: {n:,} threads x {args.messages} messages x 20 checkpoints (+1 write each), batches of"
                      f" {args.batch_size}, {args.rounds} rounds", flush=True)
                pairs = [("service", "raw"), ("service", "old_raw"), ("raw", "old_raw")]
                if "previous" in rounds[0]:
                    pairs.append(("previous", "service"))
                report(f"{n:>6,} threads {strategy}", rounds, pairs)
                rate = n / statistics.median(r["service"] for r in rounds)
                print(f"  service: {rate:,.0f} threads/s (median), {stats['queries']} queries per batch of"
                      f" {args.batch_size}, pruned {stats['pruned'] // args.rounds:,} per round", flush=True)
    finally:
        drop_old_schema()


if __name__ == "__main__":
    main()
