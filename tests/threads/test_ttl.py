"""Thread TTL: when a thread expires, and the sweeper that prunes expired threads."""

import threading
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from projects.models import Project
from projects.services import create_project
from sandboxes.models import Sandbox, SandboxState
from threads import services
from threads.models import Checkpoint, Message, Run, Thread
from tests.threads.test_prune import make_threads

pytestmark = pytest.mark.django_db


def text(t):
    return [{"type": "text", "text": t}]


def expires_after_activity(thread, minutes):
    """expires_at = last activity + TTL (to the millisecond: on creation the model's
    auto_now_add stamps last_activity_at a moment after the expiry was computed)."""
    return abs(thread.expires_at - thread.last_activity_at - timedelta(minutes=minutes)) < timedelta(milliseconds=50)


# --- the expiry rule -----------------------------------------------------------------------


def test_a_thread_expires_its_ttl_after_its_last_activity(api, project, owner):
    response = api.post("/api/threads", {"project_id": str(project.pk), "ttl": 60}, format="json")
    assert response.status_code == 201 and response.json()["ttl"] == 60
    thread = Thread.objects.get(pk=response.json()["thread_id"])
    assert expires_after_activity(thread, 60)

    services.post_message(thread=thread, role="user", content=text("still here"))
    thread_after, = Thread.objects.filter(pk=thread.pk)
    assert thread_after.last_activity_at > thread.last_activity_at
    assert thread_after.expires_at == thread_after.last_activity_at + timedelta(minutes=60)

    services.create_run(thread=thread_after)  # a run starting is activity too
    moved = Thread.objects.get(pk=thread.pk)
    assert moved.last_activity_at > thread_after.last_activity_at
    assert moved.expires_at == moved.last_activity_at + timedelta(minutes=60)


def test_without_a_ttl_a_thread_never_expires_and_the_default_applies_to_new_threads(project, owner, settings):
    forever = services.create_thread(project=project, created_by=owner)
    assert forever.expires_at is None
    settings.THREAD_TTL = {**settings.THREAD_TTL, "default_ttl": 30}
    default = services.create_thread(project=project, created_by=owner)
    own = services.create_thread(project=project, created_by=owner, ttl_minutes=5)
    assert expires_after_activity(default, 30) and expires_after_activity(own, 5)
    forever.refresh_from_db()
    assert forever.expires_at is None  # the default reaches it at its next activity
    services.post_message(thread=forever, role="user", content=text("hi"))
    forever.refresh_from_db()
    assert forever.expires_at == forever.last_activity_at + timedelta(minutes=30)


def test_setting_or_clearing_the_ttl_restarts_the_clock(api, project, owner):
    thread = services.create_thread(project=project, created_by=owner)
    before = timezone.now()
    response = api.patch(f"/api/threads/{thread.pk}", {"ttl": 10}, format="json")
    assert response.status_code == 200 and response.json()["ttl"] == 10
    thread.refresh_from_db()
    assert before + timedelta(minutes=10) <= thread.expires_at <= timezone.now() + timedelta(minutes=10)
    assert api.patch(f"/api/threads/{thread.pk}", {"ttl": None}, format="json").status_code == 200
    thread.refresh_from_db()
    assert thread.expires_at is None
    assert api.patch(f"/api/threads/{thread.pk}", {"ttl": 0}, format="json").status_code == 422


# --- the sweeper ---------------------------------------------------------------------------


def test_the_sweep_deletes_expired_threads_only(project, owner):
    thread = services.create_thread(project=project, created_by=owner, ttl_minutes=60)
    forever = services.create_thread(project=project, created_by=owner)
    services.post_message(thread=thread, role="user", content=text("x"))
    thread.refresh_from_db()

    assert services.sweep_expired_threads(now=thread.expires_at - timedelta(seconds=1)) == 0
    assert services.sweep_expired_threads(now=thread.expires_at) == 1

    assert not Thread.objects.filter(pk=thread.pk).exists() and not Message.objects.exists()
    assert Thread.objects.filter(pk=forever.pk).exists()
    assert services.sweep_expired_threads(now=timezone.now() + timedelta(days=3650)) == 0


def test_the_sweep_goes_through_the_deletion_service(project, owner, django_capture_on_commit_callbacks):
    sandbox = Sandbox.objects.create(project=project, account=project.account, provider="local",
                                     state=SandboxState.READY)
    services.create_thread(project=project, created_by=owner, ttl_minutes=1)
    with django_capture_on_commit_callbacks(execute=True):
        assert services.sweep_expired_threads(now=timezone.now() + timedelta(minutes=2)) == 1
    assert not Project.objects.filter(pk=project.pk).exists()  # its last thread: the project goes too
    sandbox.refresh_from_db()
    assert sandbox.state == SandboxState.DELETED and sandbox.project_id is None


