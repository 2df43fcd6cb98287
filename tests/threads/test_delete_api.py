"""`DELETE /api/threads/{id}`: who may delete, and the error contract."""

import pytest

from projects.models import Role
from tests.conftest import client_for
from threads.models import Thread
from threads.services import create_thread

pytestmark = pytest.mark.django_db


@pytest.fixture
def thread(project):
    create_thread(project=project)  # the project outlives the deleted thread
    return create_thread(project=project)


def test_no_token_is_401(anon, thread):
    response = anon.delete(f"/api/threads/{thread.pk}")
    assert response.status_code == 401 and response.json()["detail"]
    assert Thread.objects.filter(pk=thread.pk).exists()


def test_another_accounts_thread_is_404(other_account, thread):
    stranger = client_for(other_account.memberships.get().user)
    response = stranger.delete(f"/api/threads/{thread.pk}")
    assert response.status_code == 404 and response.json()["detail"]
    assert Thread.objects.filter(pk=thread.pk).exists()


def test_a_viewer_is_403(account, member_of, thread):
    response = client_for(member_of(account, Role.VIEWER)).delete(f"/api/threads/{thread.pk}")
    assert response.status_code == 403 and response.json()["detail"]
    assert Thread.objects.filter(pk=thread.pk).exists()


def test_a_malformed_id_is_422(api):
    response = api.delete("/api/threads/not-a-uuid")
    assert response.status_code == 422 and response.json()["detail"]


def test_an_unknown_or_already_deleted_thread_is_404(api, thread):
    assert api.delete(f"/api/threads/{thread.pk}").status_code == 200
    response = api.delete(f"/api/threads/{thread.pk}/")
    assert response.status_code == 404 and response.json()["detail"]


@pytest.mark.parametrize("role", [Role.MEMBER, Role.ADMIN, Role.OWNER])
def test_write_roles_may_delete(account, member_of, thread, role):
    response = client_for(member_of(account, role)).delete(f"/api/threads/{thread.pk}")
    assert response.status_code == 200
    assert response.json() == {"message": "Thread deleted successfully", "thread_id": str(thread.pk)}
    assert not Thread.objects.filter(pk=thread.pk).exists()


def test_the_creator_may_delete_even_as_a_viewer(account, project, member_of):
    creator = member_of(account, Role.VIEWER)
    thread = create_thread(project=project, created_by=creator)
    create_thread(project=project)
    assert client_for(creator).delete(f"/api/threads/{thread.pk}").status_code == 200
