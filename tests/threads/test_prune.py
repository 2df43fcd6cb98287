"""Pruning threads: the endpoint, the command and the TTL sweeper."""

import io
import os
import subprocess
import sys
import threading
import uuid
from datetime import timedelta
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command
from django.db import connection
from django.utils import timezone

from projects.models import Project, Role
from projects.services import create_project
from sandboxes.models import Sandbox
from tests.conftest import client_for
from threads import services
from threads.models import Checkpoint, CheckpointWrite, Message, Run, Thread
from threads.selectors import deletion_impact

pytestmark = pytest.mark.django_db
ROOT = Path(__file__).resolve().parents[2]


def make_threads(project, n, *, messages=0, checkpoints=0, **kw):
    threads = [Thread(account_id=project.account_id, project=project, **kw) for _ in range(n)]
    Thread.objects.bulk_create(threads)
    Message.objects.bulk_create(Message(thread=t, seq=i + 1, role="user", content=[]) for t in threads for i in range(messages))
    Checkpoint.objects.bulk_create(
        Checkpoint(thread=t, checkpoint_id=f"c{i}", parent_checkpoint_id=f"c{i - 1}" if i else None)
        for t in threads for i in range(checkpoints)
    )
    return threads


def prune(client, ids, strategy=None):
    body = {"thread_ids": [str(i) for i in ids]}
    if strategy:
        body["strategy"] = strategy
    return client.post("/api/threads/prune", body, format="json")


# --- the endpoint -----------------------------------------------------------------------


def test_delete_counts_only_what_was_pruned(api, project, other_account, account, member_of):
    mine = make_threads(project, 3, messages=2)
    foreign = make_threads(create_project(account=other_account, name="x"), 1)[0]
    ids = [mine[0].pk, mine[0].pk, mine[1].pk, uuid.uuid4(), foreign.pk]
    r = prune(api, ids)
    assert r.status_code == 200 and r.json() == {"pruned_count": 2}
    assert list(Thread.objects.filter(project=project).values_list("pk", flat=True)) == [mine[2].pk]
    assert Thread.objects.filter(pk=foreign.pk).exists()
    viewer = client_for(member_of(account, Role.VIEWER))
    assert prune(viewer, [mine[2].pk]).json() == {"pruned_count": 0}
    assert Thread.objects.filter(pk=mine[2].pk).exists()
    assert prune(api, []).json() == {"pruned_count": 0}


@pytest.mark.parametrize("body", [
    {"thread_ids": ["not-a-uuid"]},
    {"thread_ids": [str(uuid.uuid4())], "strategy": "shred"},
    {"strategy": "delete"},
    {"thread_ids": "abc"},
    {"thread_ids": [str(uuid.uuid4()) for _ in range(1001)]},
])
def test_bad_prune_requests_are_422(api, body):
    r = api.post("/api/threads/prune", body, format="json")
    assert r.status_code == 422 and isinstance(r.json()["detail"], str)


def test_prune_needs_a_token(anon):
    assert anon.post("/api/threads/prune", {"thread_ids": []}, format="json").status_code == 401


def test_keep_latest_leaves_the_newest_checkpoint_per_namespace_as_a_root(api, project):
    thread, busy, clean = make_threads(project, 3)
    for ns in ("", "inner", "deep"):
        parent = None
        for i in range(4):
            cp = Checkpoint.objects.create(thread=thread, checkpoint_ns=ns, checkpoint_id=f"{ns}-{i}",
                                           parent_checkpoint_id=parent)
            CheckpointWrite.objects.create(checkpoint=cp, task_id="t", idx=0, channel="c")
            parent = cp.checkpoint_id
    Checkpoint.objects.create(thread=busy, checkpoint_id="a")
    Checkpoint.objects.create(thread=busy, checkpoint_id="b", parent_checkpoint_id="a")
    Run.objects.create(thread=busy, seq=1, status="running")
    Checkpoint.objects.create(thread=clean, checkpoint_id="only")
    r = prune(api, [thread.pk, busy.pk, clean.pk], "keep_latest")
    assert r.json() == {"pruned_count": 1}
    left = list(Checkpoint.objects.filter(thread=thread).order_by("checkpoint_ns").values_list(
        "checkpoint_ns", "checkpoint_id", "parent_checkpoint_id"))
    assert left == [("", "-3", None), ("deep", "deep-3", None), ("inner", "inner-3", None)]
    assert CheckpointWrite.objects.filter(checkpoint__thread=thread).count() == 3  # the newest ones' writes
    assert Checkpoint.objects.filter(thread=busy).count() == 2  # active run: skipped
    assert Thread.objects.count() == 3