def test_the_sweep_skips_threads_with_an_active_run(project, owner):
    busy = services.create_thread(project=project, created_by=owner, ttl_minutes=5)
    Run.objects.create(thread=busy, seq=1, status="running")
    idle = services.create_thread(project=project, created_by=owner, ttl_minutes=5)
    later = timezone.now() + timedelta(minutes=10)
    assert services.sweep_expired_threads(now=later) == 1
    assert list(Thread.objects.values_list("pk", flat=True)) == [busy.pk]
    assert services.sweep_expired_threads(now=later, strategy="keep_latest") == 0
    assert not Thread.objects.filter(pk=idle.pk).exists()


def test_the_sweep_skips_a_thread_whose_sub_thread_has_an_active_run(project, owner):
    """The sub-thread's run keeps the whole tree: deleting the expired parent took the
    busy sub-thread (and its executing run) with it."""
    parent = services.create_thread(project=project, created_by=owner, ttl_minutes=5)
    child = services.create_thread(project=project, created_by=owner, parent_thread=parent)
    grandchild = services.create_thread(project=project, created_by=owner, parent_thread=child)
    Run.objects.create(thread=grandchild, seq=1, status="running")
    idle = services.create_thread(project=project, created_by=owner, ttl_minutes=5)
    later = timezone.now() + timedelta(minutes=10)

    assert services.sweep_expired_threads(now=later) == 1
    assert not Thread.objects.filter(pk=idle.pk).exists()
    assert Thread.objects.filter(pk__in=[parent.pk, child.pk, grandchild.pk]).count() == 3
    assert Run.objects.get(thread=grandchild).status == "running"

    Run.objects.filter(thread=grandchild).update(status="success")  # the run ended: the tree goes
    assert services.sweep_expired_threads(now=later) == 0  # tried again a minute on
    assert services.sweep_expired_threads(now=later + timedelta(minutes=2)) == 1
    assert not Thread.objects.filter(pk__in=[parent.pk, child.pk, grandchild.pk]).exists()


def test_busy_trees_at_the_head_of_the_queue_do_not_keep_the_sweep_from_the_rest(project, owner):
    """More busy trees than a sweep takes, expired first: each sweep tries them and
    moves them a minute on, so the next sweep reaches the threads behind them."""
    busy = []
    for _ in range(3):
        parent = services.create_thread(project=project, created_by=owner, ttl_minutes=5)
        child = services.create_thread(project=project, created_by=owner, parent_thread=parent)
        Run.objects.create(thread=child, seq=1, status="running")
        busy.append(parent)
    idle = services.create_thread(project=project, created_by=owner, ttl_minutes=6)
    later = timezone.now() + timedelta(minutes=30)
    assert services.sweep_expired_threads(now=later, limit=3) == 0  # the three busy ones, tried
    assert services.sweep_expired_threads(now=later, limit=3) == 1  # then the one behind them
    assert not Thread.objects.filter(pk=idle.pk).exists()
    assert Thread.objects.filter(pk__in=[b.pk for b in busy]).count() == 3


def test_the_sweep_takes_the_longest_expired_first_up_to_its_limit(project, settings):
    threads = make_threads(project, 5)
    now = timezone.now()
    for minutes, thread in zip((5, 1, 4, 2, 3), threads):
        Thread.objects.filter(pk=thread.pk).update(expires_at=now - timedelta(minutes=minutes))
    settings.THREAD_TTL = {**settings.THREAD_TTL, "sweep_limit": 2}
    assert services.sweep_expired_threads(now=now) == 2
    assert set(Thread.objects.values_list("pk", flat=True)) == {threads[1].pk, threads[3].pk, threads[4].pk}


def test_keep_latest_prunes_checkpoints_and_rearms_the_expiry(project, owner, settings):
    settings.THREAD_TTL = {**settings.THREAD_TTL, "strategy": "keep_latest", "default_ttl": 30}
    own = services.create_thread(project=project, created_by=owner, ttl_minutes=5)
    default = services.create_thread(project=project, created_by=owner)
    nothing_to_prune = services.create_thread(project=project, created_by=owner, ttl_minutes=5)
    for thread in (own, default):
        Checkpoint.objects.create(thread=thread, checkpoint_id="a")
        Checkpoint.objects.create(thread=thread, checkpoint_id="b", parent_checkpoint_id="a")
    later = timezone.now() + timedelta(minutes=31)

    assert services.sweep_expired_threads(now=later) == 2

    expiries = dict(Thread.objects.values_list("pk", "expires_at"))
    assert expiries == {own.pk: later + timedelta(minutes=5), default.pk: later + timedelta(minutes=30),
                        nothing_to_prune.pk: later + timedelta(minutes=5)}
    for thread in (own, default):
        assert list(Checkpoint.objects.filter(thread=thread).values_list("checkpoint_id", "parent_checkpoint_id")) == [
            ("b", None)]
    assert services.sweep_expired_threads(now=later) == 0  # re-armed: not expired any more


