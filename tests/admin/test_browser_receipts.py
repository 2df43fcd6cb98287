"""The deletion receipts in the admin, in a real browser (headless Debian Chromium
driven by Playwright), as a superuser and as staff holding only the receipts' view
permission: the list, the cleanup-state filter finding the pending one, a receipt's
page (who, from where, what, the cleanup's state and error), and nothing to add,
change or delete.

The receipts come from real deletions made through the admin before the browser
starts (one with its sandbox's provider failing, so its cleanup stays pending); as
in test_browser.py, the database is read only before and after the browser runs.
Screenshots go to test-artifacts/.
"""

import pytest
from django.test import Client

from projects.services import create_account, create_project, ensure_user
from receipts.models import DeletionReceipt
from sandboxes.models import SandboxState
from sandboxes.services import provision_sandbox
from tests.admin.test_browser import ARTIFACTS, CHROMIUM, chromium_page  # noqa: F401 (skip rule)
from tests.admin.test_browser import pytestmark as browser_marks
from tests.admin.test_browser_deletion import PASSWORD, log_in, make_staff, shot
from tests.fake_sandbox_provider import fake_provider, use_http_provider  # noqa: F401
from tests.threads.test_prune import make_threads

pytestmark = browser_marks
RECEIPTS = "/admin/receipts/deletionreceipt/"


def deletions_through_the_admin(settings, provider):
    """A project (with a sandbox whose provider answers 503: pending) and two
    threads, deleted from the admin by the superuser `deleter`."""
    use_http_provider(settings, provider)
    deleter = ensure_user(username="deleter", password=PASSWORD)
    deleter.is_staff = deleter.is_superuser = True
    deleter.save()
    account = create_account(name="Receipts Co", owner=deleter)
    doomed = create_project(account=account, name="Doomed project")
    make_threads(doomed, 3, messages=2, checkpoints=1)
    sandbox, _ = provision_sandbox(project=doomed)  # created at the provider after commit (autocommit here)
    sandbox.refresh_from_db()
    assert sandbox.state == SandboxState.READY
    threads = make_threads(create_project(account=account, name="Kept project"), 3, messages=1)
    client = Client()
    client.force_login(deleter)
    provider.fail_with = 503
    assert client.post(f"/admin/projects/project/{doomed.pk}/delete/", {"post": "yes"}).status_code == 302
    provider.fail_with = None
    assert client.post("/admin/threads/thread/", {"action": "delete_threads", "post": "yes",
                                                  "_selected_action": [str(t.pk) for t in threads[:2]]}).status_code == 302
    pending = DeletionReceipt.objects.get(cleanup_state="pending")
    assert (pending.kind, pending.source, pending.actor) == ("project_delete", "admin", "deleter")
    assert DeletionReceipt.objects.filter(cleanup_state="complete", kind="thread_delete").count() == 1
    return pending


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("who", ["superuser", "limited"])
def test_receipts_in_the_admin(live_server, settings, fake_provider, who):  # noqa: F811
    pending = deletions_through_the_admin(settings, fake_provider)
    total = DeletionReceipt.objects.count()
    viewer = make_staff(who, ["view_deletionreceipt"], suffix="viewer")
    seen = {}

    with chromium_page() as page:
        log_in(page, live_server, viewer)
        page.goto(f"{live_server.url}{RECEIPTS}")
        seen["rows"] = page.locator("#result_list tbody tr").count()
        seen["add_links"] = page.locator("#content a.addlink").count()  # (the sidebar has its own)
        seen["actions"] = page.locator("select[name=action] option").all_inner_texts()
        shot(page, who, "receipts-list")

        # The cleanup-state filter: "pending" finds the cleanup still waiting.
        page.locator("#changelist-filter a", has_text="pending").first.click()
        page.wait_for_url("**cleanup_state__exact=pending**")
        seen["pending_rows"] = page.locator("#result_list tbody tr").count()
        seen["pending_row"] = page.locator("#result_list tbody tr").first.inner_text()
        shot(page, who, "receipts-pending")

        # The receipt's page: who, from where, what, the cleanup's state and error.
        page.locator("#result_list tbody tr th a").first.click()
        page.wait_for_url(f"**{RECEIPTS}{pending.pk}/change/**")
        seen["fields"] = {name: page.locator(f".field-{name} .readonly").inner_text()
                          for name in ("kind", "source", "actor", "actor_id", "account_id", "root_ids", "operation_id",
                                       "threads", "messages", "checkpoints", "projects", "sandboxes",
                                       "cleanup_state", "cleanup_error")}
        seen["buttons"] = page.locator("#content input[type=submit], #content a.deletelink, #content a.addlink").count()
        shot(page, who, "receipt-page")

    assert seen["rows"] == total == 2 and seen["add_links"] == 0
    assert not any("Delete" in a for a in seen["actions"])  # only "Retry the cleanup now"
    assert any("Retry the cleanup now" in a for a in seen["actions"])
    assert seen["pending_rows"] == 1 and "project delete" in seen["pending_row"] and "deleter" in seen["pending_row"]
    fields = seen["fields"]
    assert (fields["kind"], fields["source"], fields["actor"]) == ("project delete", "admin", "deleter")
    assert fields["actor_id"] == str(pending.actor_id) and fields["account_id"] == str(pending.account_id)
    assert str(pending.root_ids[0]) in fields["root_ids"] and fields["operation_id"] == str(pending.operation_id)
    assert {k: fields[k] for k in ("threads", "messages", "checkpoints", "projects", "sandboxes")} == {
        "threads": "3", "messages": "6", "checkpoints": "3", "projects": "1", "sandboxes": "1"}
    assert fields["cleanup_state"] == "pending" and "503" in fields["cleanup_error"]
    assert seen["buttons"] == 0  # nothing to save, delete or add
