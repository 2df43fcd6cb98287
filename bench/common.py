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
from django.db import connection  # noqa: E402

from projects.models import Account, Project  # noqa: E402
from threads.models import Thread  # noqa: E402


def prepare():
    """Migrate the database given by DATABASE_URL (PostgreSQL only)."""
    if connection.vendor != "postgresql":
        sys.exit("The benchmark needs PostgreSQL: set DATABASE_URL=postgres://...")
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


def seed_thread(project, *, messages, runs, checkpoints, writes_per_checkpoint=1, parent=None):
    """One thread with its history, inserted set-based in SQL (a million messages in
    seconds): messages spread over the runs, checkpoints in one chain spread over the
    runs in order (run r owns a contiguous stretch), one write per checkpoint."""
    thread = Thread.objects.create(
        account_id=project.account_id, project=project, parent_thread=parent, depth=1 if parent else 0,
        title="bench", model="echo-1", last_message_seq=messages, last_run_seq=runs, message_tokens=6 * messages,
    )
    tid = str(thread.pk)
    runs = max(runs, 1)
    sql("""
        INSERT INTO threads_run (id, thread_id, seq, status, runtime, model, input, metadata, message,
            start_message_seq, end_message_seq, input_tokens, output_tokens, result, error, started_at,
            completed_at, created_at, updated_at)
        SELECT gen_random_uuid(), %s, r, 'success', 'echo', 'echo-1', '{"message": "hi"}', '{"k": 1}', 'hi ' || r,
            NULL, NULL, 10, 12, 'ok', NULL, now(), now(), now(), now()
        FROM generate_series(1, %s) r""", [tid, runs])
    run_ids = [row[0] for row in sql("SELECT id FROM threads_run WHERE thread_id = %s ORDER BY seq", [tid])]
    sql("""
        INSERT INTO threads_message (id, thread_id, seq, role, content, run_id, agent_id, token_count, created_at)
        SELECT gen_random_uuid(), %s, m, CASE WHEN m %% 2 = 0 THEN 'assistant' ELSE 'user' END,
            jsonb_build_array(jsonb_build_object('type', 'text', 'text', 'message ' || m || ' of the bench')),
            (%s::uuid[])[1 + (m - 1) * %s / %s], NULL, 6, now()
        FROM generate_series(1, %s) m""", [tid, run_ids, runs, max(messages, 1), messages])
    sql("""
        INSERT INTO threads_checkpoint (thread_id, checkpoint_ns, checkpoint_id, parent_checkpoint_id, checkpoint,
            metadata, run_id, created_at)
        SELECT %s, '', 'cp-' || lpad(c::text, 9, '0'),
            CASE WHEN c > 1 THEN 'cp-' || lpad((c - 1)::text, 9, '0') END,
            jsonb_build_object('v', 1, 'step', c, 'channel_values', jsonb_build_object('messages', c)),
            jsonb_build_object('source', 'loop', 'step', c), (%s::uuid[])[1 + (c - 1) * %s / %s], now()
        FROM generate_series(1, %s) c""", [tid, run_ids, runs, max(checkpoints, 1), checkpoints])
    if writes_per_checkpoint:
        sql("""
            INSERT INTO threads_checkpointwrite (thread_id, run_id, checkpoint_id, task_id, idx, channel, type,
                value, task_path)
            SELECT thread_id, run_id, id, 'task', w, 'messages', 'json', '{"v": 1}', ''
            FROM threads_checkpoint, generate_series(0, %s - 1) w WHERE thread_id = %s""",
            [writes_per_checkpoint, tid])
    return thread


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
