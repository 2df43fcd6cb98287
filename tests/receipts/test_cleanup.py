"""The receipt is the outbox of a deletion's outside cleanup: `complete` only once the
embeddings are removed and the provider confirmed the sandboxes deleted; a broker or
provider outage leaves it `pending` with the error, and the reconciler finishes it."""

import logging
from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import call_command
from django.db import transaction
from django.utils import timezone

import config.tasks
from config.tasks import publisher, send_now
from receipts import tasks
from receipts.models import DeletionReceipt
from receipts.services import reconcile_deletions
from sandboxes.models import SandboxState
from sandboxes.services import provision_sandbox, reconcile_sandboxes
from tests.conftest import DEAD_BROKER, switch_broker, wait_for
from tests.fake_sandbox_provider import fake_provider, use_http_provider  # noqa: F401
from tests.langgraph.test_sdk_threads import sdk_client
from threads import services
from threads.models import Embedding
from threads.tasks import index_messages

pytestmark = pytest.mark.django_db



def say(thread, text="apples and pears"):
    return services.post_message(thread=thread, role="user", content=[{"type": "text", "text": text}])


@pytest.fixture
def http_sandbox(project, settings, fake_provider, django_capture_on_commit_callbacks):  # noqa: F811
    use_http_provider(settings, fake_provider)
    with django_capture_on_commit_callbacks(execute=True):
        sandbox, _ = provision_sandbox(project=project)
    sandbox.refresh_from_db()
    assert sandbox.state == SandboxState.READY
    return sandbox


