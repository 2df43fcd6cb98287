"""Nothing is lost when the broker is down, and no request waits on the provider.

- A message posted while the broker is down is recorded in the indexing outbox in
  the request's transaction; once the broker is back, the beat task indexes it and
  search finds it.
- A sandbox provisioned while the broker is down stays `creating` until the
  reconciler creates it at the provider.
- With tasks in-process (the embedded defaults), deleting a project's last thread
  while the HTTP provider times out makes one provider attempt inside the request,
  then leaves the sandbox to the reconciler.

The broker outage is real: Celery publishes to a Redis port nobody listens on.
"""

import pytest

from config.celery import app
from sandboxes.models import Sandbox, SandboxState
from sandboxes.services import provision_sandbox, reconcile_sandbox_creation, reconcile_sandboxes
from tests.fake_sandbox_provider import fake_provider, use_http_provider  # noqa: F401
from threads.models import Embedding, PendingIndex
from threads.services import create_thread

pytestmark = pytest.mark.django_db


def test_a_message_posted_during_a_broker_outage_is_indexed_later(
    api, project, owner, broker_down, django_capture_on_commit_callbacks
):
    thread = create_thread(project=project, created_by=owner)
    body = {"role": "user", "content": [{"type": "text", "text": "platypus migration notes"}]}
    with django_capture_on_commit_callbacks(execute=True):
        response = api.post(f"/api/threads/{thread.pk}/messages", body, format="json")
    assert response.status_code == 201  # the outage never fails the write
    message_id = response.json()["message_id"]
    assert PendingIndex.objects.filter(message_id=message_id).exists()
    assert not Embedding.objects.filter(message_id=message_id).exists()
    assert api.get("/api/threads/search?q=platypus").json()["results"] == []

    broker_down()  # the broker is back; the beat task runs
    from threads.tasks import reindex_pending_messages

    app.conf.task_always_eager = True
    assert reindex_pending_messages.delay().get() == 0  # too recent for the reconciler yet
    from threads.vectorstore import reindex_pending_messages as reindex

    assert reindex(min_age_seconds=0) == 1
    assert not PendingIndex.objects.exists()
    results = api.get("/api/threads/search?q=platypus").json()["results"]
    assert [r["thread"]["thread_id"] for r in results] == [str(thread.pk)]
    assert reindex(min_age_seconds=0) == 0  # drained


def test_the_task_drains_the_outbox_when_the_broker_is_up(api, project, owner, django_capture_on_commit_callbacks):
    thread = create_thread(project=project, created_by=owner)
    body = {"role": "user", "content": [{"type": "text", "text": "wombat"}]}
    with django_capture_on_commit_callbacks(execute=True):
        message_id = api.post(f"/api/threads/{thread.pk}/messages", body, format="json").json()["message_id"]
    assert Embedding.objects.filter(message_id=message_id).exists()
    assert not PendingIndex.objects.exists()


def test_deleting_a_thread_takes_its_pending_index_rows(api, project, owner, broker_down,
                                                        django_capture_on_commit_callbacks):
    keep = create_thread(project=project, created_by=owner)
    thread = create_thread(project=project, created_by=owner)
    body = {"role": "user", "content": [{"type": "text", "text": "lost"}]}
    with django_capture_on_commit_callbacks(execute=True):
        api.post(f"/api/threads/{thread.pk}/messages", body, format="json")
    broker_down()
    with django_capture_on_commit_callbacks(execute=True):
        assert api.delete(f"/api/threads/{thread.pk}").status_code == 200
    assert not PendingIndex.objects.exists()
    assert keep.pk


def test_a_sandbox_provisioned_during_a_broker_outage_is_created_by_the_reconciler(
    api, project, broker_down, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        response = api.post(f"/api/projects/{project.pk}/sandbox")
    assert response.status_code == 201 and response.json()["state"] == "creating"
    broker_down()
    assert reconcile_sandbox_creation(min_age_seconds=3600) == 0  # not stuck long enough yet
    assert reconcile_sandbox_creation(min_age_seconds=0) == 1
    sandbox = Sandbox.objects.get(project=project)
    assert sandbox.state == SandboxState.READY and sandbox.external_id
    assert reconcile_sandbox_creation(min_age_seconds=0) == 0
    assert api.get(f"/api/projects/{project.pk}/sandbox").json()["state"] == "ready"


def test_in_process_a_provider_outage_costs_one_attempt_in_the_request(
    api, project, settings, fake_provider, django_capture_on_commit_callbacks  # noqa: F811
):
    use_http_provider(settings, fake_provider, timeout=0.5)
    with django_capture_on_commit_callbacks(execute=True):
        provision_sandbox(project=project)
    sandbox = Sandbox.objects.get(project=project)
    assert sandbox.state == SandboxState.READY
    thread = create_thread(project=project)
    fake_provider.delay = 2.0  # every call times out

    with django_capture_on_commit_callbacks(execute=True):
        response = api.delete(f"/api/threads/{thread.pk}")

    assert response.status_code == 200
    sandbox.refresh_from_db()
    assert (sandbox.state, sandbox.attempts) == (SandboxState.PENDING_DELETION, 1)
    assert fake_provider.calls_to("DELETE") == 1
    # one bounded attempt (SANDBOX_API_TIMEOUT), not Celery's retries back-to-back

    fake_provider.delay = 0.0
    assert reconcile_sandboxes(min_age_seconds=0)["deleted"] == 1
    sandbox.refresh_from_db()
    assert sandbox.state == SandboxState.DELETED

