"""Benchmark: a background delete job over 100,000 threads, run by a real Celery
worker, against the raw-SQL lower bound; and the worker's peak memory.

Not a test. Needs PostgreSQL and a Redis broker (it migrates the database it is
given and deletes what it seeds):

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/threadkeeper_bench \
    CELERY_BROKER_URL=redis://127.0.0.1:6379/12 \
        .venv/bin/python bench/job_bench.py --threads 100000 --messages 5 --checkpoints 2

It seeds two identical copies (N threads in 100 projects, each with M messages and K
checkpoints, inserted set-based), starts a worker (`celery worker -P
solo`, one process), submits the job exactly as the admin does above its threshold
(`jobs.services.submit_job`, kind `delete_threads`, batches of `--batch-size`) and
waits for it; then deletes the other copy with the fastest hand-written SQL in the
same batches (the lower bound: one `DELETE` of the threads per batch, the cascade
does the rest, and one for the emptied projects). It prints threads/s of both and
their ratio, the job's own time (first batch to last, from its row) and the time from
submission to done, and the worker's peak resident memory (VmHWM) before and after
the job. After-commit cleanup (embeddings, sandboxes, caches) is queued to the same
worker, as in production; it runs after the job and is not timed.
"""

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
os.environ.setdefault("SECRET_KEY", "bench-only-secret-key-0123456789abcdefghijklmnopqrstuvwxyz")
os.environ["CELERY_TASK_ALWAYS_EAGER"] = "0"

import django  # noqa: E402

django.setup()

from django.conf import settings  # noqa: E402
from django.contrib.auth.models import User  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.db import connection, transaction  # noqa: E402

from config.celery import app  # noqa: E402
from jobs.models import Job  # noqa: E402
from jobs.services import submit_job  # noqa: E402
from projects.models import Account  # noqa: E402
from projects.services import create_account, create_project  # noqa: E402
from threads.models import Checkpoint, Message, Thread  # noqa: E402

RAW_SQL = [
    "DELETE FROM threads_thread WHERE id = ANY(%(ids)s)",
    "DELETE FROM projects_project p WHERE p.account_id = %(account)s"
    " AND NOT EXISTS (SELECT 1 FROM threads_thread t WHERE t.project_id = p.id)",
]


def memory_kb(pid: int) -> dict:
    """VmRSS and VmHWM (peak resident set) of a process, from /proc."""
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            fields[key] = int(value.split()[0])
    return fields


def insert_select(model, exprs: dict, source: str, params: dict):
    """`INSERT INTO <model> (every column) SELECT <exprs, else each field's default> FROM <source>`:
    set-based seeding that stays right when the model gains a column."""
    columns, values, args = [], [], dict(params)
    for field in model._meta.concrete_fields:
        if field.primary_key and field.get_internal_type() == "BigAutoField":
            continue
        columns.append(connection.ops.quote_name(field.column))
        if field.name in exprs:
            values.append(exprs[field.name])
        elif getattr(field, "auto_now", False) or getattr(field, "auto_now_add", False):
            values.append("now()")
        else:
            args[f"d_{field.column}"] = field.get_db_prep_save(field.get_default(), connection)
            values.append(f"%(d_{field.column})s")
    with connection.cursor() as cur:
        cur.execute(f"INSERT INTO {model._meta.db_table} ({', '.join(columns)}) SELECT {', '.join(values)} {source}",
                    args)


def make_copy(name, args):
    """N threads spread over the account's 100 projects, then M messages and K
    checkpoints each: set-based, so that 100,000 threads seed in seconds."""
    user = User.objects.create(username=f"bench-{name}-{time.monotonic_ns()}")
    account = create_account(name=name, owner=user)
    projects = [create_project(account=account, name=f"p{i}").pk for i in range(100)]
    params = {"account": account.pk, "projects": projects, "threads": args.threads, "messages": args.messages,
              "checkpoints": args.checkpoints}
    of_account = "FROM threads_thread t CROSS JOIN generate_series(1, %(n)s) s WHERE t.account_id = %(account)s"
    with transaction.atomic():
        insert_select(Thread, {"id": "gen_random_uuid()", "account": "%(account)s",
                               "project": "(%(projects)s::uuid[])[1 + n %% 100]", "title": "'bench ' || n",
                               "last_message_seq": "%(messages)s"},
                      "FROM generate_series(1, %(threads)s) n", params)
        insert_select(Message, {"id": "gen_random_uuid()", "thread": "t.id", "seq": "s", "role": "'user'",
                                "content": """'[{"type": "text", "text": "hello"}]'"""},
                      of_account, {**params, "n": args.messages})
        insert_select(Checkpoint, {"thread": "t.id", "checkpoint_id": "'c' || s"},
                      of_account, {**params, "n": args.checkpoints})
    return account


