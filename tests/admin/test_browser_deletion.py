"""Deleting projects, accounts and agents, and following background jobs, in a real
browser (headless Debian Chromium driven by Playwright), as a superuser and as staff
holding only view and delete permissions on those models.

As in test_browser.py, data is created before the browser starts and checked after
it stops (Playwright's event loop and the ORM do not share a thread); the expected
numbers are counted here, independently of the pages' own queries. Screenshots of
every page go to test-artifacts/.
"""

import re
from collections import Counter

import pytest
from django.contrib.auth.models import Permission

from agents import services as agent_services
from agents.models import Agent
from jobs.models import Job, JobTarget
from projects.models import Account, Project
from projects.services import create_account, create_project, ensure_user
from receipts.models import DeletionReceipt
from tests.admin.test_browser import ARTIFACTS, CHROMIUM, chromium_page  # noqa: F401 (skip rule)
from tests.admin.test_browser import pytestmark as browser_marks
from tests.conftest import wait_for
from tests.threads.test_prune import make_threads
from threads.models import Checkpoint, Message, Run, Thread

pytestmark = browser_marks
PASSWORD = "browser-pw-1234"
LIMITED_PERMISSIONS = [f"{verb}_{model}" for verb in ("view", "delete")
                       for model in ("project", "account", "agent", "thread")]


def make_staff(kind: str, permissions=LIMITED_PERMISSIONS, suffix: str = "staff"):
    """A superuser, or (any other `kind`) staff holding only `permissions`."""
    user = ensure_user(username=f"{kind}-{suffix}", password=PASSWORD)
    user.is_staff = True
    user.is_superuser = kind == "superuser"
    user.save()
    if kind != "superuser":
        user.user_permissions.add(*Permission.objects.filter(codename__in=permissions))
    return user


def log_in(page, live_server, user):
    page.goto(f"{live_server.url}/admin/login/?next=/admin/")
    page.fill("#id_username", user.username)
    page.fill("#id_password", PASSWORD)
    page.click("input[type=submit]")
    page.wait_for_url("**/admin/")


def numbers(page) -> dict:
    """The confirmation table, by row key (the number as shown, with separators)."""
    cells = page.locator("#impact td[data-what]")
    return {cells.nth(i).get_attribute("data-what"): cells.nth(i).inner_text() for i in range(cells.count())}


def shot(page, who, name):
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"admin-{who}-{name}.png"), full_page=True)


def messages_shown(page) -> list:
    return page.locator("ul.messagelist li").all_inner_texts()


def bulk(page, live_server, changelist, ids, action):
    page.goto(f"{live_server.url}{changelist}")
    for pk in ids:
        page.check(f"input[name=_selected_action][value='{pk}']")
    page.select_option("select[name=action]", action)
    page.click("button[name=index]")
    page.wait_for_selector("#impact")


def confirm_and_follow_job(page, label, keys=("done", "total", "percent", "affected")) -> dict:
    """Click the confirmation's `label` button, follow to the job's page and wait for
    it to finish; its counters as shown."""
    page.click(f"input[type=submit][value='{label}']")
    page.wait_for_url(re.compile(r".*/admin/jobs/job/[0-9a-f-]+/change/$"))
    page.wait_for_selector("#job[data-state=done]", timeout=30_000)
    return {key: page.inner_text(f"#job-{key}") for key in keys}


