"""What the benchmarks share: Django set up against PostgreSQL with after-commit work
queued (an in-memory broker, no worker), fast seeding in SQL, the schema as it was
before checkpoint writes were keyed by thread (to measure the old raw bound on the
same data), and the statistics of per-round ratios.

Not a test: each script is run by hand or by `make bench` against a database of its
own (it migrates it and removes what it seeds).
"""

import os
import statistics
import sys
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
os.environ.setdefault("SECRET_KEY", "bench-only-secret-key-0123456789abcdefghijklmnopqrstuvwxyz")
os.environ["CELERY_BROKER_URL"] = "memory://"
os.environ["CELERY_TASK_ALWAYS_EAGER"] = "0"

import django  # noqa: E402

django.setup()

from django.core.management import call_command  # noqa: E402
from django.db import OperationalError, connection  # noqa: E402

from projects.models import Account, Project  # noqa: E402
from threads.models import Run, Thread  # noqa: E402


def prepare():
    """Create (if missing) and migrate the database given by DATABASE_URL (PostgreSQL only)."""
    if connection.vendor != "postgresql":
        sys.exit("The benchmark needs PostgreSQL: set DATABASE_URL=postgres://...")
    try:
        connection.ensure_connection()
    except OperationalError:
        import psycopg

        params = connection.get_connection_params()
        name = params.pop("dbname")
        with psycopg.connect(**{**params, "dbname": "postgres"}, autocommit=True) as admin:
            admin.execute(f'CREATE DATABASE "{name}"')
    call_command("migrate", verbosity=0)


def sql(statement, params=None):
    with connection.cursor() as cur:
        cur.execute(statement, params)
        return cur.fetchall() if cur.description else None


def vacuum():
    """The same planner statistics and a clean heap for every copy of a round."""
    sql("VACUUM ANALYZE")


def new_account(name):
    return Account.objects.create(name=f"bench {name} {uuid.uuid4().hex[:8]}")


def drop_accounts(accounts):
    Account.objects.filter(pk__in=[a.pk for a in accounts])._raw_delete(Account.objects.db)


def seed_thread(project, *, messages, runs, checkpoints, writes_per_checkpoint=1):
    """One thread with its history (see `seed_threads`)."""
    return seed_threads([project], 1, messages=messages, runs=runs, checkpoints=checkpoints,
                        writes_per_checkpoint=writes_per_checkpoint)[0]


