"""`POST/GET /api/projects/{id}/sandbox`."""

from pathlib import Path

import pytest

from projects import services as project_services
from projects.models import Role
from sandboxes.models import SandboxState
from tests.conftest import client_for
from tests.fake_sandbox_provider import fake_provider, use_http_provider  # noqa: F401

pytestmark = pytest.mark.django_db


def url(project):
    return f"/api/projects/{project.pk}/sandbox"


def test_provision_then_read_with_the_local_provider(api, project, settings, django_capture_on_commit_callbacks):
    assert api.get(url(project)).status_code == 404
    with django_capture_on_commit_callbacks(execute=True):
        response = api.post(url(project))
    assert response.status_code == 201
    body = api.get(url(project)).json()  # the creation ran after commit
    assert body["id"] == response.json()["id"]
    assert (body["provider"], body["state"], body["project_id"]) == ("local", SandboxState.READY, str(project.pk))
    assert (Path(settings.SANDBOX_ROOT) / body["external_id"]).is_dir()

    again = api.post(url(project) + "/")
    assert again.status_code == 200 and again.json()["id"] == body["id"]
    assert api.get(url(project)).json()["id"] == body["id"]


def test_provision_at_the_http_provider(api, project, settings, fake_provider, django_capture_on_commit_callbacks):  # noqa: F811
    use_http_provider(settings, fake_provider)
    with django_capture_on_commit_callbacks(execute=True):
        assert api.post(url(project)).status_code == 201
    body = api.get(url(project)).json()
    assert (body["provider"], body["state"]) == ("http", SandboxState.READY)
    assert body["external_id"] in fake_provider.sandboxes


def test_a_failed_creation_is_an_error_state_and_can_be_retried(
    api, project, settings, fake_provider, django_capture_on_commit_callbacks  # noqa: F811
):
    use_http_provider(settings, fake_provider)
    fake_provider.fail_with = 503
    with django_capture_on_commit_callbacks(execute=True):
        response = api.post(url(project))
    assert response.status_code == 201
    failed = api.get(url(project)).json()
    assert failed["state"] == SandboxState.ERROR and "503" in failed["last_error"]

    fake_provider.fail_with = None
    with django_capture_on_commit_callbacks(execute=True):
        assert api.post(url(project)).status_code == 201
    retried = api.get(url(project)).json()
    assert retried["state"] == SandboxState.READY and retried["id"] == failed["id"]


def test_errors(api, anon, account, project, other_account, member_of):
    theirs = project_services.create_project(account=other_account, name="theirs")
    assert anon.post(url(project)).status_code == 401
    assert api.post(url(theirs)).status_code == 404
    assert api.get(url(theirs)).status_code == 404
    assert api.post("/api/projects/nope/sandbox").status_code == 422
    viewer = client_for(member_of(account, Role.VIEWER))
    response = viewer.post(url(project))
    assert response.status_code == 403 and response.json()["detail"]