def counted(threads_filter) -> dict:
    """The numbers a confirmation must show, counted straight from the tables."""
    threads = Thread.objects.filter(**threads_filter)
    return {"threads": f"{threads.count():,}",
            "messages": f"{Message.objects.filter(thread__in=threads).count():,}",
            "runs": f"{Run.objects.filter(thread__in=threads).count():,}",
            "checkpoints": f"{Checkpoint.objects.filter(thread__in=threads).count():,}"}


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("who", ["superuser", "limited"])
def test_delete_projects_accounts_agents(live_server, who):
    user = make_staff(who)
    owner = ensure_user(username=f"owner-{who}")
    acme = create_account(name="Acme", owner=owner)
    solo = create_project(account=acme, name="Solo project")
    make_threads(solo, 3, messages=4, checkpoints=2)
    bulk_projects = [create_project(account=acme, name=f"Bulk project {i}") for i in range(12)]
    for p in bulk_projects[:2]:
        make_threads(p, 2, messages=1_200)  # thousands of messages: separators shown
    kept_project = create_project(account=acme, name="Kept project")
    make_threads(kept_project, 1)
    doomed_account = create_account(name="Doomed Co", owner=owner)
    make_threads(create_project(account=doomed_account, name="Doomed project"), 2, messages=2)
    bulk_accounts = [create_account(name=f"Bulk Co {i}", owner=owner) for i in range(2)]
    for a in bulk_accounts:
        make_threads(create_project(account=a, name="Work"), 1, messages=1)
    plain = agent_services.create_agent(account=acme, name="Plain agent", model="m")
    plain_thread = make_threads(kept_project, 1)[0]
    Thread.objects.filter(pk=plain_thread.pk).update(agent=plain)
    others = [agent_services.create_agent(account=acme, name=f"Bulk agent {i}", model="m") for i in range(2)]
    default = agent_services.create_agent(account=acme, name="Default agent", model="m", is_default=True)
    system = agent_services.create_agent(account=acme, name="System agent", model="m",
                                         metadata={"is_system": True})
    expected = {
        "solo": {**counted({"project": solo}), "projects": "1"},
        "bulk_projects": {**counted({"project__in": bulk_projects}), "projects": "12"},
        "doomed_account": {**counted({"account": doomed_account}), "accounts": "1", "projects": "1"},
        "bulk_accounts": {**counted({"account__in": bulk_accounts}), "accounts": "2"},
    }
    seen, said = {}, {}

    with chromium_page() as page:
        log_in(page, live_server, user)

        # A project from its page.
        page.goto(f"{live_server.url}/admin/projects/project/{solo.pk}/change/")
        page.click("a.deletelink")
        page.wait_for_selector("#impact")
        seen["solo"] = numbers(page)
        seen["solo_named"] = page.locator("h1").inner_text()
        shot(page, who, "project-delete-confirm")
        page.click("input[type=submit][value='Yes, delete it']")
        page.wait_for_selector("ul.messagelist")
        said["solo"] = messages_shown(page)
        shot(page, who, "project-deleted")

        # Projects with the bulk action: the first ten named, "and 2 more".
        bulk(page, live_server, "/admin/projects/project/", [p.pk for p in bulk_projects], "delete_with_service")
        seen["bulk_projects"] = numbers(page)
        seen["bulk_projects_named"] = page.locator("#named-objects li").all_inner_texts()
        shot(page, who, "projects-bulk-confirm")
        page.click("input[type=submit][value='Yes, delete them']")
        page.wait_for_selector("ul.messagelist")
        said["bulk_projects"] = messages_shown(page)
        shot(page, who, "projects-bulk-deleted")

        # An account from its page, then two with the bulk action.
        page.goto(f"{live_server.url}/admin/projects/account/{doomed_account.pk}/change/")
        page.click("a.deletelink")
        page.wait_for_selector("#impact")
        seen["doomed_account"] = numbers(page)
        shot(page, who, "account-delete-confirm")
        page.click("input[type=submit][value='Yes, delete it']")
        page.wait_for_selector("ul.messagelist")
        said["doomed_account"] = messages_shown(page)
        bulk(page, live_server, "/admin/projects/account/", [a.pk for a in bulk_accounts], "delete_with_service")
        seen["bulk_accounts"] = numbers(page)
        shot(page, who, "accounts-bulk-confirm")
        page.click("input[type=submit][value='Yes, delete them']")
        page.wait_for_selector("ul.messagelist")
        said["bulk_accounts"] = messages_shown(page)
        shot(page, who, "accounts-bulk-deleted")

        # An agent from its page; its thread stays, closed.
        page.goto(f"{live_server.url}/admin/agents/agent/{plain.pk}/change/")
        page.click("a.deletelink")
        page.wait_for_selector("#impact")
        seen["plain"] = numbers(page)
        shot(page, who, "agent-delete-confirm")
        page.click("input[type=submit][value='Yes, delete it']")
        page.wait_for_selector("ul.messagelist")
        said["plain"] = messages_shown(page)

        # Protected agents: no delete button, the reason on the page and on the delete URL.
        page.goto(f"{live_server.url}/admin/agents/agent/{default.pk}/change/")
        seen["default_delete_links"] = page.locator("a.deletelink").count()
        seen["default_protection"] = page.locator(".field-protection").inner_text()
        shot(page, who, "agent-protected")
        page.goto(f"{live_server.url}/admin/agents/agent/{system.pk}/delete/")
        seen["system_refusal"] = page.locator("#refused-objects").inner_text()
        seen["system_confirm_buttons"] = page.locator("input[type=submit][value='Yes, delete it']").count()
        shot(page, who, "agent-protected-delete-refused")

        # Agents with the bulk action: the protected ones refused, with their reasons.
        bulk(page, live_server, "/admin/agents/agent/", [a.pk for a in [*others, default, system]], "delete_agents")
        seen["agents_bulk"] = numbers(page)
        seen["agents_refused"] = page.locator("#refused-objects li").all_inner_texts()
        shot(page, who, "agents-bulk-confirm")
        page.click("input[type=submit][value='Yes, delete them']")
        page.wait_for_selector("ul.messagelist")
        said["agents_bulk"] = messages_shown(page)
        shot(page, who, "agents-bulk-deleted")

    for key in ("solo", "bulk_projects", "doomed_account", "bulk_accounts"):
        assert {k: seen[key][k] for k in expected[key]} == expected[key], key
    assert expected["bulk_projects"]["messages"] == "4,800"
    assert seen["solo_named"] == "Delete project “Solo project”?"
    assert seen["bulk_projects_named"][:2] == ["Bulk project 0", "Bulk project 1"]
    assert len(seen["bulk_projects_named"]) == 11 and seen["bulk_projects_named"][-1] == "and 2 more"
    assert said["solo"] == ["1 project deleted (3 threads)."]
    assert said["bulk_projects"] == ["12 projects deleted (4 threads)."]
    assert said["doomed_account"] == ["1 account deleted (2 threads)."]
    assert said["bulk_accounts"] == ["2 accounts deleted (2 threads)."]
    assert list(Project.objects.filter(account=acme)) == [kept_project]
    assert set(Account.objects.values_list("name", flat=True)) == {"Acme"}
    assert seen["plain"]["threads_closed"] == "1" and said["plain"][0].startswith("Agent “Plain agent” deleted")
    plain_thread.refresh_from_db()
    assert plain_thread.agent_id is None and plain_thread.status == "closed"
    assert seen["default_delete_links"] == 0 and "Cannot delete default agent" in seen["default_protection"]
    assert "Cannot delete a system agent" in seen["system_refusal"] and seen["system_confirm_buttons"] == 0
    assert seen["agents_bulk"]["agents"] == "2" and seen["agents_bulk"]["refused"] == "2"
    assert sorted(seen["agents_refused"]) == ["Default agent: Cannot delete default agent. Unset it as default first.",
                                              "System agent: Cannot delete a system agent."]
    assert any(m.startswith("2 agents deleted") for m in said["agents_bulk"])
    assert set(Agent.objects.values_list("name", flat=True)) == {"Default agent", "System agent"}
    receipts = list(DeletionReceipt.objects.filter(actor=user.username))  # one per deletion, as this staff user
    assert {r.source for r in receipts} == {"admin"}
    assert Counter(r.kind for r in receipts) == {"project_delete": 13, "account_delete": 3, "agent_delete": 3}
    solo_receipt = next(r for r in receipts if r.root_ids == [str(solo.pk)])
    assert (solo_receipt.projects, solo_receipt.threads, solo_receipt.messages, solo_receipt.checkpoints) == (1, 3, 12, 6)
    account_receipt = next(r for r in receipts if r.root_ids == [str(doomed_account.pk)])
    assert (account_receipt.kind, account_receipt.threads, account_receipt.messages) == ("account_delete", 2, 4)


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("who", ["superuser", "limited"])
def test_bulk_delete_over_threshold_runs_as_a_job(live_server, settings, who):
    """In-process tasks (the embedded defaults) or a worker: the job page ends at 100%."""
    settings.BACKGROUND_JOBS = {"threshold": 5, "batch_size": 3}
    user = make_staff(who)
    project = create_project(account=create_account(name="Jobs Co", owner=user), name="Many")
    doomed = make_threads(project, 10, messages=2)
    keep = make_threads(project, 1)[0]
    with chromium_page() as page:
        log_in(page, live_server, user)
        page.goto(f"{live_server.url}/admin/threads/thread/")
        page.check("#action-toggle")
        page.uncheck(f"input[name=_selected_action][value='{keep.pk}']")
        page.select_option("select[name=action]", "delete_threads")
        page.click("button[name=index]")
        page.wait_for_selector("#background-note")
        shot(page, who, "threads-job-confirm")
        shown = confirm_and_follow_job(page, "Yes, delete them", ("state", "done", "total", "percent", "receipts"))
        bar = page.get_attribute("#job-bar", "value")
        receipts_links = page.locator("#job-receipts-link").count()
        shot(page, who, "job-done")
        job_url = page.url
        if who == "superuser":  # the receipts the job wrote, one click away
            page.click("#job-receipts-link")
            page.wait_for_selector("#result_list")
            listed = page.locator("#result_list tbody tr").count()
            shot(page, who, "job-receipts")
            page.goto(job_url)
        # The breadcrumbs lead to a jobs list this user can open: their own jobs.
        page.click("ol.breadcrumbs a:text-is('Jobs')")
        page.wait_for_selector("#result_list")
        jobs_listed = page.locator("#result_list tbody tr").all_inner_texts()
        shot(page, who, "jobs-list")
    job = Job.objects.get()
    assert shown == {"state": "Done", "done": "10", "total": "10", "percent": "100.0", "receipts": "4"}
    assert float(bar) == 100 and receipts_links == (1 if who == "superuser" else 0)  # no receipts permission: no link
    assert who == "limited" or listed == 4
    assert len(jobs_listed) == 1 and "Delete 10 threads" in jobs_listed[0]
    assert (job.state, job.done, job.batches, job.created_by_id) == ("done", 10, 4, user.pk)
    assert list(Thread.objects.all()) == [keep] and not Message.objects.filter(thread__in=doomed).exists()
    receipts = DeletionReceipt.objects.filter(operation_id=job.pk)
    assert {(r.source, r.actor, r.kind) for r in receipts} == {("admin", user.username, "thread_delete")}
    assert sum(r.threads for r in receipts) == 10 and {r.cleanup_state for r in receipts} == {"complete"}


