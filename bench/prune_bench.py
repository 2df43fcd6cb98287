"""Benchmark: pruning threads through the service vs the fastest raw SQL (the lower bound).

Not a test. Needs PostgreSQL:

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/threadkeeper_bench \
        .venv/bin/python bench/prune_bench.py --threads 1000 --messages 100 --checkpoints 20

It migrates that database, seeds two identical copies of N threads × M messages × K
checkpoints (each checkpoint with one pending write) for each strategy, prunes one
copy through `threads.services.pruning.prune_batch` (what the API, the command and
the TTL sweeper call) and the other with hand-written SQL, in the same batch size,
and prints threads/s, query counts and the service/raw-SQL ratio.
"""

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
os.environ.setdefault("SECRET_KEY", "bench-only-secret-key-0123456789abcdefghijklmnopqrstuvwxyz")
# After-commit cleanup (embeddings, sandboxes, caches) is queued, as in production,
# not executed inside the timed section: an in-memory broker, no worker.
os.environ["CELERY_BROKER_URL"] = "memory://"
os.environ["CELERY_TASK_ALWAYS_EAGER"] = "0"

import django  # noqa: E402

django.setup()

from django.core.management import call_command  # noqa: E402
from django.db import connection, transaction  # noqa: E402
from django.test.utils import CaptureQueriesContext  # noqa: E402

from threads.management.commands.seed_demo import seed  # noqa: E402
from threads.models import Checkpoint, CheckpointWrite, Thread  # noqa: E402
from threads.services.pruning import prune_batch  # noqa: E402

RAW_DELETE = [
    # The cascade removes messages, runs, checkpoints, writes, approvals, sub-threads.
    "DELETE FROM threads_thread WHERE id = ANY(%(ids)s)",
    "DELETE FROM projects_project p WHERE p.account_id = %(account)s"
    " AND NOT EXISTS (SELECT 1 FROM threads_thread t WHERE t.project_id = p.id)",
]
RAW_KEEP_LATEST = [
    "DELETE FROM threads_checkpoint c WHERE c.thread_id = ANY(%(ids)s) AND c.id NOT IN ("
    " SELECT max(id) FROM threads_checkpoint WHERE thread_id = ANY(%(ids)s) GROUP BY thread_id, checkpoint_ns)",
    "UPDATE threads_checkpoint SET parent_checkpoint_id = NULL"
    " WHERE thread_id = ANY(%(ids)s) AND parent_checkpoint_id IS NOT NULL",
]


def make_copy(name, n, m, k):
    made = seed(username=f"bench-{name}-{time.monotonic_ns()}", password="x", account_name=name, n_projects=10,
                n_agents=1, n_threads=n, n_messages=m, n_runs=max(m // 10, 1), n_checkpoints=k)
    account = made["account"]
    # one pending write per checkpoint, as LangGraph writes them
    for start in range(0, n, 200):
        ids = list(Checkpoint.objects.filter(thread__account=account).order_by("id")
                   .values_list("id", flat=True)[start * k:(start + 200) * k])
        CheckpointWrite.objects.bulk_create(
            [CheckpointWrite(checkpoint_id=i, task_id="t", idx=1, channel="c", value={"v": 1}) for i in ids],
            ignore_conflicts=True, batch_size=5000,
        )
    return account


def batches(account, size):
    ids = list(Thread.objects.filter(account=account, parent_thread=None).order_by("pk").values_list("pk", flat=True))
    return [ids[i:i + size] for i in range(0, len(ids), size)]


def run_service(account, strategy, size):
    pruned = 0
    with CaptureQueriesContext(connection) as q:
        started = time.perf_counter()
        for ids in batches(account, size):
            pruned += prune_batch(thread_ids=ids, strategy=strategy)
        elapsed = time.perf_counter() - started
    return elapsed, len(q.captured_queries), pruned


def run_raw(account, strategy, size):
    statements = RAW_DELETE if strategy == "delete" else RAW_KEEP_LATEST
    queries = 0
    started = time.perf_counter()
    for ids in batches(account, size):
        with transaction.atomic(), connection.cursor() as cur:
            for sql in statements:
                cur.execute(sql, {"ids": [str(i) for i in ids], "account": str(account.pk)})
                queries += 1
    return time.perf_counter() - started, queries


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1000)
    parser.add_argument("--messages", type=int, default=100)
    parser.add_argument("--checkpoints", type=int, default=20)
    parser.add_argument("--batch-size", type=int, default=1000)
    args = parser.parse_args()
    if connection.vendor != "postgresql":
        sys.exit("The benchmark needs PostgreSQL: set DATABASE_URL=postgres://...")
    call_command("migrate", verbosity=0)
    print(f"{args.threads} threads x {args.messages} messages x {args.checkpoints} checkpoints, "
          f"batches of {args.batch_size}")
    for strategy in ("delete", "keep_latest"):
        service_copy = make_copy(f"service-{strategy}", args.threads, args.messages, args.checkpoints)
        raw_copy = make_copy(f"raw-{strategy}", args.threads, args.messages, args.checkpoints)
        with connection.cursor() as cur:
            cur.execute("VACUUM ANALYZE")  # same planner statistics for both copies
        raw_s, raw_q = run_raw(raw_copy, strategy, args.batch_size)
        svc_s, svc_q, pruned = run_service(service_copy, strategy, args.batch_size)
        print(f"{strategy:12} service: {svc_s:7.2f}s {args.threads / svc_s:8.0f} threads/s {svc_q:4d} queries "
              f"(pruned {pruned}) | raw SQL: {raw_s:7.2f}s {args.threads / raw_s:8.0f} threads/s {raw_q:4d} queries "
              f"| ratio {svc_s / raw_s:.2f}x")


if __name__ == "__main__":
    main()
