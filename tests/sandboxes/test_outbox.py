"""Sandbox deletion as an outbox: marked in the deleting transaction, deleted at the
provider after commit with retries, and reconciled until the provider confirms."""

import logging
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.db import connection

from projects.models import Project
from sandboxes.models import Sandbox, SandboxState
from sandboxes.services import provision_sandbox, reconcile_sandboxes, retry_sandbox_deletion
from tests.fake_sandbox_provider import fake_provider, use_http_provider  # noqa: F401
from threads.services import create_thread

pytestmark = pytest.mark.django_db


@pytest.fixture
def http_sandbox(project, settings, fake_provider, django_capture_on_commit_callbacks):  # noqa: F811
    use_http_provider(settings, fake_provider)
    with django_capture_on_commit_callbacks(execute=True):
        sandbox, _ = provision_sandbox(project=project)
    sandbox.refresh_from_db()
    assert sandbox.state == SandboxState.READY and sandbox.external_id in fake_provider.sandboxes
    return sandbox


@pytest.mark.parametrize("outage", ["http 500", "timeout"])
def test_a_failing_provider_never_fails_the_delete_and_the_reconciler_finishes_it(
    api, project, settings, http_sandbox, fake_provider, caplog, django_capture_on_commit_callbacks, outage  # noqa: F811
):
    thread = create_thread(project=project)
    if outage == "timeout":
        fake_provider.delay = 1.0  # the client gives up after 0.3 s
    else:
        fake_provider.fail_with = 500

    with caplog.at_level(logging.WARNING, logger="sandboxes.services"), django_capture_on_commit_callbacks(execute=True):
        response = api.delete(f"/api/threads/{thread.pk}")

    assert response.status_code == 200
    assert not Project.objects.filter(pk=project.pk).exists()
    http_sandbox.refresh_from_db()
    assert http_sandbox.state == SandboxState.PENDING_DELETION
    assert http_sandbox.attempts == 1  # in-process: one attempt, the request never waits; then the reconciler
    assert fake_provider.calls_to("DELETE") == 1
    assert http_sandbox.last_error and http_sandbox.last_attempt_at
    assert str(http_sandbox.pk) in caplog.text

    fake_provider.fail_with, fake_provider.delay = None, 0.0
    assert reconcile_sandboxes(min_age_seconds=3600)["deleted"] == 0  # tried recently: not yet
    out = StringIO()
    call_command("reconcile_sandboxes", "--min-age", "0", stdout=out)
    assert "1 deleted, 0 failed" in out.getvalue()

    http_sandbox.refresh_from_db()
    assert http_sandbox.state == SandboxState.DELETED and http_sandbox.last_error == ""
    assert http_sandbox.external_id not in fake_provider.sandboxes
    assert not Sandbox.objects.filter(state=SandboxState.PENDING_DELETION).exists()


def test_the_reconciler_counts_what_still_fails(http_sandbox, fake_provider, django_capture_on_commit_callbacks):  # noqa: F811
    fake_provider.fail_with = 502
    with django_capture_on_commit_callbacks():  # the broker lost the task: only the row remains
        Project.objects.get(pk=http_sandbox.project_id).delete()
    http_sandbox.refresh_from_db()
    assert (http_sandbox.state, http_sandbox.attempts) == (SandboxState.PENDING_DELETION, 0)

    assert reconcile_sandboxes(min_age_seconds=0) == {"orphaned": 0, "deleted": 0, "failed": 1}
    fake_provider.fail_with = None
    assert reconcile_sandboxes(min_age_seconds=0) == {"orphaned": 0, "deleted": 1, "failed": 0}
    http_sandbox.refresh_from_db()
    assert (http_sandbox.state, http_sandbox.attempts) == (SandboxState.DELETED, 2)


def test_a_sandbox_orphaned_behind_the_services_back_is_reconciled(http_sandbox, fake_provider):  # noqa: F811
    with connection.cursor() as cursor:  # a raw delete: no signal, no service
        cursor.execute(f"DELETE FROM {Project._meta.db_table} WHERE id = %s", [http_sandbox.project_id.hex])
    http_sandbox.refresh_from_db()
    assert http_sandbox.project_id is None and http_sandbox.state == SandboxState.READY

    assert reconcile_sandboxes(min_age_seconds=0) == {"orphaned": 1, "deleted": 1, "failed": 0}
    http_sandbox.refresh_from_db()
    assert http_sandbox.state == SandboxState.DELETED
    assert http_sandbox.external_id not in fake_provider.sandboxes