def select_all_and_run(page, action: str) -> None:
    """On a changelist: tick the page, take "Select all N" across pages, run `action`."""
    page.check("#action-toggle")
    page.click("span.question a")
    page.select_option("select[name=action]", action)
    page.click("button[name=index]")


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_job_page_follows_progress_live_and_cancels_between_batches(live_server, celery_worker_process, settings):
    """A real worker deletes 3,000 threads in batches of 25: the page's numbers move
    while it runs (no reload), Cancel stops it after a whole batch."""
    settings.BACKGROUND_JOBS = {"threshold": 1000, "batch_size": 25}
    user = make_staff("limited")
    project = create_project(account=create_account(name="Live Co", owner=user), name="Big")
    threads = make_threads(project, 3000, messages=2, checkpoints=1)
    with chromium_page() as page:
        log_in(page, live_server, user)
        page.goto(f"{live_server.url}/admin/threads/thread/")
        select_all_and_run(page, "delete_threads")
        page.wait_for_selector("#background-note")
        confirm = numbers(page)
        page.click("input[type=submit][value='Yes, delete them']")
        page.wait_for_url(re.compile(r".*/admin/jobs/job/[0-9a-f-]+/change/$"))
        first = page.inner_text("#job-done")
        page.wait_for_function(
            "(first) => parseInt(document.getElementById('job-done').textContent.replace(/,/g, '')) > Math.max(first, 99)",
            arg=int(first.replace(",", "")), timeout=60_000,
        )
        moving = {key: page.inner_text(f"#job-{key}") for key in ("state", "done", "total", "rate", "eta")}
        shot(page, "limited", "job-running")
        page.click("#job-cancel input[type=submit]")
        page.wait_for_selector("#job[data-state=cancelled]", timeout=60_000)
        final = {key: page.inner_text(f"#job-{key}") for key in ("state", "done", "total", "receipts")}
        shot(page, "limited", "job-cancelled")
    job = Job.objects.get()
    assert confirm["threads"] == "3,000" and moving["total"] == "3,000" and moving["state"] == "Running"
    assert first != moving["done"] and moving["rate"] != "0" and moving["eta"] != "—"
    assert job.state == "cancelled" and 0 < job.done < 3000 and job.done % 25 == 0
    assert final == {"state": "Cancelled", "done": f"{job.done:,}", "total": "3,000", "receipts": f"{job.batches:,}"}
    left = Thread.objects.count()
    assert left == 3000 - job.done  # whole batches: every thread gone with all it held, or intact
    assert Message.objects.count() == 2 * left and Checkpoint.objects.count() == left
    assert not JobTarget.objects.exists()
    # The receipts are exactly what went: one per batch, 25 threads each, naming the
    # threads deleted and none of those left.
    receipts = list(DeletionReceipt.objects.filter(operation_id=job.pk))
    assert len(receipts) == job.batches and {r.threads for r in receipts} == {25}
    assert {(r.kind, r.source, r.actor) for r in receipts} == {("thread_delete", "admin", user.username)}
    # Their cleanup (the embeddings) is a task per batch, queued behind the job: it completes.
    assert wait_for(lambda: not DeletionReceipt.objects.filter(cleanup_state="pending").exists(), timeout=60)
    assert sum(r.threads for r in receipts) == job.done == 3000 - left
    assert sum(r.messages for r in receipts) == 2 * job.done and sum(r.checkpoints for r in receipts) == job.done
    named = [i for r in receipts for i in r.root_ids]
    gone = {str(t.pk) for t in threads} - {str(pk) for pk in Thread.objects.values_list("pk", flat=True)}
    assert len(named) == len(set(named)) and set(named) == gone
    assert DeletionReceipt.objects.count() == job.batches  # nothing else wrote one


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("who", ["superuser", "limited"])
def test_closing_threads_and_deleting_agents_over_threshold_run_as_jobs(live_server, settings, who):
    """Close selected threads, then Delete selected agents (one protected): each above
    the threshold, each a job whose page ends at 100 % with its receipts."""
    settings.BACKGROUND_JOBS = {"threshold": 5, "batch_size": 3}
    user = make_staff(who)
    account = create_account(name="Jobs Co", owner=user)
    project = create_project(account=account, name="Many")
    to_close = make_threads(project, 7)
    agent = agent_services.create_agent(account=account, name="Busy agent", model="m")
    agent_threads = make_threads(project, 8, messages=1, agent=agent)
    default = agent_services.create_agent(account=account, name="Default agent", model="m", is_default=True)
    seen = {}
    with chromium_page() as page:
        log_in(page, live_server, user)
        page.goto(f"{live_server.url}/admin/threads/thread/?agent__isnull=True")
        page.check("#action-toggle")
        page.select_option("select[name=action]", "close_threads")
        page.click("button[name=index]")
        page.wait_for_selector("#background-note")
        seen["close_confirm"] = numbers(page)
        shot(page, who, "threads-close-job-confirm")
        seen["close"] = confirm_and_follow_job(page, "Yes, close them")
        shot(page, who, "threads-close-job-done")

        bulk(page, live_server, "/admin/agents/agent/", [agent.pk, default.pk], "delete_agents")
        page.wait_for_selector("#background-note")
        seen["agents_confirm"] = numbers(page)
        shot(page, who, "agents-job-confirm")
        seen["agents"] = confirm_and_follow_job(page, "Yes, delete them")
        seen["agents_messages"] = messages_shown(page)
        shot(page, who, "agents-job-done")
    close_job, agents_job = Job.objects.order_by("created_at")
    assert seen["close_confirm"]["idle"] == "7"
    assert seen["close"] == {"done": "7", "total": "7", "percent": "100.0", "affected": "7"}
    assert (close_job.kind, close_job.state) == ("close_threads", "done")
    assert set(Thread.objects.filter(pk__in=[t.pk for t in to_close]).values_list("status", flat=True)) == {"closed"}
    receipts = DeletionReceipt.objects.filter(operation_id=close_job.pk)
    assert sum(r.threads_closed for r in receipts) == 7 and {r.actor for r in receipts} == {user.username}
    assert (seen["agents_confirm"]["threads_kept"], seen["agents_confirm"]["refused"]) == ("8", "1")
    assert seen["agents"] == {"done": "8", "total": "8", "percent": "100.0", "affected": "8"}
    assert any("“Default agent” refused" in m for m in seen["agents_messages"])
    assert (agents_job.kind, agents_job.state) == ("delete_agents", "done")
    assert list(Agent.objects.values_list("name", flat=True)) == ["Default agent"]
    kept = Thread.objects.filter(pk__in=[t.pk for t in agent_threads])
    assert set(kept.values_list("status", "agent")) == {("closed", None)} and kept.count() == 8
    receipts = DeletionReceipt.objects.filter(operation_id=agents_job.pk)
    assert {r.kind for r in receipts} == {"agent_delete"} and sum(r.threads_closed for r in receipts) == 8
    assert sum(r.agents for r in receipts) == 1


