"""Benchmark: deleting a thread through the service vs the fastest raw SQL, on the
current schema and on the schema before checkpoint writes were keyed by thread.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/threadkeeper_bench \\
        .venv/bin/python bench/delete_bench.py --sizes 1000,10000,100000 --rounds 5
    ... --sizes 1000000 --rounds 3          # the big one: a few minutes of seeding

A thread of M messages holds M/100 runs and M/10 checkpoints (one pending write
each), in a project with another thread (so the project stays). Each round seeds
identical copies — for the service (`threads.services.delete_thread`, what the API,
prune, the admin and the commands run), for the raw SQL on the current schema
(`DELETE FROM threads_thread WHERE id = ...`: the database cascade is the least the
database must do), and for the same raw SQL on the old schema — then deletes them in
an order that rotates with the round. Small threads are deleted several per round
(the times summed) to measure above the timer's noise. Printed: min/median/max of the
per-round ratios, and the service's queries per delete. After-commit cleanup is
queued (an in-memory broker), not executed, as with a worker.
"""

import argparse

from common import (OLD, build_old_schema, copy_to_old_schema, drop_accounts, drop_old_schema, new_account,
                    new_project, prepare, report, run_in_turn, seed_thread, sql, vacuum)
from django.db import connection
from django.test.utils import CaptureQueriesContext

from threads.models import Thread
from threads.services.deletion import delete_thread


def per_round(size):
    return max(1, min(20, 20_000 // size))


def seed_copies(project, size, count):
    def one():
        return seed_thread(project, messages=size, runs=max(size // 100, 1), checkpoints=max(size // 10, 1)).pk

    service = [one() for _ in range(count)]
    raw = [one() for _ in range(count)]
    old = [one() for _ in range(count)]
    copy_to_old_schema(old)
    Thread.objects.filter(pk__in=old)._raw_delete(Thread.objects.db)
    return service, raw, old


def one_round(size, round_no, queries):
    account = new_account(f"delete-{size}")
    project = new_project(account)
    seed_thread(project, messages=1, runs=1, checkpoints=1)  # the project keeps a thread
    try:
        count = per_round(size)
        service, raw, old = seed_copies(project, size, count)
        vacuum()

        def run_service():
            for pk in service:
                with CaptureQueriesContext(connection) as q:
                    delete_thread(thread=Thread(pk=pk))
                queries.append(len(q.captured_queries))

        def run_raw(table):
            def go():
                for pk in (raw if table.startswith("threads") else old):
                    sql(f"DELETE FROM {table} WHERE id = %s", [pk])
            return go

        return run_in_turn({"service": run_service, "raw": run_raw("threads_thread"),
                            "old_raw": run_raw(f"{OLD}.threads_thread")}, round_no)
    finally:
        sql(f"DELETE FROM {OLD}.threads_thread")
        drop_accounts([account])


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000,10000,100000", help="messages per thread, comma-separated")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    prepare()
    build_old_schema()
    try:
        for size in (int(s) for s in args.sizes.split(",")):
            print(f"thread delete: {size:,} messages, {max(size // 100, 1):,} runs, {max(size // 10, 1):,} checkpoints"
                  f" (+1 write each), {per_round(size)} per round, {args.rounds} rounds", flush=True)
            queries = []
            one_round(min(size, 1000), 0, [])  # warm-up: code paths and plans
            rounds = [one_round(size, r, queries) for r in range(args.rounds)]
            report(f"{size:>9,} messages", rounds, [("service", "raw"), ("service", "old_raw"), ("raw", "old_raw")])
            print(f"  service queries per delete (incl. BEGIN/COMMIT): {max(queries)}", flush=True)
    finally:
        drop_old_schema()


if __name__ == "__main__":
    main()