def test_pruning_the_last_thread_of_a_project_cleans_it_up_like_delete(api, project, django_capture_on_commit_callbacks):
    sandbox = Sandbox.objects.create(project=project, account=project.account, provider="local", state="ready")
    threads = make_threads(project, 2)
    with django_capture_on_commit_callbacks(execute=True):
        assert prune(api, [t.pk for t in threads]).json() == {"pruned_count": 2}
    assert not Project.objects.filter(pk=project.pk).exists()
    sandbox.refresh_from_db()
    assert sandbox.project_id is None and sandbox.state == "deleted"


def test_delete_query_count_does_not_grow_with_the_batch(project, django_assert_max_num_queries):
    from django.test.utils import CaptureQueriesContext

    make_threads(project, 1)  # keeps the project alive between the batches
    small = make_threads(project, 5, messages=1, checkpoints=1)
    with CaptureQueriesContext(connection) as five:
        assert services.prune_batch(thread_ids=[t.pk for t in small], strategy="delete") == 5
    five_count = len(five.captured_queries)  # now: the query log is a bounded deque
    big = make_threads(project, 500, messages=1, checkpoints=1)
    with django_assert_max_num_queries(five_count + 2):
        assert services.prune_batch(thread_ids=[t.pk for t in big], strategy="delete") == 500
    keep = make_threads(project, 500, checkpoints=3)
    with django_assert_max_num_queries(6):
        assert services.prune_batch(thread_ids=[t.pk for t in keep], strategy="keep_latest") == 500


def test_deletion_impact_counts_without_listing(project, account):
    other = create_project(account=account, name="other")
    Sandbox.objects.create(project=project, account=account, provider="local", state="ready")
    a, b = make_threads(project, 2, messages=3, checkpoints=2)
    child = Thread.objects.create(account=account, project=project, parent_thread=a)
    Message.objects.create(thread=child, seq=1, role="user")
    make_threads(other, 1)
    impact = deletion_impact(thread_ids_queryset=Thread.objects.filter(pk__in=[a.pk, b.pk]))
    assert impact == {"threads": 3, "messages": 7, "runs": 0, "checkpoints": 4, "projects": 1, "sandboxes": 1}
    impact = deletion_impact(thread_ids_queryset=Thread.objects.filter(pk=a.pk))
    assert impact["projects"] == 0 and impact["threads"] == 2


# --- the command ------------------------------------------------------------------------


def test_command_dry_run_changes_nothing(project):
    make_threads(project, 3, messages=2)
    out = io.StringIO()
    call_command("prune_threads", "--project", str(project.pk), "--dry-run", stdout=out)
    assert "3 threads match" in out.getvalue() and "6 messages" in out.getvalue()
    assert Thread.objects.count() == 3 and Message.objects.count() == 6


def test_command_older_than_prunes_only_old_threads(project):
    old = make_threads(project, 4)
    new = make_threads(project, 2)
    Thread.objects.filter(pk__in=[t.pk for t in old]).update(last_activity_at=timezone.now() - timedelta(days=31))
    out = io.StringIO()
    call_command("prune_threads", "--older-than", "30d", "--yes", "--batch-size", "3", stdout=out)
    assert set(Thread.objects.values_list("pk", flat=True)) == {t.pk for t in new}
    assert "Pruned 4 of 4" in out.getvalue()


def test_command_filters_ids_file_and_errors(project, tmp_path):
    threads = make_threads(project, 3, checkpoints=3)
    ids_file = tmp_path / "ids.txt"
    ids_file.write_text(f"{threads[0].pk}\n\n{threads[1].pk}\n")
    call_command("prune_threads", "--ids-file", str(ids_file), "--strategy", "keep_latest", "--yes", stdout=io.StringIO())
    assert Checkpoint.objects.filter(thread=threads[0]).count() == 1
    assert Checkpoint.objects.filter(thread=threads[2]).count() == 3
    with pytest.raises(CommandError):
        call_command("prune_threads", "--older-than", "soon", "--yes")
    with pytest.raises(CommandError):
        call_command("prune_threads", "--yes")  # no filter at all
    with pytest.raises(CommandError):
        call_command("prune_threads", "--account", "nope", "--yes")
    with pytest.raises(CommandError):  # no terminal to confirm on and no --yes
        call_command("prune_threads", "--project", str(project.pk), stdout=io.StringIO())