def test_retry_now_schedules_only_pending_sandboxes(http_sandbox, fake_provider, django_capture_on_commit_callbacks):  # noqa: F811
    assert retry_sandbox_deletion(sandbox_ids=[http_sandbox.pk]) == []  # ready: nothing to retry
    Sandbox.objects.filter(pk=http_sandbox.pk).update(state=SandboxState.PENDING_DELETION)
    with django_capture_on_commit_callbacks(execute=True):
        assert retry_sandbox_deletion(sandbox_ids=[http_sandbox.pk]) == [http_sandbox.pk]
    http_sandbox.refresh_from_db()
    assert http_sandbox.state == SandboxState.DELETED


def test_a_deleted_sandbox_is_not_deleted_twice(http_sandbox, fake_provider, django_capture_on_commit_callbacks):  # noqa: F811
    with django_capture_on_commit_callbacks(execute=True):
        Project.objects.get(pk=http_sandbox.project_id).delete()
    assert fake_provider.calls_to("DELETE") == 1
    assert reconcile_sandboxes(min_age_seconds=0) == {"orphaned": 0, "deleted": 0, "failed": 0}
    assert fake_provider.calls_to("DELETE") == 1


def test_the_reconcile_command_deletes_every_pending_sandbox_not_just_500():
    Sandbox.objects.bulk_create(
        Sandbox(provider="local", state=SandboxState.PENDING_DELETION) for _ in range(1001)  # never created
    )
    out = StringIO()
    call_command("reconcile_sandboxes", "--min-age", "0", stdout=out)
    assert not Sandbox.objects.filter(state=SandboxState.PENDING_DELETION).exists()
    lines = out.getvalue().splitlines()
    assert "500 sandboxes pending deletion attempted: 500 deleted, 0 failed" in lines
    assert "1001 deleted, 0 failed (still pending), 0 orphaned sandboxes sent for deletion" in lines
    assert "Still waiting for the provider: 0 creating, 0 pending deletion" in lines


@pytest.mark.parametrize("min_age", ["inf", "nan", "1e300", "-1"])
def test_the_reconcile_command_refuses_a_bad_min_age(min_age):
    Sandbox.objects.create(provider="local", state=SandboxState.PENDING_DELETION)
    with pytest.raises(CommandError, match="--min-age"):
        call_command("reconcile_sandboxes", "--min-age", min_age, stdout=StringIO())
    assert Sandbox.objects.get().state == SandboxState.PENDING_DELETION


def test_the_delete_task_gives_up_to_the_reconciler_with_a_warning_not_a_task_error(
    http_sandbox, fake_provider, caplog, django_capture_on_commit_callbacks  # noqa: F811
):
    from sandboxes.tasks import delete_sandbox

    with django_capture_on_commit_callbacks(execute=True):
        http_sandbox.project.delete()
    Sandbox.objects.filter(pk=http_sandbox.pk).update(state=SandboxState.PENDING_DELETION)
    fake_provider.fail_with = 429
    delete_sandbox.push_request(retries=delete_sandbox.max_retries, is_eager=False, called_directly=False)
    try:
        with caplog.at_level(logging.WARNING, logger="sandboxes.tasks"):
            assert delete_sandbox.run(str(http_sandbox.pk)) is False
    finally:
        delete_sandbox.pop_request()
    assert "left to the reconciler" in caplog.text
    http_sandbox.refresh_from_db()
    assert http_sandbox.state == SandboxState.PENDING_DELETION and "429" in http_sandbox.last_error

    fake_provider.fail_with = None
    assert reconcile_sandboxes(min_age_seconds=0)["deleted"] == 1
    assert http_sandbox.external_id not in fake_provider.sandboxes