def start_worker():
    env = dict(os.environ, CELERY_TASK_ALWAYS_EAGER="0")
    proc = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "config", "worker", "-P", "solo", "--loglevel=WARNING",
         "-n", f"bench-{os.getpid()}@%h"],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            sys.exit("The worker exited at start.")
        if app.control.ping(timeout=0.5):
            return proc
    proc.terminate()
    sys.exit("The worker did not answer a ping within 60 s.")


def run_job(account, args, worker):
    before = memory_kb(worker.pid)
    targets = Thread.objects.filter(account=account, parent_thread=None)
    total = targets.count()
    started = time.perf_counter()
    job = submit_job(kind="delete_threads", targets=targets, total=total, description=f"Delete {total:,} threads",
                     source="command", batch_size=args.batch_size)
    while True:
        job.refresh_from_db()
        if job.finished:
            break
        time.sleep(0.2)
    wall = time.perf_counter() - started
    after = memory_kb(worker.pid)
    own = (job.finished_at - job.started_at).total_seconds()
    return job, total, wall, own, before, after


def run_raw(account, size):
    ids = list(Thread.objects.filter(account=account, parent_thread=None).order_by("pk").values_list("pk", flat=True))
    started = time.perf_counter()
    for i in range(0, len(ids), size):
        with transaction.atomic(), connection.cursor() as cur:
            for sql in RAW_SQL:
                cur.execute(sql, {"ids": [str(t) for t in ids[i:i + size]], "account": str(account.pk)})
    return time.perf_counter() - started, len(ids)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=100_000)
    parser.add_argument("--messages", type=int, default=5)
    parser.add_argument("--checkpoints", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=settings.BACKGROUND_JOBS["batch_size"])
    args = parser.parse_args()
    if connection.vendor != "postgresql" or settings.CELERY_BROKER_URL.startswith("memory"):
        sys.exit("The benchmark needs PostgreSQL and a broker: set DATABASE_URL=postgres://... and CELERY_BROKER_URL.")
    call_command("migrate", verbosity=0)
    print(f"{args.threads:,} threads x {args.messages} messages x {args.checkpoints} checkpoints, "
          f"batches of {args.batch_size:,}", flush=True)
    app.control.purge()
    t = time.perf_counter()
    job_copy, raw_copy = make_copy("bench-job", args), make_copy("bench-raw", args)
    with connection.cursor() as cur:
        cur.execute("VACUUM ANALYZE")
    print(f"seeded two copies in {time.perf_counter() - t:.0f}s", flush=True)
    worker = start_worker()
    try:
        job, total, wall, own, before, after = run_job(job_copy, args, worker)
        raw_s, raw_n = run_raw(raw_copy, args.batch_size)
    finally:
        worker.terminate()
        worker.wait(timeout=30)
        Account.objects.filter(pk__in=[job_copy.pk, raw_copy.pk])._raw_delete(Account.objects.db)
        User.objects.filter(username__startswith="bench-").delete()
        Job.objects.filter(description__startswith="Delete").filter(source="command", created_by=None).delete()
    print(f"job      {job.state}: {job.done:,} threads in {job.batches} batches; its own time {own:.2f}s "
          f"({total / own:,.0f} threads/s); submission to done {wall:.2f}s ({total / wall:,.0f} threads/s)")
    print(f"raw SQL  {raw_n:,} threads in {raw_s:.2f}s ({raw_n / raw_s:,.0f} threads/s)")
    print(f"ratio    job/raw SQL {own / raw_s:.2f}x (own time), {wall / raw_s:.2f}x (submission to done)")
    print(f"worker   peak RSS {before['VmHWM'] / 1024:.0f} MB after start, {after['VmHWM'] / 1024:.0f} MB after "
          f"the job (RSS now {after['VmRSS'] / 1024:.0f} MB)")


if __name__ == "__main__":
    main()