def test_the_beat_task_sweeps_with_the_settings(project, owner, settings):
    from threads.tasks import sweep_expired_threads

    assert settings.CELERY_BEAT_SCHEDULE["sweep-expired-threads"]["task"] == "threads.tasks.sweep_expired_threads"
    services.create_thread(project=project, created_by=owner, ttl_minutes=1)
    Thread.objects.update(expires_at=timezone.now() - timedelta(seconds=1))
    assert sweep_expired_threads.delay().get() == 1
    assert not Thread.objects.exists()


# --- concurrency (PostgreSQL) ------------------------------------------------------------------


def in_threads(*targets):
    """Run the targets at once, each in a thread with its own connection; their errors."""
    errors, barrier = [], threading.Barrier(len(targets))

    def wrap(target):
        try:
            barrier.wait()
            target()
        except Exception as exc:  # reported by the caller
            errors.append(exc)
        finally:
            connection.close()

    workers = [threading.Thread(target=wrap, args=(t,)) for t in targets]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    return errors


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("strategy", ["delete", "keep_latest"])
def test_two_sweepers_at_once_never_take_a_thread_twice(account, strategy):
    projects = [create_project(account=account, name=f"p{i}") for i in range(4)]
    threads = [t for p in projects for t in make_threads(p, 50, messages=2, checkpoints=2, ttl_minutes=60)]
    Thread.objects.update(expires_at=timezone.now() - timedelta(minutes=1))
    keepers = [make_threads(p, 1)[0] for p in projects]  # keep the projects alive
    now, counts = timezone.now(), []

    def sweeper():
        while n := services.sweep_expired_threads(now=now, limit=15, strategy=strategy):
            counts.append(n)

    assert in_threads(sweeper, sweeper) == []
    assert sum(counts) == len(threads)  # every thread pruned once: none twice, none missed
    if strategy == "delete":
        assert set(Thread.objects.values_list("pk", flat=True)) == {t.pk for t in keepers}
    else:
        assert Checkpoint.objects.count() == len(threads)
        assert not Thread.objects.filter(pk__in=[t.pk for t in threads], expires_at__lte=now).exists()


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_sweepers_and_api_deletes_at_once_never_deadlock(account):
    projects = [create_project(account=account, name=f"p{i}") for i in range(3)]
    threads = [t for p in projects for t in make_threads(p, 40, messages=1)]
    Thread.objects.update(expires_at=timezone.now() - timedelta(minutes=1))
    ids = [t.pk for t in threads]
    deleted = []

    def sweeper():
        while n := services.sweep_expired_threads(limit=10):
            deleted.append(n)

    def deleter(chunk):
        return lambda: deleted.extend(services.delete_threads(thread_ids=[pk]) for pk in chunk)

    assert in_threads(sweeper, sweeper, deleter(ids[::2]), deleter(ids[1::2][::-1])) == []
    assert sum(deleted) == len(threads) and not Thread.objects.exists()
    assert not Project.objects.filter(account=account).exists()


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_the_sweep_leaves_a_tree_whose_sub_thread_is_being_written(project, owner):
    """A sub-thread held by another transaction (a run starting on it holds its lock)
    keeps its expired parent until the next sweep; the sweep does not wait for it."""
    from django.db import transaction

    parent = services.create_thread(project=project, created_by=owner, ttl_minutes=5)
    child = services.create_thread(project=project, created_by=owner, parent_thread=parent)
    later = timezone.now() + timedelta(minutes=10)
    held, release = threading.Event(), threading.Event()

    def writer():
        with transaction.atomic():
            Thread.objects.select_for_update(no_key=True).filter(pk=child.pk).get()
            held.set()
            release.wait(10)

    def sweep():
        held.wait(10)
        try:
            assert services.sweep_expired_threads(now=later) == 0
        finally:
            release.set()

    assert in_threads(writer, sweep) == []
    assert Thread.objects.filter(pk__in=[parent.pk, child.pk]).count() == 2
    assert services.sweep_expired_threads(now=later + timedelta(minutes=2)) == 1  # tried again a minute on
    assert not Thread.objects.filter(pk__in=[parent.pk, child.pk]).exists()
