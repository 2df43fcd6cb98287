"""Logging an operator can read: one line per event, JSON by a setting, the request id
on every line of a request, one line per destructive operation (who, what, counts), and
Celery/kombu quiet on the embedded defaults so `prune_threads`' progress bar stays on
one line. Each case runs the real entry point in a process of its own, on a fresh
SQLite database, and reads what it writes to its terminal or stderr."""

import json
import os
import pty
import re
import secrets
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def embedded_env(tmp_path, **extra):
    env = {k: v for k, v in os.environ.items()
           if k not in {"DJANGO_SETTINGS_MODULE", "REDIS_URL", "CELERY_BROKER_URL", "CELERY_TASK_ALWAYS_EAGER",
                        "PROMETHEUS_MULTIPROC_DIR"}}
    env.update({"DJANGO_SETTINGS_MODULE": "config.settings", "ENV_FILE": "", "DEBUG": "0",
                "SECRET_KEY": secrets.token_urlsafe(50), "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}",
                "SANDBOX_ROOT": str(tmp_path / "sandboxes"), **extra})
    return env


def manage(env, *args, **kwargs):
    return subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=env, text=True, timeout=300, **kwargs)


def in_a_terminal(env, *args) -> str:
    """Run a command with stdout and stderr on a pseudo-terminal, as an operator would."""
    leader, follower = pty.openpty()
    process = subprocess.Popen([sys.executable, "manage.py", *args], cwd=ROOT, env=env, stdin=subprocess.DEVNULL,
                               stdout=follower, stderr=follower)
    os.close(follower)
    chunks = []
    while True:
        try:
            data = os.read(leader, 65536)
        except OSError:  # EIO: the other end is closed
            break
        if not data:
            break
        chunks.append(data)
    os.close(leader)
    assert process.wait(timeout=300) == 0, b"".join(chunks).decode(errors="replace")
    return b"".join(chunks).decode(errors="replace")


def test_prune_progress_bar_stays_on_one_line_on_the_embedded_defaults(tmp_path):
    env = embedded_env(tmp_path)
    assert manage(env, "migrate", "--noinput", capture_output=True).returncode == 0
    seeded = manage(env, "seed_demo", "--threads", "30", "--messages", "2", capture_output=True)
    account = re.search(r"Made account ([0-9a-f-]{36})", seeded.stdout).group(1)

    out = in_a_terminal(env, "prune_threads", "--account", account, "--yes", "--batch-size", "5")

    assert "celery" not in out and "kombu" not in out, out
    # The bar redraws itself with carriage returns on one line, between the plan and the
    # summary; after them, the operation's single log line with its six batches' totals.
    lines = [line for line in re.split(r"\r?\n", out) if line.strip()]
    plan = [i for i, line in enumerate(lines) if "30 threads match" in line]
    summary = [i for i, line in enumerate(lines) if "Pruned 30 of 30" in line]
    assert plan and summary and summary[0] - plan[0] <= 2, out
    logged = [line for line in lines if " INFO threadkeeper " in line]
    assert len(logged) == 1, out
    assert "prune_threads by process" in logged[0] and "via command:prune_threads" in logged[0]
    assert "30 threads" in logged[0], logged[0]


SCRIPT = """
import django; django.setup()
from django.core.management import call_command
from rest_framework.test import APIClient
from projects import services as p
from threads.services import create_thread
call_command("migrate", "--noinput", verbosity=0)
owner = p.ensure_user(username="olga", password="pw-1234")
account = p.create_account(name="Acme", owner=owner)
project = p.create_project(account=account, name="P")
thread = create_thread(project=project, created_by=owner, title="t")
import sys; print("=== requests", file=sys.stderr, flush=True)
client = APIClient(); client.force_authenticate(owner)
assert client.delete(f"/api/threads/{thread.pk}", HTTP_X_REQUEST_ID="req-delete-1").status_code == 200
assert client.get("/api/threads/not-there/nowhere", HTTP_X_REQUEST_ID="req-missing-2").status_code == 404
assert client.get("/api/threads", HTTP_X_REQUEST_ID="bad id with spaces").status_code == 200
"""


def test_json_logs_one_line_per_event_with_the_request_id(tmp_path):
    (tmp_path / "static").mkdir()
    env = embedded_env(tmp_path, LOG_FORMAT="json", ALLOWED_HOSTS="testserver", SECURE_SSL_REDIRECT="0",
                       STATIC_ROOT=str(tmp_path / "static"))
    done = subprocess.run([sys.executable, "-c", SCRIPT], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr
    lines = done.stderr.split("=== requests\n", 1)[1].splitlines()
    events = [json.loads(line) for line in lines]  # every line is one JSON object

    deleting = [e for e in events if e["request_id"] == "req-delete-1"]
    assert [e["logger"] for e in deleting] == ["threadkeeper", "threadkeeper.request"], deleting
    operation, request = deleting
    assert operation["operation"] == "thread_delete"
    assert operation["source"] == "api"
    assert re.fullmatch(r"user:\d+:olga", operation["actor"])
    assert operation["counts"]["threads"] == 1 and operation["counts"]["projects"] == 1
    assert request["status"] == 200 and request["method"] == "DELETE"

    missing = [e for e in events if e["request_id"] == "req-missing-2"]
    assert len(missing) == 1 and missing[0]["status"] == 404, missing  # no second "Not Found" line
    # A header that is not a plain token is replaced by a fresh id.
    assert all(e["request_id"] != "bad id with spaces" for e in events)
    assert len(events) == 4, events


def test_a_prune_commands_counts_reach_the_metrics_of_the_machine(tmp_path):
    """With the stack's PROMETHEUS_MULTIPROC_DIR exported (docs/operations.md), what
    `prune_threads` removed is in what `/metrics` serves from another process; the
    command's own process is gone by then."""
    env = embedded_env(tmp_path)
    assert manage(env, "migrate", "--noinput", capture_output=True).returncode == 0
    seeded = manage(env, "seed_demo", "--threads", "12", "--messages", "3", capture_output=True)
    account = re.search(r"Made account ([0-9a-f-]{36})", seeded.stdout).group(1)
    (tmp_path / "prometheus").mkdir()
    metered = {**env, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "prometheus")}

    done = manage(metered, "prune_threads", "--account", account, "--yes", "--batch-size", "5", capture_output=True)
    assert done.returncode == 0, done.stdout + done.stderr
    scraped = manage(metered, "shell", "-c", "from config.metrics import render; print(render()[0].decode())",
                     capture_output=True)
    assert scraped.returncode == 0, scraped.stderr

    def sample(name, label):
        found = re.search(rf'^{name}\{{{label}\}} (\S+)$', scraped.stdout, re.MULTILINE)
        return float(found.group(1)) if found else None

    assert sample("threadkeeper_deleted_total", 'kind="threads"') == 12, scraped.stdout
    assert sample("threadkeeper_deleted_total", 'kind="messages"') == 36, scraped.stdout
    assert sample("threadkeeper_destructive_operations_total", 'operation="prune_delete"') == 3, scraped.stdout
    assert sample("threadkeeper_prune_batch_duration_seconds_count", 'strategy="delete"') == 3, scraped.stdout