def test_command_interrupted_between_batches_leaves_whole_batches(project, monkeypatch):
    """Ctrl-C arrives while the second batch runs: that batch rolls back whole."""
    from threads.management.commands import prune_threads as command

    threads = make_threads(project, 6, messages=2)
    real, calls = command.prune_batch, {"n": 0}

    def interrupted(**kw):
        calls["n"] += 1
        if calls["n"] == 2:
            from django.db import transaction

            with transaction.atomic():
                real(**kw)
                raise KeyboardInterrupt
        return real(**kw)

    monkeypatch.setattr(command, "prune_batch", interrupted)
    with pytest.raises(SystemExit) as exit_:
        call_command("prune_threads", "--project", str(project.pk), "--yes", "--batch-size", "2",
                     stdout=io.StringIO(), stderr=io.StringIO())
    assert exit_.value.code == 130
    left = set(Thread.objects.values_list("pk", flat=True))
    assert left == {t.pk for t in sorted(threads, key=lambda t: t.pk)[2:]}
    assert Message.objects.filter(thread_id__in=left).count() == 8


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_command_memory_stays_flat_on_10000_threads(project):
    make_threads(project, 10_000)
    db = connection.settings_dict
    env = dict(os.environ, DATABASE_URL=f"postgres://{db['USER']}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}")
    script = (
        "import resource, django; django.setup();"
        "from django.core.management import call_command;"
        f"call_command('prune_threads', '--project', '{project.pk}', '--yes', '--batch-size', '1000');"
        "print('MAXRSS_KB', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)"
    )
    out = subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    rss_kb = int(out.stdout.split("MAXRSS_KB")[1].split()[0])
    print(f"prune_threads on 10,000 threads: max RSS {rss_kb / 1024:.0f} MB")
    assert rss_kb < 200 * 1024, rss_kb
    assert not Thread.objects.exists()


# --- TTL --------------------------------------------------------------------------------


def test_ttl_from_create_and_activity_and_sweep(api, project, owner):
    r = api.post("/api/threads", {"project_id": str(project.pk), "ttl": 60}, format="json")
    thread = Thread.objects.get(pk=r.json()["thread_id"])
    assert thread.ttl_minutes == 60 and thread.expires_at is not None
    no_ttl = services.create_thread(project=project, created_by=owner)
    assert no_ttl.expires_at is None
    before = thread.expires_at
    services.post_message(thread=thread, role="user", content=[{"type": "text", "text": "x"}])
    thread.refresh_from_db()
    assert thread.expires_at > before  # activity moves the expiry
    assert services.sweep_expired_threads(now=thread.expires_at - timedelta(seconds=1)) == 0
    assert services.sweep_expired_threads(now=thread.expires_at) == 1
    assert not Thread.objects.filter(pk=thread.pk).exists() and Thread.objects.filter(pk=no_ttl.pk).exists()


def test_ttl_sweep_skips_active_runs_and_keep_latest_rearms(project, owner, settings):
    settings.THREAD_TTL = {**settings.THREAD_TTL, "strategy": "keep_latest"}
    busy = services.create_thread(project=project, created_by=owner, ttl_minutes=5)
    services.create_run(thread=busy)
    idle = services.create_thread(project=project, created_by=owner, ttl_minutes=5)
    Checkpoint.objects.create(thread=idle, checkpoint_id="a")
    Checkpoint.objects.create(thread=idle, checkpoint_id="b", parent_checkpoint_id="a")
    later = timezone.now() + timedelta(minutes=10)
    assert services.sweep_expired_threads(now=later) == 1
    idle.refresh_from_db()
    assert idle.expires_at == later + timedelta(minutes=5)  # re-armed
    assert list(Checkpoint.objects.filter(thread=idle).values_list("checkpoint_id", "parent_checkpoint_id")) == [("b", None)]
    assert Thread.objects.filter(pk=busy.pk).exists()


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_two_sweepers_at_once_never_take_a_thread_twice(project):
    threads = make_threads(project, 200, messages=2)
    Thread.objects.update(expires_at=timezone.now() - timedelta(minutes=1))
    keep = Thread.objects.create(account=project.account, project=project)  # keeps the project alive
    results, errors, barrier = [], [], threading.Barrier(2)

    def sweep():
        try:
            barrier.wait()
            while n := services.sweep_expired_threads(limit=25):
                results.append(n)
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)
        finally:
            connection.close()

    workers = [threading.Thread(target=sweep) for _ in range(2)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    assert errors == []
    assert sum(results) == len(threads)
    assert list(Thread.objects.values_list("pk", flat=True)) == [keep.pk]
