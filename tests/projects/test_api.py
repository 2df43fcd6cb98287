"""Auth, the error contract and tenancy isolation."""

import pytest

from projects.models import Role
from tests.conftest import client_for
from threads.models import Thread

pytestmark = pytest.mark.django_db


def test_token_obtain_and_refresh(anon, owner, account):
    r = anon.post("/api/auth/token", {"username": "owner", "password": "pw-1234"}, format="json")
    assert r.status_code == 200, r.content
    access, refresh = r.json()["access"], r.json()["refresh"]
    r = anon.post("/api/auth/token/refresh/", {"refresh": refresh}, format="json")
    assert r.status_code == 200 and r.json()["access"]
    anon.credentials(HTTP_AUTHORIZATION=f"Bearer {access}")
    r = anon.get("/api/accounts")
    assert r.status_code == 200
    assert [(a["id"], a["role"]) for a in r.json()["results"]] == [(str(account.id), "owner")]


def test_bad_credentials_401_with_detail(anon, owner):
    r = anon.post("/api/auth/token", {"username": "owner", "password": "nope"}, format="json")
    assert r.status_code == 401 and isinstance(r.json()["detail"], str)


def test_no_token_401(anon):
    r = anon.get("/api/threads")
    assert r.status_code == 401 and isinstance(r.json()["detail"], str)


def test_bad_token_401(anon):
    anon.credentials(HTTP_AUTHORIZATION="Bearer not-a-token")
    r = anon.get("/api/threads")
    assert r.status_code == 401 and isinstance(r.json()["detail"], str)


def test_unknown_route_is_json_404(api):
    r = api.get("/api/nothing-here")
    assert r.status_code == 404 and r.json() == {"detail": "Not found."}


def test_malformed_uuid_in_path_is_422(api):
    r = api.get("/api/threads/not-a-uuid")
    assert r.status_code == 422 and "detail" in r.json()


def test_validation_error_is_422_with_field_errors(api, account):
    r = api.post("/api/projects", {"account_id": str(account.id)}, format="json")
    assert r.status_code == 422
    assert r.json()["errors"]["name"]
    assert isinstance(r.json()["detail"], str)


def test_malformed_json_is_422(api):
    r = api.post("/api/projects", data="{not json", content_type="application/json")
    assert r.status_code == 422 and "detail" in r.json()


def test_project_crud_and_thread_create(api, account):
    r = api.post("/api/projects/", {"account_id": str(account.id), "name": "P"}, format="json")
    assert r.status_code == 201, r.content
    pid = r.json()["id"]
    assert api.patch(f"/api/projects/{pid}", {"name": "Q"}, format="json").json()["name"] == "Q"
    r = api.post("/api/threads", {"project_id": pid, "metadata": {"k": 1}}, format="json")
    assert r.status_code == 201, r.content
    body = r.json()
    assert body["project_id"] == pid and body["account_id"] == str(account.id) and body["status"] == "idle"
    assert api.get(f"/api/threads/{body['thread_id']}").json()["thread_id"] == body["thread_id"]
    assert api.get("/api/threads", {"project_id": pid}).json()["count"] == 1


def test_tenancy_isolation(account, other_account, project):
    thread = Thread.objects.create(account=account, project=project)
    stranger = other_account.memberships.get().user
    client = client_for(stranger)
    assert client.get(f"/api/threads/{thread.pk}").status_code == 404
    assert client.get(f"/api/projects/{project.pk}").status_code == 404
    assert client.get(f"/api/accounts/{account.pk}").status_code == 404
    assert client.get("/api/threads").json()["count"] == 0
    assert client.get("/api/projects").json()["count"] == 0
    r = client.post("/api/threads", {"project_id": str(project.pk)}, format="json")
    assert r.status_code == 404
    r = client.post("/api/projects", {"account_id": str(account.pk), "name": "x"}, format="json")
    assert r.status_code == 404


def test_viewer_reads_but_cannot_write(account, project, member_of):
    viewer = client_for(member_of(account, Role.VIEWER))
    thread = Thread.objects.create(account=account, project=project)
    assert viewer.get(f"/api/threads/{thread.pk}").status_code == 200
    r = viewer.post("/api/threads", {"project_id": str(project.pk)}, format="json")
    assert r.status_code == 403 and r.json()["detail"]
    assert viewer.patch(f"/api/projects/{project.pk}", {"name": "x"}, format="json").status_code == 403


def test_schema_and_docs_are_served(anon):
    assert anon.get("/api/schema/").status_code == 200
    assert anon.get("/api/docs/").status_code == 200
