"""The whole deletion path through a real Celery worker against Redis: the delete
answers at once, the worker retries the provider with backoff, the reconciler
(also run by the worker) finishes once the provider recovers."""

import pytest

from projects.models import Project
from receipts.models import DeletionReceipt
from sandboxes.models import Sandbox, SandboxState
from sandboxes.services import provision_sandbox
from sandboxes.tasks import reconcile_sandboxes
from tests.conftest import wait_for
from tests.fake_sandbox_provider import fake_provider, use_http_provider  # noqa: F401
from threads.models import Embedding, Message
from threads.services import create_thread
from threads.vectorstore import schedule_message_indexing

pytestmark = [pytest.mark.worker, pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def worker_settings(monkeypatch, settings, fake_provider):  # noqa: F811
    """For the worker process (it reads the environment): fast backoff, 2 retries."""
    use_http_provider(settings, fake_provider)
    monkeypatch.setenv("SANDBOX_API_TIMEOUT", "0.5")
    monkeypatch.setenv("SANDBOX_RETRY_BACKOFF", "1")
    monkeypatch.setenv("SANDBOX_DELETE_MAX_RETRIES", "2")
    monkeypatch.setenv("SANDBOX_RECONCILE_MIN_AGE", "0")


def test_worker_retries_then_reconciles_a_sandbox_deletion(
    worker_settings, celery_worker_process, api, project, fake_provider  # noqa: F811
):
    sandbox, _ = provision_sandbox(project=project)
    assert wait_for(lambda: Sandbox.objects.get(pk=sandbox.pk).state == SandboxState.READY)
    thread = create_thread(project=project)
    message = Message.objects.create(thread=thread, seq=1, role="user", content=[{"type": "text", "text": "hello"}])
    schedule_message_indexing(message_ids=[message.pk])  # autocommit: sent at once
    assert wait_for(lambda: Embedding.objects.filter(thread_id=thread.pk).exists())

    fake_provider.fail_with = 500
    response = api.delete(f"/api/threads/{thread.pk}")

    assert response.status_code == 200
    assert not Project.objects.filter(pk=project.pk).exists()
    assert Sandbox.objects.get(pk=sandbox.pk).state == SandboxState.PENDING_DELETION
    assert wait_for(lambda: not Embedding.objects.filter(thread_id=thread.pk).exists())
    # 1 attempt + 2 retries (after 1 s and 2 s), each recorded on the row.
    assert wait_for(lambda: Sandbox.objects.get(pk=sandbox.pk).attempts == 3, timeout=30)
    assert fake_provider.calls_to("DELETE") == 3
    assert "500" in Sandbox.objects.get(pk=sandbox.pk).last_error
    receipt = DeletionReceipt.objects.get()  # the deletion's receipt waits for the provider
    assert receipt.cleanup_state == "pending" and "500" in receipt.cleanup_error
    assert receipt.embeddings_removed_at is not None

    fake_provider.fail_with = None
    reconcile_sandboxes.delay()
    assert wait_for(lambda: Sandbox.objects.get(pk=sandbox.pk).state == SandboxState.DELETED)
    assert not fake_provider.sandboxes
    assert not Sandbox.objects.filter(state=SandboxState.PENDING_DELETION).exists()
    assert wait_for(lambda: DeletionReceipt.objects.get().cleanup_state == "complete")  # confirmed: complete