@pytest.mark.parametrize("outage", ["timeout", "refused"])
def test_an_unreachable_provider_is_waited_for_once_per_pass_not_once_per_sandbox(
    account, settings, fake_provider, django_capture_on_commit_callbacks, outage  # noqa: F811
):
    """A provider that times out (or refuses connections) during an account deletion
    and the reconcilers: each pass calls it once, and the other sandboxes wait,
    untouched, for the next pass (each waited out the timeout in turn: a pass over
    500 sandboxes held a worker 500 × SANDBOX_API_TIMEOUT). Once it recovers, every
    sandbox is deleted and the receipt completes."""
    from projects.services import create_project, delete_account
    from receipts.models import DeletionReceipt
    from receipts.services import reconcile_deletions

    use_http_provider(settings, fake_provider)
    with django_capture_on_commit_callbacks(execute=True):
        for i in range(5):
            provision_sandbox(project=create_project(account=account, name=f"P{i}"))
    assert len(fake_provider.sandboxes) == 5
    if outage == "timeout":
        fake_provider.delay = 1.0  # the client gives up after 0.3 s
    else:
        settings.SANDBOX_API_URL = "http://127.0.0.1:1/api"  # nothing listens there

    with django_capture_on_commit_callbacks(execute=True):
        delete_account(account=account)
    assert fake_provider.calls_to("DELETE") == (1 if outage == "timeout" else 0)
    assert Sandbox.objects.filter(state=SandboxState.PENDING_DELETION).count() == 5
    assert sorted(Sandbox.objects.values_list("attempts", flat=True)) == [0, 0, 0, 0, 1]
    assert reconcile_sandboxes(min_age_seconds=0) == {"orphaned": 0, "deleted": 0, "failed": 5}
    assert reconcile_deletions(min_age_seconds=0) == {"complete": 0, "pending": 1}
    assert fake_provider.calls_to("DELETE") == (3 if outage == "timeout" else 0)
    receipt = DeletionReceipt.objects.get()
    assert receipt.cleanup_state == "pending" and "unreachable earlier in this pass" in receipt.cleanup_error

    fake_provider.delay = 0.0
    use_http_provider(settings, fake_provider)
    assert reconcile_deletions(min_age_seconds=0) == {"complete": 1, "pending": 0}
    assert not fake_provider.sandboxes
    assert Sandbox.objects.filter(state=SandboxState.DELETED).count() == 5


def slow_creation(settings, fake_provider, project, django_capture_on_commit_callbacks):  # noqa: F811
    """A creation the provider carries out after the client gave up: `error` here,
    a sandbox there."""
    use_http_provider(settings, fake_provider)
    fake_provider.delay, fake_provider.slow_methods = 0.8, {"POST"}  # the client gives up after 0.3 s
    with django_capture_on_commit_callbacks(execute=True):
        sandbox, _ = provision_sandbox(project=project)
    sandbox.refresh_from_db()
    assert sandbox.state == SandboxState.ERROR and sandbox.external_id == "" and "Timeout" in sandbox.last_error
    import time

    deadline = time.monotonic() + 5
    while not fake_provider.sandboxes and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(fake_provider.sandboxes) == 1  # made at the provider all the same
    fake_provider.delay = 0.0
    return sandbox


def test_a_sandbox_whose_creation_timed_out_is_deleted_at_the_provider_with_its_project(
    api, project, settings, fake_provider, django_capture_on_commit_callbacks  # noqa: F811
):
    """Its row had no external id, so its deletion was marked done without asking the
    provider: the sandbox stayed there for ever."""
    from receipts.models import DeletionReceipt

    sandbox = slow_creation(settings, fake_provider, project, django_capture_on_commit_callbacks)
    thread = create_thread(project=project)
    with django_capture_on_commit_callbacks(execute=True):
        assert api.delete(f"/api/threads/{thread.pk}").status_code == 200

    sandbox.refresh_from_db()
    assert sandbox.state == SandboxState.DELETED
    assert not fake_provider.sandboxes
    assert DeletionReceipt.objects.get().cleanup_state == "complete"


def test_a_failed_creation_is_deleted_only_once_the_provider_answers(
    project, settings, fake_provider, django_capture_on_commit_callbacks  # noqa: F811
):
    sandbox = slow_creation(settings, fake_provider, project, django_capture_on_commit_callbacks)
    fake_provider.fail_with = 503
    with django_capture_on_commit_callbacks(execute=True):
        project.delete()
    sandbox.refresh_from_db()
    assert sandbox.state == SandboxState.PENDING_DELETION and "503" in sandbox.last_error
    fake_provider.fail_with = None
    assert reconcile_sandboxes(min_age_seconds=0)["deleted"] == 1
    assert not fake_provider.sandboxes


def test_a_sandbox_never_sent_to_the_provider_is_deleted_without_asking_it(
    project, settings, fake_provider, broker_down, django_capture_on_commit_callbacks  # noqa: F811
):
    use_http_provider(settings, fake_provider)
    with django_capture_on_commit_callbacks(execute=True):
        sandbox, _ = provision_sandbox(project=project)  # its creation task is lost
    broker_down()
    with django_capture_on_commit_callbacks(execute=True):
        project.delete()  # its cleanup runs in-process
    sandbox.refresh_from_db()
    assert sandbox.state == SandboxState.DELETED and not fake_provider.calls


