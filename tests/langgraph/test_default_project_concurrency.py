"""The default project under concurrency (real threads on PostgreSQL): creations
without a project at once make one default project, and a creation racing the
deletion of the default project's last thread never lands in a deleted project."""

import uuid

import pytest

from projects.models import Project
from tests.conftest import client_for
from tests.threads.test_delete_concurrency import run_together
from threads.models import Thread

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


def test_creations_without_a_project_at_once_share_one_default_project(owner, account):
    statuses = run_together([lambda: client_for(owner).post("/api/threads", {}, format="json").status_code] * 6)
    assert statuses == [201] * 6
    default = Project.objects.get(account=account, is_default=True)
    assert Thread.objects.filter(project=default).count() == 6


def test_creating_while_the_default_projects_last_thread_is_deleted(owner, account):
    for _ in range(6):
        last = client_for(owner).post("/api/threads", {}, format="json").json()["thread_id"]
        new_id = str(uuid.uuid4())
        deleted, created = run_together([
            lambda: client_for(owner).delete(f"/api/threads/{last}").status_code,
            lambda: client_for(owner).post("/api/threads", {"thread_id": new_id}, format="json").status_code,
        ])
        assert (deleted, created) == (200, 201)
        thread = Thread.objects.select_related("project").get(pk=new_id)
        assert thread.project.is_default and Project.objects.filter(account=account, is_default=True).count() == 1
        client_for(owner).delete(f"/api/threads/{new_id}")
        assert not Project.objects.filter(account=account).exists()