@pytest.mark.django_db(transaction=True)
def test_select_all_deletes_only_what_the_page_counted(live_server):
    """"Select all" matching a search, in the browser: a thread that starts to match
    while the confirmation page is read (created through the API) is not deleted."""
    import httpx
    from rest_framework_simplejwt.tokens import RefreshToken

    user = make_staff("superuser")
    project = create_project(account=create_account(name="Pin Co", owner=user), name="P")
    make_threads(project, 60, messages=1, title="batch")
    other = make_threads(project, 1, title="other")[0]
    token = str(RefreshToken.for_user(user).access_token)
    with chromium_page() as page:
        log_in(page, live_server, user)
        page.goto(f"{live_server.url}/admin/threads/thread/?q=batch")
        select_all_and_run(page, "delete_threads")
        page.wait_for_selector("text=Delete 60 threads?")
        confirmed = numbers(page)["threads"]
        late = httpx.post(f"{live_server.url}/api/threads", headers={"Authorization": f"Bearer {token}"},
                          json={"project_id": str(project.pk), "title": "batch late"}, timeout=30)
        page.click("input[type=submit][value='Yes, delete them']")
        page.wait_for_selector("ul.messagelist li")
        shown = messages_shown(page)
    assert late.status_code == 201, late.text
    assert confirmed == "60" and shown == ["60 threads deleted."]
    assert set(Thread.objects.values_list("title", flat=True)) == {"other", "batch late"}
    assert Thread.objects.filter(pk=other.pk).exists()
