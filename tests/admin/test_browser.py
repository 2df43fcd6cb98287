"""The admin in a real browser: headless Debian Chromium driven by Playwright.

No browser download: the test uses Debian's `chromium` package (`.ci/run` installs
it) and is skipped, with the reason, where it is absent.

Playwright's sync API runs an event loop in the test's thread; Django would then
refuse the ORM there, and asgiref would give that code a connection of its own that
nothing closes. So the data is created before the browser starts and checked after
it stops; in between, only the live server (its own thread) touches the database.
"""

import shutil
from contextlib import contextmanager
from pathlib import Path

import pytest

from agents import services as agent_services
from projects.services import create_account, create_project, ensure_user
from threads.models import Message, Thread

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run", "--disable-dev-shm-usage"]
pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not Path(CHROMIUM).exists(),
                       reason="needs Debian's chromium at /usr/bin/chromium (apt-get install chromium)"),
]


@contextmanager
def chromium_page():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            yield browser.new_page()
        finally:
            browser.close()


@pytest.mark.django_db(transaction=True)
def test_staff_deletes_threads_and_sees_protected_agents(live_server):
    staff = ensure_user(username="staff", password="staff-pw-1234")
    staff.is_staff = staff.is_superuser = True
    staff.save()
    account = create_account(name="Browser Co", owner=staff)
    project = create_project(account=account, name="Demo")
    keep = Thread.objects.create(account=account, project=project, title="keep me")
    doomed = [Thread.objects.create(account=account, project=project, title=f"doomed {i}") for i in range(2)]
    for t in doomed:  # numbered as the services number them (the thread's last seq counts them)
        Message.objects.bulk_create(Message(thread=t, seq=i + 1, role="user", content=[]) for i in range(3))
        Thread.objects.filter(pk=t.pk).update(last_message_seq=3)
    default = agent_services.create_agent(account=account, name="Default agent", model="m", is_default=True)
    ARTIFACTS.mkdir(exist_ok=True)

    with chromium_page() as page:
        page.goto(f"{live_server.url}/admin/login/?next=/admin/threads/thread/")
        page.fill("#id_username", "staff")
        page.fill("#id_password", "staff-pw-1234")
        page.click("input[type=submit]")
        page.wait_for_url("**/admin/threads/thread/")
        for t in doomed:
            page.check(f"input[name=_selected_action][value='{t.pk}']")
        page.select_option("select[name=action]", "delete_threads")
        page.click("button[name=index]")
        page.wait_for_selector("text=Delete 2 threads?")
        impact = {what: page.inner_text(f"#impact td[data-what={what}]") for what in ("threads", "messages")}
        page.click("input[type=submit][value='Yes, delete them']")
        page.wait_for_selector("text=2 threads deleted.")
        page.screenshot(path=str(ARTIFACTS / "admin-threads-deleted.png"), full_page=True)
        listed = page.locator("input[name=_selected_action]").evaluate_all("boxes => boxes.map(b => b.value)")

        page.goto(f"{live_server.url}/admin/agents/agent/{default.pk}/change/")
        page.wait_for_selector("text=Default agent")
        delete_links = page.locator("a.deletelink").count()
        page.screenshot(path=str(ARTIFACTS / "admin-default-agent.png"), full_page=True)

    assert impact == {"threads": "2", "messages": "6"}
    assert listed == [str(keep.pk)]
    assert list(Thread.objects.values_list("pk", flat=True)) == [keep.pk]
    assert delete_links == 0
