"""Benchmark: pruning threads through the service vs the fastest raw SQL (the lower
bound), on the current schema and, for the raw SQL, on the schema before checkpoint
writes were keyed by thread.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/threadkeeper_bench \\
        .venv/bin/python bench/prune_bench.py --threads 1000,10000 --rounds 3

For each size, strategy and round it seeds three identical copies of N threads
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

from threads.models import Thread
from threads.services.pruning import prune_batch

NEWEST = ("SELECT thread_id, checkpoint_ns, max(id) AS newest FROM {s}.threads_checkpoint"
          " WHERE thread_id = ANY(%(ids)s::uuid[]) GROUP BY thread_id, checkpoint_ns")
CLEAR_PARENTS = ("UPDATE {s}.threads_checkpoint SET parent_checkpoint_id = NULL"
                 " WHERE thread_id = ANY(%(ids)s::uuid[]) AND parent_checkpoint_id IS NOT NULL")
# The lower bounds: what the database must do at least, nothing around it.
RAW_SQL = {
    "delete": {
        # The cascade removes messages, runs, checkpoints, writes, approvals, sub-threads.
        "raw": ["DELETE FROM public.threads_thread WHERE id = ANY(%(ids)s::uuid[])"],
        "old_raw": [f"DELETE FROM {OLD}.threads_thread WHERE id = ANY(%(ids)s::uuid[])"],
    },
    "keep_latest": {
        # One statement deletes the superseded checkpoints and their writes (joined on
        # the newest id per (thread, namespace): the fastest of the forms tried).
        "raw": [
            f"WITH k AS ({NEWEST.format(s='public')}),"
            " w AS (DELETE FROM public.threads_checkpointwrite w USING public.threads_checkpoint c, k"
            "  WHERE w.thread_id = ANY(%(ids)s::uuid[]) AND w.checkpoint_id = c.id AND c.thread_id = k.thread_id"
            "  AND c.checkpoint_ns = k.checkpoint_ns AND c.id < k.newest)"
            " DELETE FROM public.threads_checkpoint c USING k"
            " WHERE c.thread_id = k.thread_id AND c.checkpoint_ns = k.checkpoint_ns AND c.id < k.newest",
            CLEAR_PARENTS.format(s="public"),
        ],
        # Before: the writes went by the per-row cascade from their checkpoint.
        "old_raw": [
            f"DELETE FROM {OLD}.threads_checkpoint c USING ({NEWEST.format(s=OLD)}) k"
            " WHERE c.thread_id = k.thread_id AND c.checkpoint_ns = k.checkpoint_ns AND c.id < k.newest",
            CLEAR_PARENTS.format(s=OLD),
        ],
    },
}


def make_copies(n, messages):
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
    for start in range(0, n, 1000):
        copy_to_old_schema(old[start:start + 1000])
    Thread.objects.filter(pk__in=old)._raw_delete(Thread.objects.db)
    return account, service, raw, old


def batches(ids, size):
    return [ids[i:i + size] for i in range(0, len(ids), size)]


def one_round(n, messages, strategy, batch_size, round_no, stats):
    account, service_ids, raw_ids, old_ids = make_copies(n, messages)
    vacuum()
    try:
        def service():
            for ids in batches(service_ids, batch_size):
                with CaptureQueriesContext(connection) as q:
                    stats["pruned"] += prune_batch(thread_ids=ids, strategy=strategy)
                stats["queries"] = max(stats["queries"], len(q.captured_queries))

        def raw(kind, ids_all):
            def go():
                for ids in batches(ids_all, batch_size):
                    with transaction.atomic(), connection.cursor() as cur:
                        for statement in RAW_SQL[strategy][kind]:
                            cur.execute(statement, {"ids": [str(i) for i in ids]})
            return go

        return run_in_turn({"service": service, "raw": raw("raw", raw_ids), "old_raw": raw("old_raw", old_ids)},
                           round_no)
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
                report(f"{n:>6,} threads {strategy}", rounds,
                       [("service", "raw"), ("service", "old_raw"), ("raw", "old_raw")])
                rate = n / statistics.median(r["service"] for r in rounds)
                print(f"  service: {rate:,.0f} threads/s (median), {stats['queries']} queries per batch of"
                      f" {args.batch_size}, pruned {stats['pruned'] // args.rounds:,} per round", flush=True)
    finally:
        drop_old_schema()


if __name__ == "__main__":
    main()