def seed_threads(projects, n, *, messages, runs, checkpoints, writes_per_checkpoint=1):
    """n threads (spread over the projects), each with its history, inserted
    set-based in SQL (a million messages in seconds): R runs, the messages and the
    checkpoints (one chain per thread) split over the runs in order — run r owns a
    contiguous stretch of each; each checkpoint's metadata names the messages its state
    holds (`message_seq`, as the runtime writes it) — and W writes per checkpoint."""
    runs = max(runs, 1)
    threads = Thread.objects.bulk_create([
        Thread(account_id=projects[i % len(projects)].account_id, project=projects[i % len(projects)],
               title="bench", model="echo-1", last_message_seq=messages, last_run_seq=runs,
               message_tokens=6 * messages)
        for i in range(n)
    ], batch_size=2000)
    ids = [str(t.pk) for t in threads]
    # Runs through the ORM (their columns change most often), the rest in SQL.
    Run.objects.bulk_create([
        Run(thread=t, seq=r, status="success", model="echo-1", input={"message": "hi"}, metadata={"k": 1},
            message=f"hi {r}", input_tokens=10, output_tokens=12, result="ok")
        for t in threads for r in range(1, runs + 1)
    ], batch_size=5000)
    if n * runs >= 1000:
        # Fresh statistics before the inserts' foreign-key checks: a check's plan is
        # kept per connection, and one made when `threads_run` was small scans it.
        sql("ANALYZE threads_thread, threads_run")
    per_run_messages, per_run_checkpoints = -(-messages // runs), -(-checkpoints // runs)
    sql("""
        INSERT INTO threads_message (id, thread_id, seq, role, content, run_id, agent_id, token_count, created_at)
        SELECT gen_random_uuid(), r.thread_id, s.seq, CASE WHEN s.seq %% 2 = 0 THEN 'assistant' ELSE 'user' END,
            jsonb_build_array(jsonb_build_object('type', 'text', 'text', 'message ' || s.seq || ' of the bench')),
            r.id, NULL, 6, now()
        FROM threads_run r, LATERAL (SELECT (r.seq - 1) * %s + j AS seq FROM generate_series(1, %s) j) s
        WHERE r.thread_id = ANY(%s::uuid[]) AND s.seq <= %s""", [per_run_messages, per_run_messages, ids, messages])
    sql("""
        INSERT INTO threads_checkpoint (thread_id, checkpoint_ns, checkpoint_id, parent_checkpoint_id, checkpoint,
            metadata, run_id, created_at)
        SELECT r.thread_id, '', 'cp-' || lpad(s.c::text, 9, '0'),
            CASE WHEN s.c > 1 THEN 'cp-' || lpad((s.c - 1)::text, 9, '0') END,
            jsonb_build_object('v', 1, 'step', s.c, 'channel_values', jsonb_build_object('messages', s.c)),
            jsonb_build_object('source', 'loop', 'step', s.c, 'message_seq', s.c::bigint * %s / %s), r.id, now()
        FROM threads_run r, LATERAL (SELECT (r.seq - 1) * %s + j AS c FROM generate_series(1, %s) j) s
        WHERE r.thread_id = ANY(%s::uuid[]) AND s.c <= %s
        ORDER BY r.thread_id, s.c""", [messages, checkpoints, per_run_checkpoints, per_run_checkpoints, ids, checkpoints])
    if writes_per_checkpoint:
        sql("""
            INSERT INTO threads_checkpointwrite (thread_id, run_id, checkpoint_id, task_id, idx, channel, type,
                value, task_path)
            SELECT thread_id, run_id, id, 'task', w, 'messages', 'json', '{"v": 1}', ''
            FROM threads_checkpoint, generate_series(0, %s - 1) w WHERE thread_id = ANY(%s::uuid[])""",
            [writes_per_checkpoint, ids])
    return threads


def new_project(account, name="bench"):
    return Project.objects.create(account=account, name=name)


# --- The schema before this release: writes cascading from their checkpoint -------

OLD = "bench_old_schema"
OLD_TABLES = ("threads_thread", "threads_run", "threads_message", "threads_checkpoint", "threads_checkpointwrite",
              "threads_approval")


def build_old_schema():
    """The thread tables as they were: writes keyed by checkpoint with a per-row
    `ON DELETE CASCADE` from it (no thread or run key), and the indexes that were
    dropped since (single-column foreign-key indexes and the two duplicates), in a
    schema of their own. Same columns otherwise, so a copy is an INSERT ... SELECT."""
    sql(f"DROP SCHEMA IF EXISTS {OLD} CASCADE")
    sql(f"CREATE SCHEMA {OLD}")
    for table in OLD_TABLES:
        sql(f"CREATE TABLE {OLD}.{table} (LIKE public.{table} INCLUDING DEFAULTS INCLUDING CONSTRAINTS"
            f" INCLUDING INDEXES INCLUDING IDENTITY)")
    w = f"{OLD}.threads_checkpointwrite"
    sql(f"ALTER TABLE {w} DROP COLUMN thread_id, DROP COLUMN run_id")
    sql(f"DROP INDEX IF EXISTS {OLD}.checkpoint_parent")
    fks = [
        ("threads_thread", "parent_thread_id", "threads_thread", "CASCADE"),
        ("threads_run", "thread_id", "threads_thread", "CASCADE"),
        ("threads_message", "thread_id", "threads_thread", "CASCADE"),
        ("threads_message", "run_id", "threads_run", "SET NULL"),
        ("threads_checkpoint", "thread_id", "threads_thread", "CASCADE"),
        ("threads_checkpoint", "run_id", "threads_run", "CASCADE"),
        ("threads_checkpointwrite", "checkpoint_id", "threads_checkpoint", "CASCADE"),
        ("threads_approval", "thread_id", "threads_thread", "CASCADE"),
        ("threads_approval", "run_id", "threads_run", "CASCADE"),
    ]
    for table, column, target, action in fks:
        sql(f"ALTER TABLE {OLD}.{table} ADD FOREIGN KEY ({column}) REFERENCES {OLD}.{target} (id)"
            f" ON DELETE {action} DEFERRABLE INITIALLY DEFERRED")
    old_indexes = [
        ("threads_thread", "account_id"), ("threads_thread", "project_id"), ("threads_thread", "agent_id"),
        ("threads_message", "thread_id"), ("threads_message", "run_id"), ("threads_run", "thread_id"),
        ("threads_checkpoint", "thread_id"), ("threads_checkpoint", "run_id"),
        ("threads_checkpointwrite", "checkpoint_id"), ("threads_approval", "thread_id"),
    ]
    for table, column in old_indexes:
        sql(f"CREATE INDEX ON {OLD}.{table} ({column})")


def copy_to_old_schema(thread_ids):
    """Copy these threads (with their sub-threads' rows given too) into the old schema."""
    ids = [str(t) for t in thread_ids]
    for table in ("threads_thread",):
        sql(f"INSERT INTO {OLD}.{table} SELECT * FROM public.{table} WHERE id = ANY(%s::uuid[])"
            f" ORDER BY depth", [ids])
    for table in ("threads_run", "threads_message", "threads_checkpoint", "threads_approval"):
        sql(f"INSERT INTO {OLD}.{table} SELECT * FROM public.{table} WHERE thread_id = ANY(%s::uuid[])", [ids])
    cols = "id, checkpoint_id, task_id, idx, channel, type, value, task_path"
    sql(f"INSERT INTO {OLD}.threads_checkpointwrite ({cols}) SELECT {cols} FROM public.threads_checkpointwrite"
        f" WHERE thread_id = ANY(%s::uuid[])", [ids])


def old_schema_models():
    """The old schema's tables as models with Django's default, Python-level cascade
    (`on_delete=CASCADE`, `SET_NULL`): what a delete costs when Django's collector
    walks the graph (selecting children, deleting them level by level) instead of the
    database. Unmanaged; only keys are declared, so the collector loads as little as
    it can (a lower estimate of that cost)."""
    from django.db import models

    def table(name):
        return f'{OLD}"."{name}'

    class Meta:
        app_label, managed = "threads", False

    def model(name, db_table, **fields):
        return type(name, (models.Model,), {"__module__": __name__,
                                            "Meta": type("Meta", (Meta,), {"db_table": table(db_table)}), **fields})

    thread = model("BenchOldThread", "threads_thread", id=models.UUIDField(primary_key=True),
                   parent_thread=models.ForeignKey("self", null=True, on_delete=models.CASCADE, related_name="+"))
    run = model("BenchOldRun", "threads_run", id=models.UUIDField(primary_key=True),
                thread=models.ForeignKey(thread, on_delete=models.CASCADE, related_name="+"))
    model("BenchOldMessage", "threads_message", id=models.UUIDField(primary_key=True),
          thread=models.ForeignKey(thread, on_delete=models.CASCADE, related_name="+"),
          run=models.ForeignKey(run, null=True, on_delete=models.SET_NULL, related_name="+"))
    checkpoint = model("BenchOldCheckpoint", "threads_checkpoint", id=models.BigAutoField(primary_key=True),
                       thread=models.ForeignKey(thread, on_delete=models.CASCADE, related_name="+"),
                       run=models.ForeignKey(run, null=True, on_delete=models.CASCADE, related_name="+"))
    model("BenchOldWrite", "threads_checkpointwrite", id=models.BigAutoField(primary_key=True),
          checkpoint=models.ForeignKey(checkpoint, on_delete=models.CASCADE, related_name="+"))
    model("BenchOldApproval", "threads_approval", id=models.UUIDField(primary_key=True),
          thread=models.ForeignKey(thread, on_delete=models.CASCADE, related_name="+"),
          run=models.ForeignKey(run, null=True, on_delete=models.CASCADE, related_name="+"))
    return thread


def drop_old_schema():
    sql(f"DROP SCHEMA IF EXISTS {OLD} CASCADE")


# --- Timing and statistics ------------------------------------------------------


def timed(fn):
    started = time.perf_counter()
    result = fn()
    return time.perf_counter() - started, result


def run_in_turn(fns: dict, round_no: int) -> dict:
    """Run each of `fns` ({name: fn}) once, the order rotating with the round, and
    return {name: seconds}."""
    names = list(fns)
    shift = round_no % len(names)
    order = names[shift:] + names[:shift]
    if round_no % 2:
        order.reverse()
    return {name: timed(fns[name])[0] for name in order}


def spread(values) -> str:
    values = sorted(values)
    return f"{values[0]:.2f}/{statistics.median(values):.2f}/{values[-1]:.2f}"


def report(label, rounds: list[dict], pairs):
    """One line per ratio: min/median/max of per-round ratios `a/b` for (a, b) in pairs."""
    for a, b in pairs:
        ratios = [r[a] / r[b] for r in rounds]
        times = [r[a] for r in rounds]
        print(f"  {label}: {a}/{b} = {spread(ratios)}x (min/median/max of {len(rounds)} rounds;"
              f" {a} median {statistics.median(times) * 1000:.1f} ms)", flush=True)