def delete_last_thread(api, project, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        thread = services.create_thread(project=project)
        say(thread)
    assert Embedding.objects.filter(thread_id=thread.pk).exists()
    with django_capture_on_commit_callbacks(execute=True):
        assert api.delete(f"/api/threads/{thread.pk}").status_code == 200
    return thread


def test_complete_only_after_the_provider_confirms_failing_healed_reconciled(
    api, project, http_sandbox, fake_provider, settings, caplog, django_capture_on_commit_callbacks  # noqa: F811
):
    fake_provider.fail_with = 503
    with caplog.at_level(logging.WARNING):
        thread = delete_last_thread(api, project, django_capture_on_commit_callbacks)

    receipt = DeletionReceipt.objects.get()
    assert (receipt.cleanup_state, receipt.projects, receipt.sandboxes) == ("pending", 1, 1)
    assert receipt.cleanup_attempts == 1  # in-process: one attempt, the request never waits on the provider
    assert fake_provider.calls_to("DELETE") == 1
    assert str(http_sandbox.pk) in receipt.cleanup_error and "503" in receipt.cleanup_error
    assert receipt.embeddings_removed_at is not None and receipt.embeddings == 1  # the embeddings went
    assert not Embedding.objects.filter(thread_id=thread.pk).exists()
    assert receipt.completed_at is None
    assert str(receipt.pk) in caplog.text

    fake_provider.fail_with = None  # healed: nothing changes until someone retries
    assert reconcile_deletions(min_age_seconds=3600) == {"complete": 0, "pending": 0}  # attempted recently
    receipt.refresh_from_db()
    assert receipt.cleanup_state == "pending"

    out = StringIO()
    call_command("reconcile_deletions", "--min-age", "0", stdout=out)
    assert "1 complete, 0 still pending" in out.getvalue()
    receipt.refresh_from_db()
    http_sandbox.refresh_from_db()
    assert http_sandbox.state == SandboxState.DELETED
    assert http_sandbox.external_id not in fake_provider.sandboxes
    assert (receipt.cleanup_state, receipt.cleanup_error) == ("complete", "")
    assert receipt.completed_at is not None


def test_the_sandbox_reconciler_completes_the_receipt_too(
    api, project, http_sandbox, fake_provider, django_capture_on_commit_callbacks  # noqa: F811
):
    fake_provider.fail_with = 500
    delete_last_thread(api, project, django_capture_on_commit_callbacks)
    assert DeletionReceipt.objects.get().cleanup_state == "pending"

    fake_provider.fail_with = None
    assert reconcile_sandboxes(min_age_seconds=0)["deleted"] == 1
    receipt = DeletionReceipt.objects.get()
    assert (receipt.cleanup_state, receipt.cleanup_error) == ("complete", "")


def test_one_task_for_all_the_cleanup_of_a_delete(api, project, http_sandbox, django_capture_on_commit_callbacks):
    thread = services.create_thread(project=project)
    services.create_thread(project=project, parent_thread=thread)
    with django_capture_on_commit_callbacks() as callbacks:
        assert api.delete(f"/api/threads/{thread.pk}").status_code == 200
    # the cache update (in-process) and one cleanup task: embeddings of both threads,
    # the project's, and its sandbox (plus the in-process log line and metrics of the
    # destructive operation, config.observability)
    callbacks = [c for c in callbacks if getattr(c, "__module__", "") != "config.observability"]
    names = [c.args[0].name if getattr(c, "func", None) is send_now else None for c in callbacks]
    assert names.count(tasks.clean_up_deletions.name) == 1 and len(callbacks) == 2, (names, callbacks)


class StandInTask:
    """Celery's side of publishing (the broker is not ours): records what is sent."""

    def __init__(self, name, batch_kwarg=None):
        self.name, self.batch_kwarg, self.sent = name, batch_kwarg, []

    def apply_async(self, args, kwargs):
        self.sent.append((args, kwargs))
        log.append(self.name)


log: list = []


def test_calls_of_a_batched_task_handed_over_together_are_sent_as_one(monkeypatch):
    """The publisher thread holds a task with `batch_kwarg` for its window and sends the
    ids of every call meanwhile in one task (each id once, in order; at most
    BATCH_MAX per task); a task without it is sent at once, not held behind them;
    `flush` cuts the window short."""
    monkeypatch.setattr(config.tasks, "BATCH_WINDOW", 60.0)
    monkeypatch.setattr(config.tasks, "BATCH_MAX", 3)
    log.clear()
    cleanup, other, run = StandInTask("cleanup", "receipt_ids"), StandInTask("index", "message_ids"), StandInTask("run")
    publisher = config.tasks.Publisher()
    publisher.put(cleanup, (), {"receipt_ids": ["a", "b"]})
    publisher.put(other, (), {"message_ids": ["m"]})
    publisher.put(cleanup, (), {"receipt_ids": ["b", "c"]})
    publisher.put(run, ("r1",), {})
    publisher.put(cleanup, (), {"receipt_ids": ["d", "e"]})
    assert publisher.flush(timeout=10)  # not the window's 60 s
    assert log[0] == "run"  # not held behind the window
    assert cleanup.sent == [((), {"receipt_ids": ["a", "b", "c"]}), ((), {"receipt_ids": ["d", "e"]})]
    assert other.sent == [((), {"message_ids": ["m"]})] and run.sent == [(("r1",), {})]

    publisher.put(cleanup, ("positional",), {})  # not the batch's shape: sent as it is
    assert publisher.flush() and cleanup.sent[-1] == (("positional",), {})


@pytest.mark.worker
def test_deletes_in_a_burst_are_cleaned_up_by_one_task_on_a_real_worker(celery_worker_process, live_server, owner,
                                                                       project, monkeypatch):
    """PostgreSQL, Redis and a worker; the unmodified langgraph-sdk against the live
    server: five deletes within the publisher's window go to the worker as one cleanup
    task, which completes all five receipts (and six messages posted in one
    transaction were indexed by one task)."""
    monkeypatch.setattr(config.tasks, "BATCH_WINDOW", 3.0)  # the five deletes fit in it on a loaded machine
    threads = [services.create_thread(project=project) for _ in range(6)]  # one stays: the project too
    with transaction.atomic():
        for thread in threads:
            say(thread, f"burst {thread.pk}")
    assert wait_for(lambda: Embedding.objects.filter(thread_id__in=[t.pk for t in threads]).count() == 6, timeout=30)

    client = sdk_client(live_server, owner)
    for thread in threads[:5]:
        client.threads.delete(str(thread.pk))
    assert wait_for(lambda: DeletionReceipt.objects.filter(cleanup_state="complete").count() == 5, timeout=30)
    assert not Embedding.objects.filter(thread_id__in=[t.pk for t in threads[:5]]).exists()
    assert Embedding.objects.filter(thread_id=threads[5].pk).exists()
    from config.celery import app

    (stats,) = (app.control.inspect(timeout=5).stats() or {"none": {}}).values()
    total = stats.get("total", {})
    assert (total.get(tasks.clean_up_deletions.name), total.get(index_messages.name)) == (1, 1), total


def test_a_provider_that_never_heals_keeps_the_receipt_pending(
    api, project, http_sandbox, fake_provider, django_capture_on_commit_callbacks  # noqa: F811
):
    fake_provider.fail_with = 500
    delete_last_thread(api, project, django_capture_on_commit_callbacks)
    assert reconcile_deletions(min_age_seconds=0) == {"complete": 0, "pending": 1}
    receipt = DeletionReceipt.objects.get()
    assert receipt.cleanup_state == "pending" and "500" in receipt.cleanup_error


# --- the broker down: the receipt is the outbox ------------------------------------------


def embeddings_counted(client) -> float:
    """`threadkeeper_deleted_total{kind="embeddings"}` as `/metrics` serves it."""
    import re

    found = re.search(r'^threadkeeper_deleted_total\{kind="embeddings"\} (\S+)$',
                      client.get("/metrics").content.decode(), re.M)
    return float(found.group(1)) if found else 0.0


def test_broker_down_then_up_the_reconciler_removes_the_embeddings(
    api, client, project, broker_down, caplog, django_capture_on_commit_callbacks
):

    keep, drop = services.create_thread(project=project), services.create_thread(project=project)
    with transaction.atomic():
        ids = [say(keep, "kept apples").pk, say(drop, "dropped apples").pk]
    index_messages.apply(kwargs={"message_ids": [str(i) for i in ids]})  # indexed before the outage
    assert Embedding.objects.filter(thread_id=drop.pk).exists()

    with caplog.at_level(logging.WARNING), django_capture_on_commit_callbacks(execute=True):
        assert api.delete(f"/api/threads/{drop.pk}").status_code == 200
    with caplog.at_level(logging.WARNING):
        assert publisher.flush()  # the publisher thread met the dead broker
    receipt = DeletionReceipt.objects.get()
    assert receipt.cleanup_state == "pending" and receipt.cleanup_attempts == 0  # the task never left
    assert Embedding.objects.filter(thread_id=drop.pk).exists()
    assert f"Task {tasks.clean_up_deletions.name} not sent" in caplog.text, [r.getMessage() for r in caplog.records]

    broker_down()  # the broker is back; the beat task runs (here, in-process)
    assert tasks.reconcile_deletions.apply().get() == {"complete": 0, "pending": 0}  # too young yet
    DeletionReceipt.objects.update(created_at=timezone.now() - timedelta(hours=1))
    before = embeddings_counted(client)
    assert tasks.reconcile_deletions.apply().get() == {"complete": 1, "pending": 0}
    receipt.refresh_from_db()
    assert (receipt.cleanup_state, receipt.embeddings) == ("complete", 1)
    assert embeddings_counted(client) == before + 1  # /metrics counts them when removed
    assert not Embedding.objects.filter(thread_id=drop.pk).exists()
    assert Embedding.objects.filter(thread_id=keep.pk).exists()


@pytest.mark.worker
def test_broker_down_then_up_with_a_real_worker(celery_worker_process, api, project):
    """PostgreSQL, Redis and a worker: a delete during the outage leaves a pending
    receipt; once the broker is back, the beat task sent to the worker finishes it."""
    thread = services.create_thread(project=project)
    with transaction.atomic():
        say(thread, "remember the outage")
    assert wait_for(lambda: Embedding.objects.filter(thread_id=thread.pk).exists(), timeout=30)

    switch_broker(DEAD_BROKER)
    try:
        assert api.delete(f"/api/threads/{thread.pk}").status_code == 200  # commits; the task is lost
    finally:
        switch_broker(None)
    receipt = DeletionReceipt.objects.get()
    assert receipt.cleanup_state == "pending" and receipt.cleanup_attempts == 0
    assert Embedding.objects.filter(thread_id=thread.pk).exists()

    DeletionReceipt.objects.update(created_at=timezone.now() - timedelta(hours=1))
    tasks.reconcile_deletions.delay()  # what beat sends
    assert wait_for(lambda: DeletionReceipt.objects.get().cleanup_state == "complete", timeout=30)
    assert not Embedding.objects.filter(thread_id=thread.pk).exists()
    assert DeletionReceipt.objects.get().embeddings == 1


def test_the_task_gives_up_to_the_reconciler_with_a_warning_not_a_task_error(
    api, project, http_sandbox, fake_provider, caplog, django_capture_on_commit_callbacks  # noqa: F811
):
    """On a worker, the last retry of a cleanup the provider keeps refusing is an
    expected outage: a warning, and the receipt left pending to the reconciler (it
    raised, which Celery logs as an unexpected task error with a traceback)."""
    fake_provider.fail_with = 500
    delete_last_thread(api, project, django_capture_on_commit_callbacks)
    receipt = DeletionReceipt.objects.get()
    task = tasks.clean_up_deletions
    task.push_request(retries=task.max_retries, is_eager=False, called_directly=False)
    try:
        with caplog.at_level(logging.WARNING, logger="receipts.tasks"):
            assert task.run(receipt_ids=[str(receipt.pk)]) == {"complete": 0, "pending": 1}
    finally:
        task.pop_request()
    assert "left to the reconciler" in caplog.text
    receipt.refresh_from_db()
    assert receipt.cleanup_state == "pending" and "500" in receipt.cleanup_error

    fake_provider.fail_with = None
    assert reconcile_deletions(min_age_seconds=0) == {"complete": 1, "pending": 0}
