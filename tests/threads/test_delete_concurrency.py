"""Concurrent deletes and creates in one project, with real threads on PostgreSQL:
the project of the last thread is deleted exactly once, never left empty, and no
request fails with a 500."""

import threading

import pytest
from django.db import connection

from projects import services as project_services
from projects.models import Project
from sandboxes.models import Sandbox, SandboxState
from sandboxes.services import provision_sandbox
from tests.conftest import client_for
from tests.fake_sandbox_provider import fake_provider, use_http_provider  # noqa: F401
from threads.models import Thread
from threads.services import create_thread

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


def run_together(calls) -> list:
    """Start every call at the same moment, each in its own thread; their results."""
    barrier = threading.Barrier(len(calls))
    results = [None] * len(calls)

    def run(i, call):
        try:
            barrier.wait()
            results[i] = call()
        finally:
            connection.close()

    workers = [threading.Thread(target=run, args=(i, call)) for i, call in enumerate(calls)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(timeout=60)
    return results


@pytest.mark.parametrize("n", [4, 6])
def test_deleting_the_last_threads_at_once_deletes_the_project_exactly_once(owner, account, settings, fake_provider, n):  # noqa: F811
    use_http_provider(settings, fake_provider)
    for attempt in range(3):
        project = project_services.create_project(account=account, name=f"p{attempt}")
        provision_sandbox(project=project)
        sandbox = Sandbox.objects.get(project=project)
        assert sandbox.state == SandboxState.READY
        threads = [create_thread(project=project) for _ in range(n)]
        deletes_before = fake_provider.calls_to("DELETE")

        statuses = run_together([lambda t=t: client_for(owner).delete(f"/api/threads/{t.pk}").status_code for t in threads])

        assert set(statuses) <= {200, 404} and statuses.count(200) == n
        assert not Project.objects.filter(pk=project.pk).exists()
        assert not Thread.objects.filter(pk__in=[t.pk for t in threads]).exists()
        sandbox.refresh_from_db()
        assert sandbox.state == SandboxState.DELETED and sandbox.attempts == 1
        assert fake_provider.calls_to("DELETE") - deletes_before == 1


def test_deleting_the_same_thread_at_once_is_one_200_and_404s(owner, project):
    thread = create_thread(project=project)
    statuses = run_together([lambda: client_for(owner).delete(f"/api/threads/{thread.pk}").status_code] * 5)
    assert sorted(statuses) == [200, 404, 404, 404, 404]
    assert not Project.objects.filter(pk=project.pk).exists()


def test_creating_while_the_last_thread_is_deleted_is_clean(owner, account):
    for attempt in range(8):
        project = project_services.create_project(account=account, name=f"race{attempt}")
        first, second = create_thread(project=project), create_thread(project=project)

        delete_first, create, delete_second = run_together(
            [
                lambda: client_for(owner).delete(f"/api/threads/{first.pk}").status_code,
                lambda: client_for(owner).post("/api/threads", {"project_id": str(project.pk)}, format="json"),
                lambda: client_for(owner).delete(f"/api/threads/{second.pk}").status_code,
            ]
        )
        assert delete_first == 200 and delete_second == 200
        assert create.status_code in (201, 404), create.content
        assert create.json()["detail" if create.status_code == 404 else "thread_id"]
        exists = Project.objects.filter(pk=project.pk).exists()
        assert exists == (create.status_code == 201)
        if exists:
            assert Thread.objects.filter(project=project).count() == 1  # never an empty project


def test_creating_a_sub_thread_of_a_thread_being_deleted_is_never_a_500(owner, project):
    for _ in range(8):
        create_thread(project=project)  # keeps the project
        parent = create_thread(project=project)
        delete, create = run_together(
            [
                lambda: client_for(owner).delete(f"/api/threads/{parent.pk}").status_code,
                lambda: client_for(owner).post(
                    "/api/threads", {"project_id": str(project.pk), "parent_thread_id": str(parent.pk)}, format="json"
                ),
            ]
        )
        assert delete == 200
        assert create.status_code in (201, 404), create.content
        assert not Thread.objects.filter(parent_thread_id=parent.pk).exists()


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_creating_threads_at_once_never_passes_the_thread_limit(account, owner):
    """Six creations at once in two projects of an account with room for three."""
    account.thread_limit = 3
    account.save()
    projects = [project_services.create_project(account=account, name=f"p{i}") for i in range(2)]
    outcomes, barrier = [], threading.Barrier(6)

    def create(i):
        try:
            barrier.wait()
            create_thread(project=projects[i % 2], created_by=owner)
            outcomes.append(201)
        except Exception as exc:
            outcomes.append(getattr(exc, "status_code", repr(exc)))
        finally:
            connection.close()

    workers = [threading.Thread(target=create, args=(i,)) for i in range(6)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    assert sorted(outcomes) == [201, 201, 201, 402, 402, 402]
    assert Thread.objects.filter(account=account).count() == 3