def test_creating_again_after_a_timed_out_creation_adopts_the_sandbox_it_made(
    api, project, settings, fake_provider, django_capture_on_commit_callbacks  # noqa: F811
):
    """A retried creation found the first one's sandbox: one at the provider, not two
    (the first one, unknown to the service, was never deleted)."""
    sandbox = slow_creation(settings, fake_provider, project, django_capture_on_commit_callbacks)
    (first,) = fake_provider.sandboxes
    with django_capture_on_commit_callbacks(execute=True):
        response = api.post(f"/api/projects/{project.pk}/sandbox")
    assert response.status_code in (200, 201, 202), response.content
    sandbox.refresh_from_db()
    assert sandbox.state == SandboxState.READY and sandbox.external_id == first
    assert fake_provider.sandboxes == {first} and fake_provider.calls_to("POST") == 1


def test_a_sandbox_provisioned_again_after_a_lost_creation_is_found_when_deleted_before_its_new_claim(
    project, settings, fake_provider, django_capture_on_commit_callbacks  # noqa: F811
):
    """Provisioning again keeps the mark of the earlier attempt: the project deleted
    before the new creation was claimed, its deletion still looks for the sandbox the
    earlier one made (once no creation can be under way) and deletes it."""
    from datetime import timedelta

    from django.utils import timezone

    from receipts.models import DeletionReceipt

    sandbox = slow_creation(settings, fake_provider, project, django_capture_on_commit_callbacks)
    with django_capture_on_commit_callbacks(execute=False):  # its creation task not run yet
        provision_sandbox(project=project)
    with django_capture_on_commit_callbacks(execute=True):
        project.delete()
    sandbox.refresh_from_db()
    assert sandbox.state == SandboxState.PENDING_DELETION and fake_provider.sandboxes  # not confirmed yet
    assert DeletionReceipt.objects.get().cleanup_state == "pending"
    Sandbox.objects.filter(pk=sandbox.pk).update(deletion_requested_at=timezone.now() - timedelta(minutes=5))
    assert reconcile_sandboxes(min_age_seconds=0)["deleted"] == 1
    assert not fake_provider.sandboxes


def test_two_sandboxes_made_for_one_row_are_both_deleted(
    project, settings, fake_provider, django_capture_on_commit_callbacks  # noqa: F811
):
    """A creation retried while the first was still being made at the provider: two
    sandboxes carry the row's label; its deletion removes both, not only the one adopted."""
    import time

    use_http_provider(settings, fake_provider)
    fake_provider.delay, fake_provider.slow_methods = 0.8, {"POST"}
    with django_capture_on_commit_callbacks(execute=True):
        sandbox, _ = provision_sandbox(project=project)  # the client gives up; the provider goes on
    fake_provider.delay = 0.0
    with django_capture_on_commit_callbacks(execute=True):
        provision_sandbox(project=project)  # at once: nothing found yet, a second one made
    deadline = time.monotonic() + 5
    while len(fake_provider.sandboxes) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(fake_provider.sandboxes) == 2 and Sandbox.objects.get(pk=sandbox.pk).state == SandboxState.READY
    with django_capture_on_commit_callbacks(execute=True):
        project.delete()
    assert Sandbox.objects.get(pk=sandbox.pk).state == SandboxState.DELETED and not fake_provider.sandboxes


def test_a_deletion_waits_for_a_creation_under_way(
    project, settings, fake_provider, django_capture_on_commit_callbacks  # noqa: F811
):
    """The project deleted while its sandbox's creation is claimed and not over: the
    deletion is not confirmed (the receipt stays pending) until no creation can be
    under way; then what that creation made is found and deleted."""
    from datetime import timedelta

    from django.utils import timezone

    from sandboxes.services import delete_sandbox_at_provider

    use_http_provider(settings, fake_provider)
    with django_capture_on_commit_callbacks(execute=False):
        sandbox, _ = provision_sandbox(project=project)
    Sandbox.objects.filter(pk=sandbox.pk).update(last_attempt_at=timezone.now())  # a worker claimed it: POST sent
    with django_capture_on_commit_callbacks(execute=True):
        project.delete()
    sandbox.refresh_from_db()
    assert sandbox.state == SandboxState.PENDING_DELETION and "under way" in sandbox.last_error
    fake_provider.sandboxes.add("made-late")  # the creation finishes at the provider
    fake_provider.labels["made-late"] = {"threadkeeper_id": str(sandbox.pk)}
    Sandbox.objects.filter(pk=sandbox.pk).update(deletion_requested_at=timezone.now() - timedelta(minutes=5))
    assert delete_sandbox_at_provider(sandbox_id=sandbox.pk)
    assert Sandbox.objects.get(pk=sandbox.pk).state == SandboxState.DELETED and not fake_provider.sandboxes
