"""In a real browser (headless Debian Chromium, as test_browser_deletion.py): an
account's last owner cannot be demoted in its members inline nor have their
membership deleted."""

import pytest

from projects.models import Membership
from projects.services import create_account
from tests.admin.test_browser import chromium_page  # noqa: F401 (skip rule)
from tests.admin.test_browser import pytestmark as browser_marks
from tests.admin.test_browser_deletion import log_in, make_staff, shot

pytestmark = browser_marks


@pytest.mark.django_db(transaction=True)
def test_the_last_owner_stays_in_the_browser(live_server):
    user = make_staff("superuser", suffix="owners")
    account = create_account(name="Solo Co", owner=user)
    last = Membership.objects.get(account=account)

    with chromium_page() as page:
        log_in(page, live_server, user)
        page.goto(f"{live_server.url}/admin/projects/account/{account.pk}/change/")
        page.select_option("select[name='memberships-0-role']", "viewer")
        page.click("input[name=_save]")
        page.wait_for_selector(".errornote")
        inline_error = page.locator(".inline-group .errorlist").first.inner_text()
        shot(page, "superuser", "account-last-owner-demoted")

        page.goto(f"{live_server.url}/admin/projects/membership/{last.pk}/delete/")
        refused = page.locator("#content").inner_text()
        confirm_buttons = page.locator("#content input[type=submit]").count()
        shot(page, "superuser", "membership-last-owner-delete")

    reason = "Account “Solo Co”: superuser-owners is its last owner — add another owner, or delete the account first."
    assert inline_error == reason
    assert reason in refused and confirm_buttons == 0
    assert Membership.objects.get(pk=last.pk).role == "owner"
