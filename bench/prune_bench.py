"""Benchmark: pruning threads through the service vs the fastest raw SQL (the lower bound).

Not a test. Needs PostgreSQL (it migrates the database it is given and leaves it as
it found it: every copy it seeds is deleted at the end of its round):

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/threadkeeper_bench \
        .venv/bin/python bench/prune_bench.py --threads 1000 --messages 100 --checkpoints 20

For each strategy and each round it seeds two identical copies of N threads × M
messages × K checkpoints (`seed_demo`'s `seed`, plus one pending write per
checkpoint), prunes one through `threads.services.pruning.prune_batch` (what the API,
the `prune_threads` command and the TTL sweeper call) and the other with hand-written
SQL, in the same batches (the service first in odd rounds, second in even ones, after
a small warm-up), and prints threads/s, query counts and the ratio service/raw SQL;
the summary takes the best round of each. After-commit cleanup
(embeddings, sandboxes, caches) is queued as in production, not executed in the
timed section: an in-memory broker, no worker.
"""

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
os.environ.setdefault("SECRET_KEY", "bench-only-secret-key-0123456789abcdefghijklmnopqrstuvwxyz")
os.environ["CELERY_BROKER_URL"] = "memory://"
os.environ["CELERY_TASK_ALWAYS_EAGER"] = "0"

import django  # noqa: E402

django.setup()

from django.contrib.auth.models import User  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.db import connection, transaction  # noqa: E402
from django.test.utils import CaptureQueriesContext  # noqa: E402

from projects.models import Account  # noqa: E402
from threads.management.commands.seed_demo import seed  # noqa: E402
from threads.models import Checkpoint, CheckpointWrite, Thread  # noqa: E402
from threads.services.pruning import prune_batch  # noqa: E402

# The lower bounds: what the database must do at least, nothing around it.
RAW_SQL = {
    "delete": [
        # The cascade removes messages, runs, checkpoints, writes, approvals, sub-threads.
        "DELETE FROM threads_thread WHERE id = ANY(%(ids)s)",
        "DELETE FROM projects_project p WHERE p.account_id = %(account)s"
        " AND NOT EXISTS (SELECT 1 FROM threads_thread t WHERE t.project_id = p.id)",
    ],
    "keep_latest": [
        # The fastest of the forms tried (NOT IN max(id), EXISTS newer, one CTE): a
        # join on the newest id per (thread, namespace).
        "DELETE FROM threads_checkpoint c USING (SELECT thread_id, checkpoint_ns, max(id) AS newest"
        " FROM threads_checkpoint WHERE thread_id = ANY(%(ids)s) GROUP BY thread_id, checkpoint_ns) k"
        " WHERE c.thread_id = k.thread_id AND c.checkpoint_ns = k.checkpoint_ns AND c.id < k.newest",
        "UPDATE threads_checkpoint SET parent_checkpoint_id = NULL"
        " WHERE thread_id = ANY(%(ids)s) AND parent_checkpoint_id IS NOT NULL",
    ],
}


def make_copy(name, n, m, k):
    made = seed(username=f"bench-{name}-{time.monotonic_ns()}", password="x", account_name=name, n_projects=10,
                n_agents=1, n_threads=n, n_messages=m, n_runs=max(m // 10, 1), n_checkpoints=k)
    account = made["account"]
    # one pending write per checkpoint, as LangGraph writes them
    last = 0
    while ids := list(Checkpoint.objects.filter(thread__account=account, id__gt=last).order_by("id")
                      .values_list("id", flat=True)[:5000]):
        CheckpointWrite.objects.bulk_create(
            [CheckpointWrite(checkpoint_id=i, task_id="t", idx=1, channel="c", value={"v": 1}) for i in ids],
            ignore_conflicts=True, batch_size=5000,
        )
        last = ids[-1]
    return account


def batches(account, size):
    ids = list(Thread.objects.filter(account=account, parent_thread=None).order_by("pk").values_list("pk", flat=True))
    return [ids[i:i + size] for i in range(0, len(ids), size)]


def run_service(account, strategy, size):
    pruned, work = 0, batches(account, size)
    with CaptureQueriesContext(connection) as q:
        started = time.perf_counter()
        for ids in work:
            pruned += prune_batch(thread_ids=ids, strategy=strategy)
        elapsed = time.perf_counter() - started
    statements = [x for x in q.captured_queries if x["sql"] not in ("BEGIN", "COMMIT")]
    return elapsed, len(statements), pruned


def run_raw(account, strategy, size):
    queries, work = 0, batches(account, size)
    started = time.perf_counter()
    for ids in work:
        with transaction.atomic(), connection.cursor() as cur:
            for sql in RAW_SQL[strategy]:
                cur.execute(sql, {"ids": [str(i) for i in ids], "account": str(account.pk)})
                queries += 1
    return time.perf_counter() - started, queries


def warm_up(strategy):
    """One small prune first: a long-lived process has its code paths and query
    compilation warm, and the first round must not pay for them."""
    account = make_copy(f"warm-up-{strategy}", 5, 2, 3)
    try:
        run_service(account, strategy, 5)
    finally:
        Account.objects.filter(pk=account.pk)._raw_delete(Account.objects.db)


def one_round(strategy, args, service_first):
    service_copy = make_copy(f"service-{strategy}", args.threads, args.messages, args.checkpoints)
    raw_copy = make_copy(f"raw-{strategy}", args.threads, args.messages, args.checkpoints)
    with connection.cursor() as cur:
        cur.execute("VACUUM ANALYZE")  # the same planner statistics and a clean heap for both copies
    try:
        if service_first:
            service = run_service(service_copy, strategy, args.batch_size)
            raw = run_raw(raw_copy, strategy, args.batch_size)
        else:
            raw = run_raw(raw_copy, strategy, args.batch_size)
            service = run_service(service_copy, strategy, args.batch_size)
    finally:
        Account.objects.filter(pk__in=[service_copy.pk, raw_copy.pk])._raw_delete(Account.objects.db)
    return service, raw


def line(label, strategy, n, service, raw):
    (svc_s, svc_q, pruned), (raw_s, raw_q) = service, raw
    return (f"{label:8} {strategy:12} service {svc_s:6.2f}s {n / svc_s:6.0f} threads/s {svc_q:3d} queries"
            f" (pruned {pruned}) | raw SQL {raw_s:6.2f}s {n / raw_s:6.0f} threads/s {raw_q:3d} queries"
            f" | ratio {svc_s / raw_s:.2f}x")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1000)
    parser.add_argument("--messages", type=int, default=100)
    parser.add_argument("--checkpoints", type=int, default=20)
    parser.add_argument("--batch-size", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    if connection.vendor != "postgresql":
        sys.exit("The benchmark needs PostgreSQL: set DATABASE_URL=postgres://...")
    call_command("migrate", verbosity=0)
    print(f"{args.threads} threads x {args.messages} messages x {args.checkpoints} checkpoints "
          f"(+1 write each), batches of {args.batch_size}, {args.rounds} rounds", flush=True)
    best = {}
    for strategy in ("delete", "keep_latest"):
        warm_up(strategy)
        for r in range(args.rounds):
            service, raw = one_round(strategy, args, service_first=r % 2 == 0)
            print(line(f"round {r + 1}", strategy, args.threads, service, raw), flush=True)
            fastest = best.get(strategy, (service, raw))
            best[strategy] = (min(service, fastest[0]), min(raw, fastest[1]))
    for strategy, (service, raw) in best.items():
        print(line("best", strategy, args.threads, service, raw))
    User.objects.filter(username__startswith="bench-").delete()


if __name__ == "__main__":
    main()
