"""The admin in a real browser: headless Debian Chromium driven by Playwright.

No browser download: the test uses /usr/bin/chromium (`.ci/run` installs Debian's
`chromium` package) and is skipped, with the reason, where it is absent.
"""

import os
import shutil
from pathlib import Path

import pytest

from agents import services as agent_services
from projects.services import create_account, create_project, ensure_user
from threads.models import Message, Thread

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="Debian's chromium is not installed"),
]


@pytest.fixture
def browser_page():
    # Playwright's sync API runs an event loop in this thread; the live server and the
    # ORM calls of this test are plain sync code in a test, not in an async context.
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=CHROMIUM, headless=True,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                  "--disable-sync", "--no-first-run", "--disable-dev-shm-usage"],
        )
        page = browser.new_page()
        try:
            yield page
        finally:
            browser.close()
            os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)


@pytest.mark.django_db(transaction=True)
def test_staff_deletes_threads_and_sees_protected_agents(live_server, browser_page):
    staff = ensure_user(username="staff", password="staff-pw-1234")
    staff.is_staff = staff.is_superuser = True
    staff.save()
    account = create_account(name="Browser Co", owner=staff)
    project = create_project(account=account, name="Demo")
    keep = Thread.objects.create(account=account, project=project, title="keep me")
    doomed = [Thread.objects.create(account=account, project=project, title=f"doomed {i}") for i in range(2)]
    for t in doomed:
        Message.objects.bulk_create(Message(thread=t, seq=i + 1, role="user", content=[]) for i in range(3))
    default = agent_services.create_agent(account=account, name="Default agent", model="m", is_default=True)

    page = browser_page
    page.goto(f"{live_server.url}/admin/login/?next=/admin/threads/thread/")
    page.fill("#id_username", "staff")
    page.fill("#id_password", "staff-pw-1234")
    page.click("input[type=submit]")
    page.wait_for_url("**/admin/threads/thread/")
    for t in doomed:
        page.check(f"input[name=_selected_action][value='{t.pk}']")
    page.select_option("select[name=action]", "delete_threads")
    page.click("button[name=index]")
    page.wait_for_selector("text=Delete threads?")
    assert page.locator("#impact").inner_text().count("6") >= 1  # 6 messages
    page.click("input[type=submit][value='Yes, delete them']")
    page.wait_for_selector("text=2 thread(s) deleted.")
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "admin-threads-deleted.png"), full_page=True)
    assert list(Thread.objects.values_list("pk", flat=True)) == [keep.pk]
    assert page.locator(f"input[name=_selected_action][value='{doomed[0].pk}']").count() == 0

    page.goto(f"{live_server.url}/admin/agents/agent/{default.pk}/change/")
    page.wait_for_selector("text=Default agent")
    assert page.locator("a.deletelink").count() == 0
    page.screenshot(path=str(ARTIFACTS / "admin-default-agent.png"), full_page=True)
