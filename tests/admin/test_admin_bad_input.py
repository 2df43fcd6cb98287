"""The admin answers a hand-edited URL or form with a page and a message, never a 500;
and what staff change there reaches the API at once."""

import pytest
from django.contrib import admin
from django.core.cache import cache
from rest_framework_simplejwt.token_blacklist.models import OutstandingToken

from agents import caches as agent_caches
from agents import services as agent_services
from projects import caches
from projects.models import Account, Membership
from projects.services import delete_account
from sandboxes.models import Sandbox
from tests.admin import test_admin
from threads.models import Thread

pytestmark = pytest.mark.django_db
THREADS = "/admin/threads/thread/"
staff, texts = test_admin.staff, test_admin.texts  # the superuser's client; the messages a page shows


@pytest.mark.parametrize("url", [
    THREADS, "/admin/agents/agent/", "/admin/projects/project/", "/admin/projects/membership/",
    "/admin/sandboxes/sandbox/", "/admin/receipts/deletionreceipt/", "/admin/auth/user/", "/admin/jobs/job/",
    "/admin/token_blacklist/outstandingtoken/",
])
def test_a_lookup_that_fails_only_when_compiled_is_refused_like_any_bad_lookup(staff, url):
    """`?created_at__year=99999` passed Django's lookup check and failed while the page
    rendered ("year 99999 is out of range"): now Django's answer to a bad lookup."""
    field = "date_joined" if "auth/user" in url else "created_at"
    r = staff.get(url, {f"{field}__year": "99999"})
    assert r.status_code == 302 and r.url.endswith("?e=1")
    assert staff.get(url, {f"{field}__year": "2026"}).status_code == 200


def test_action_ids_that_cannot_be_keys_are_left_out(staff, project):
    thread = Thread.objects.create(account=project.account, project=project, title="real")
    Thread.objects.create(account=project.account, project=project, title="keeps the project")
    r = staff.post(THREADS, {"action": "delete_threads", "_selected_action": ["notauuid", str(thread.pk)],
                             "post": "yes"}, follow=True)
    assert r.status_code == 200 and "1 thread deleted." in texts(r)
    assert not Thread.objects.filter(pk=thread.pk).exists()
    r = staff.post(THREADS, {"action": "delete_threads", "_selected_action": ["notauuid"], "index": "0"}, follow=True)
    assert r.status_code == 200
    sandbox = Sandbox.objects.create(project=project)
    for url, act, bad in [("/admin/sandboxes/sandbox/", "retry_deletion", "notauuid"),
                          ("/admin/projects/membership/", "delete_selected", "notanint"),
                          ("/admin/agents/agent/", "export_agents", "notauuid"),
                          ("/admin/token_blacklist/outstandingtoken/", "delete_selected", "notanint")]:
        r = staff.post(url, {"action": act, "_selected_action": [bad], "index": "0"})
        assert r.status_code in (200, 302), (url, r.status_code)
    assert Sandbox.objects.filter(pk=sandbox.pk).exists()
    assert admin.site._registry[OutstandingToken].is_key("12") is True


@pytest.mark.parametrize("shown_at", ["2026-13-45T00:00:00", "2026-02-30T10:00:00"])
def test_an_altered_confirmation_page_does_nothing_and_says_so(staff, project, shown_at):
    threads = [Thread.objects.create(account=project.account, project=project, title=f"t{i}") for i in range(2)]
    r = staff.post(THREADS, {"action": "delete_threads", "select_across": "1", "index": "0", "post": "yes",
                             "shown_at": shown_at, "_selected_action": [str(threads[0].pk)]}, follow=True)
    assert r.status_code == 200
    assert any("The confirmation page was altered" in text for text in texts(r))
    assert Thread.objects.filter(pk__in=[t.pk for t in threads]).count() == 2


def test_a_thread_deleted_from_its_page_in_a_second_tab_is_reported_as_gone(staff, project):
    thread = Thread.objects.create(account=project.account, project=project, title="twice")
    Thread.objects.create(account=project.account, project=project, title="keeps the project")
    url = f"{THREADS}{thread.pk}/delete/"
    page = staff.get(url)  # two tabs on the page
    assert page.status_code == 200
    assert "Thread “twice” deleted." in texts(staff.post(url, {"post": "yes"}, follow=True))
    second = staff.post(url, {"post": "yes"}, follow=True)  # the second tab
    assert second.status_code == 200 and any("Perhaps it was deleted?" in text for text in texts(second))


def test_agents_already_deleted_are_not_exported_and_the_page_says_so(staff, account):
    gone = agent_services.create_agent(account=account, name="Gone", model="m")
    kept = agent_services.create_agent(account=account, name="Kept", model="m")
    gone_id = gone.pk
    agent_services.delete_agent(agent=gone)
    r = staff.post("/admin/agents/agent/", {"action": "export_agents", "_selected_action": [str(gone_id)]},
                   follow=True)
    assert r.status_code == 200 and "1 selected agent not exported: already deleted." in texts(r)
    r = staff.post("/admin/agents/agent/", {"action": "export_agents",
                                            "_selected_action": [str(gone_id), str(kept.pk)]})
    assert r.status_code == 200 and r["Content-Disposition"] == f'attachment; filename="agent-{kept.pk}.json"'


def test_the_admins_unknown_pages_are_pages(staff):
    r = staff.get("/admin/nosuchapp/")
    assert r.status_code == 404 and r["Content-Type"].startswith("text/html")
    api = staff.get("/api/nosuchthing")
    assert api.status_code == 404 and api.json() == {"detail": "Not found."}


def test_limits_changed_in_the_admin_reach_the_usage_at_once(staff, account, api, django_capture_on_commit_callbacks):
    url = f"/api/accounts/{account.pk}/usage"
    before = api.get(url).json()["limits"]
    form = staff.get(f"/admin/projects/account/{account.pk}/change/").context["adminform"].form
    data = {**{k: v for k, v in form.initial.items() if v is not None}, "name": account.name,
            "thread_limit": 12, "agent_limit": 2}
    data.update({"memberships-TOTAL_FORMS": "0", "memberships-INITIAL_FORMS": "0"})
    with django_capture_on_commit_callbacks(execute=True):
        r = staff.post(f"/admin/projects/account/{account.pk}/change/", data, follow=True)
    assert r.status_code == 200, r.context["adminform"].form.errors if r.context else r
    assert before != {"threads": 12, "agents": 2}
    assert api.get(url).json()["limits"] == {"threads": 12, "agents": 2}


def test_a_deleted_accounts_cache_keys_go_with_it(account, project, django_capture_on_commit_callbacks):
    agent = agent_services.create_agent(account=account, name="A", model="m")
    Thread.objects.create(account=account, project=project, title="t")
    agent_caches.agent_config(agent)
    caches.thread_slots_used(account.pk)
    caches.account_state(account)
    keys = [agent_caches.config_key(agent.pk, agent.current_version), caches.slots_key(account.pk),
            caches.account_state_key(account.pk)]
    assert all(cache.get(key) is not None for key in keys)
    with django_capture_on_commit_callbacks(execute=True):
        delete_account(account=Account.objects.get(pk=account.pk))
    assert [key for key in keys if cache.get(key) is not None] == []
    assert not Membership.objects.filter(account_id=account.pk).exists()
