"""GET /api/accounts/{id}/deletions, the receipts in the admin, and their retention."""

from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import call_command
from django.utils import timezone

from projects.models import Role
from receipts.models import DeletionReceipt
from tests.conftest import client_for
from tests.threads.test_prune import make_threads
from threads import services

pytestmark = pytest.mark.django_db


def url(account):
    return f"/api/accounts/{account.pk}/deletions"


@pytest.fixture
def history(api, owner, account, project, django_capture_on_commit_callbacks):
    """Three operations: a thread delete, a prune, a keep_latest prune (pending cleanup for one)."""
    a, b, c, d = make_threads(project, 4, messages=2, checkpoints=2)
    with django_capture_on_commit_callbacks(execute=True):
        api.delete(f"/api/threads/{a.pk}")
        api.post("/api/threads/prune", {"thread_ids": [str(b.pk), str(c.pk)]}, format="json")
        api.post("/api/threads/prune", {"thread_ids": [str(d.pk)], "strategy": "keep_latest"}, format="json")
    DeletionReceipt.objects.filter(kind="prune_delete").update(cleanup_state="pending", cleanup_error="provider down")
    return a, b, c, d


def test_owners_read_the_receipts_newest_first(api, account, history):
    response = api.get(url(account))
    assert response.status_code == 200
    body = response.json()
    assert body["count"] == 3
    first = body["results"][0]
    assert first["kind"] == "prune_keep_latest" and first["counts"]["checkpoints"] == 1
    assert [r["kind"] for r in body["results"]] == ["prune_keep_latest", "prune_delete", "thread_delete"]
    last = body["results"][2]
    assert (last["actor"], last["source"], last["root_ids"]) == ("owner", "api", [str(history[0].pk)])
    assert last["counts"] == {"threads": 1, "messages": 2, "runs": 0, "checkpoints": 2, "projects": 0,
                              "sandboxes": 0, "embeddings": 0, "agents": 0, "threads_closed": 0}
    assert last["cleanup_state"] == "complete"


def test_filters_and_paging(api, account, history):
    only = api.get(url(account), {"cleanup_state": "pending"}).json()
    assert [r["kind"] for r in only["results"]] == ["prune_delete"]
    assert only["results"][0]["cleanup_error"] == "provider down"
    kinds = api.get(f"{url(account)}?kind=thread_delete&kind=prune_delete").json()
    assert sorted(r["kind"] for r in kinds["results"]) == ["prune_delete", "thread_delete"]
    assert api.get(url(account), {"source": "ttl"}).json()["count"] == 0
    future = (timezone.now() + timedelta(hours=1)).isoformat()
    assert api.get(url(account), {"since": future}).json()["count"] == 0
    assert api.get(url(account), {"until": future}).json()["count"] == 3
    page = api.get(url(account), {"limit": 2, "offset": 2}).json()
    assert page["count"] == 3 and len(page["results"]) == 1 and page["previous"]
    assert api.get(url(account), {"limit": 2}).json()["next"]


@pytest.mark.parametrize("params", [{"kind": "nope"}, {"cleanup_state": "x"}, {"since": "yesterday"},
                                    {"limit": 0}, {"limit": "abc"}, {"offset": -1}, {"source": ""}])
def test_bad_filters_are_422(api, account, params):
    response = api.get(url(account), params)
    assert response.status_code == 422 and response.json()["detail"]


def test_who_may_read(account, member_of, other_account, anon, history):
    assert client_for(member_of(account, Role.ADMIN)).get(url(account)).json()["count"] == 3
    for role in (Role.MEMBER, Role.VIEWER):
        response = client_for(member_of(account, role)).get(url(account))
        assert response.status_code == 403 and response.json()["detail"]
    stranger = other_account.memberships.get().user
    assert client_for(stranger).get(url(account)).status_code == 404
    assert client_for(stranger).get(url(other_account)).json()["count"] == 0  # their own: empty
    assert anon.get(url(account)).status_code == 401
    assert client_for(stranger).get("/api/accounts/not-a-uuid/deletions").status_code == 422


def test_the_endpoint_is_in_the_schema(api):
    schema = api.get("/api/schema/", HTTP_ACCEPT="application/json").json()
    operation = schema["paths"]["/api/accounts/{account_id}/deletions/"]["get"]
    assert set(operation["responses"]) >= {"200", "401", "403", "404", "422"}
    assert {p["name"] for p in operation["parameters"]} >= {"kind", "source", "cleanup_state", "since", "until",
                                                           "limit", "offset"}


def test_the_admin_lists_receipts_read_only_and_filters_pending(admin_client, history):
    response = admin_client.get("/admin/receipts/deletionreceipt/?cleanup_state__exact=pending")
    assert response.status_code == 200
    assert [r.kind for r in response.context["cl"].result_list] == ["prune_delete"]
    receipt = DeletionReceipt.objects.get(kind="thread_delete")
    page = admin_client.get(f"/admin/receipts/deletionreceipt/{receipt.pk}/change/")
    assert page.status_code == 200 and 'name="_save"' not in page.content.decode()
    assert admin_client.get("/admin/receipts/deletionreceipt/add/").status_code == 403
    assert admin_client.post(f"/admin/receipts/deletionreceipt/{receipt.pk}/delete/").status_code == 403


def test_the_admin_retries_pending_cleanups(admin_client, history, django_capture_on_commit_callbacks):
    pending = DeletionReceipt.objects.get(kind="prune_delete")
    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post("/admin/receipts/deletionreceipt/", {
            "action": "retry_cleanup", "_selected_action": [str(r.pk) for r in DeletionReceipt.objects.all()],
        }, follow=True)
    assert "Cleanup scheduled for 1 pending receipt" in response.content.decode()
    assert "2 receipt(s) skipped" in response.content.decode()
    pending.refresh_from_db()
    assert (pending.cleanup_state, pending.cleanup_error) == ("complete", "")


def test_purge_keeps_recent_and_pending_receipts(history, settings):
    old = timezone.now() - timedelta(days=settings.DELETION_RECEIPT_RETENTION_DAYS + 1)
    DeletionReceipt.objects.update(created_at=old)
    out = StringIO()
    call_command("purge_receipts", "--dry-run", stdout=out)
    assert "2 receipt(s)" in out.getvalue() and DeletionReceipt.objects.count() == 3
    call_command("purge_receipts", stdout=out)
    assert "Purged 2 receipt(s)" in out.getvalue()
    assert list(DeletionReceipt.objects.values_list("kind", flat=True)) == ["prune_delete"]  # still pending
    services.delete_threads(thread_ids=[])  # nothing: no receipt
    call_command("purge_receipts", "--older-than-days", "0", stdout=out)
    assert DeletionReceipt.objects.count() == 1
