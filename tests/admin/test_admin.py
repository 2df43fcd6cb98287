"""The admin: list pages, the destructive actions through the services, protections."""

import json
import re

import pytest
from django.contrib.auth.models import Permission
from django.contrib.messages import get_messages

from agents import services as agent_services
from jobs.models import Job, JobKind
from projects.models import Project
from projects.services import create_project, ensure_user
from sandboxes.models import Sandbox
from threads import services
from threads.models import Checkpoint, Message, Run, Thread

pytestmark = pytest.mark.django_db
THREADS = "/admin/threads/thread/"


@pytest.fixture
def staff(client):
    user = ensure_user(username="staff", password="pw-1234")
    user.is_staff = user.is_superuser = True
    user.save()
    client.force_login(user)
    return client


def make_threads(project, n, messages=2, checkpoints=0):
    threads = [Thread.objects.create(account=project.account, project=project, title=f"t{i}", last_message_seq=messages)
               for i in range(n)]
    for t in threads:
        Message.objects.bulk_create(Message(thread=t, seq=i + 1, role="user", content=[]) for i in range(messages))
        Checkpoint.objects.bulk_create(Checkpoint(thread=t, checkpoint_id=f"c{i}") for i in range(checkpoints))
    return threads


def action(client, name, threads, confirm=False):
    data = {"action": name, "_selected_action": [str(t.pk) for t in threads]}
    if confirm:
        data["post"] = "yes"
    return client.post(THREADS, data, follow=confirm)


def texts(response):
    return [str(m) for m in get_messages(response.wsgi_request)]


def impact(response) -> dict:
    """The confirmation page's numbers, by row key."""
    return {key: int(value) for key, value in re.findall(r'data-what="(\w+)" data-value="(\d+)"', response.content.decode())}


def staff_with(client, *codenames):
    user = ensure_user(username="helpdesk", password="pw-1234")
    user.is_staff = True
    user.save()
    user.user_permissions.add(*Permission.objects.filter(codename__in=codenames))
    client.force_login(user)
    return client


@pytest.mark.parametrize("n", [5, 50])
def test_thread_list_costs_constant_queries(staff, project, n, django_assert_max_num_queries):
    make_threads(project, n)
    with django_assert_max_num_queries(12):
        r = staff.get(THREADS)
    assert r.status_code == 200 and r.content.count(b'class="field-message_count"') == n


def test_thread_list_filters_and_search(staff, project, account):
    a, b = make_threads(project, 2)
    Thread.objects.filter(pk=a.pk).update(metadata={"customer": "zebra-co"}, status="closed")
    assert str(a.pk) in staff.get(THREADS, {"q": "zebra"}).content.decode()
    assert str(b.pk) not in staff.get(THREADS, {"q": "zebra"}).content.decode()
    assert str(b.pk) in staff.get(THREADS, {"q": str(b.pk)}).content.decode()
    assert str(a.pk) not in staff.get(THREADS, {"status__exact": "idle"}).content.decode()
    assert staff.get(THREADS, {"idle_for": "30d"}).status_code == 200
    assert staff.get(THREADS, {"account__id__exact": str(account.pk)}).status_code == 200
    assert staff.get(THREADS, {"q": "bad\x00byte"}).status_code == 422  # never a database error


def test_delete_action_confirms_with_numbers_then_deletes(staff, project, django_capture_on_commit_callbacks):
    Sandbox.objects.create(project=project, account=project.account, provider="local", state="ready")
    threads = make_threads(project, 3, messages=4, checkpoints=2)
    Run.objects.create(thread=threads[0], seq=1, status="completed")
    sub = Thread.objects.create(account=project.account, project=project, parent_thread=threads[0], title="sub")
    Message.objects.create(thread=sub, seq=1, role="user", content=[])
    Thread.objects.filter(pk=sub.pk).update(last_message_seq=1)
    r = action(staff, "delete_threads", threads)
    assert r.status_code == 200 and b"Delete 3 threads?" in r.content
    assert impact(r) == {"threads": 4, "messages": 13, "runs": 1, "checkpoints": 6, "projects": 1, "sandboxes": 1}
    assert Thread.objects.count() == 4  # nothing changed yet
    with django_capture_on_commit_callbacks(execute=True):
        r = action(staff, "delete_threads", threads, confirm=True)
    assert texts(r) == ["3 threads deleted."]
    assert not Thread.objects.exists() and not Message.objects.exists()
    assert not Project.objects.filter(pk=project.pk).exists()
    assert Sandbox.objects.get().state == "deleted"


def test_prune_action_keeps_latest_and_reports_skipped(staff, project):
    idle, busy = make_threads(project, 2, checkpoints=3)
    Run.objects.create(thread=busy, seq=1, status="running")
    r = action(staff, "prune_keep_latest", [idle, busy])
    assert impact(r) == {"threads": 2, "skipped": 1, "checkpoints": 3, "kept": 1, "deleted": 2}
    assert Checkpoint.objects.count() == 6  # nothing changed yet
    r = action(staff, "prune_keep_latest", [idle, busy], confirm=True)
    assert texts(r) == ["1 thread pruned.", "1 thread skipped: an active run, or no older checkpoint to prune"]
    assert Checkpoint.objects.filter(thread=idle).count() == 1 and Checkpoint.objects.filter(thread=busy).count() == 3


def test_close_action_closes_idle_and_skips_running(staff, project):
    idle, running, closed = make_threads(project, 3)
    services.create_run(thread=running)
    services.close_thread(thread=closed)
    r = action(staff, "close_threads", [idle, running, closed])
    assert impact(r) == {"threads": 3, "idle": 1, "closed": 1, "busy": 1}
    assert Thread.objects.get(pk=idle.pk).status == "idle"  # nothing changed yet
    r = action(staff, "close_threads", [idle, running, closed], confirm=True)
    msgs = texts(r)
    assert msgs[0] == "1 thread closed."
    assert sorted(msgs[1:]) == ["1 thread skipped: The thread is already closed.",
                                "1 thread skipped: The thread is running: cancel it first, then close it."]
    assert Thread.objects.get(pk=idle.pk).status == "closed" and Thread.objects.get(pk=running.pk).status == "running"


def test_delete_all_matching_a_filter(staff, project, other_account, django_capture_on_commit_callbacks):
    """"Select all" across pages with a search: the confirmation carries it, and only
    the threads matching the search go."""
    other_project = Project.objects.create(account=other_account, name="Other")
    doomed = make_threads(project, 3)
    Thread.objects.filter(pk__in=[t.pk for t in doomed]).update(metadata={"batch": "old-import"})
    survivor = make_threads(other_project, 1)[0]
    data = {"action": "delete_threads", "select_across": "1", "_selected_action": [str(doomed[0].pk)]}
    r = staff.post(f"{THREADS}?q=old-import", data)
    assert impact(r)["threads"] == 3 and b'name="select_across" value="1"' in r.content
    shown_at = re.search(rb'name="shown_at" value="([^"]+)"', r.content).group(1).decode()
    # A thread matching the search arrives while the page is read: it is not part of
    # what was confirmed, and stays.
    late = make_threads(project, 1)[0]
    Thread.objects.filter(pk=late.pk).update(metadata={"batch": "old-import"})
    with django_capture_on_commit_callbacks(execute=True):
        r = staff.post(f"{THREADS}?q=old-import", {**data, "shown_at": shown_at, "post": "yes"}, follow=True)
    assert texts(r) == ["3 threads deleted."]
    assert set(Thread.objects.values_list("pk", flat=True)) == {survivor.pk, late.pk}
    from django.contrib.admin.models import DELETION, LogEntry

    logged = LogEntry.objects.filter(action_flag=DELETION).values_list("object_id", flat=True)
    assert sorted(logged) == sorted(str(t.pk) for t in doomed)


def test_change_page_delete_goes_through_the_service(staff, project, django_capture_on_commit_callbacks):
    keep, thread = make_threads(project, 2, messages=3)
    url = f"{THREADS}{thread.pk}/delete/"
    r = staff.get(url)
    assert r.status_code == 200 and b"Yes, delete it" in r.content
    assert impact(r) == {"threads": 1, "messages": 3, "runs": 0, "checkpoints": 0, "projects": 0, "sandboxes": 0}
    with django_capture_on_commit_callbacks(execute=True):
        r = staff.post(url, {"post": "yes"}, follow=True)
    assert f"Thread “{thread}” deleted." in texts(r)
    assert list(Thread.objects.values_list("pk", flat=True)) == [keep.pk]


def test_destructive_actions_need_the_delete_permission(client, project):
    client = staff_with(client, "view_thread", "change_thread")
    thread = make_threads(project, 1)[0]
    r = client.get(THREADS)
    assert r.status_code == 200
    for name in (b"delete_threads", b"prune_keep_latest", b"close_threads"):
        assert name not in r.content
    action(client, "delete_threads", [thread], confirm=True)
    assert Thread.objects.filter(pk=thread.pk).exists()
    assert client.get(f"{THREADS}{thread.pk}/delete/").status_code == 403
    assert client.post(f"{THREADS}{thread.pk}/delete/", {"post": "yes"}).status_code == 403
    assert b"deletelink" not in client.get(f"{THREADS}{thread.pk}/change/").content
    assert Thread.objects.filter(pk=thread.pk).exists()


def test_sandbox_retry_needs_the_delete_permission(client, project):
    client = staff_with(client, "view_sandbox", "change_sandbox")
    sandbox = Sandbox.objects.create(account=project.account, provider="local", state="pending_deletion")
    page = client.get("/admin/sandboxes/sandbox/")
    assert page.status_code == 200 and b"retry_deletion" not in page.content
    client.post("/admin/sandboxes/sandbox/", {"action": "retry_deletion", "_selected_action": [str(sandbox.pk)]})
    sandbox.refresh_from_db()
    assert sandbox.state == "pending_deletion"


def test_protected_agents_have_no_delete(staff, account):
    default = agent_services.create_agent(account=account, name="Default", model="m", is_default=True)
    system = agent_services.create_agent(account=account, name="Suna", model="m", metadata={"is_suna_default": True})
    plain = agent_services.create_agent(account=account, name="Plain", model="m")
    page = staff.get(f"/admin/agents/agent/{default.pk}/change/")
    assert page.status_code == 200 and b"deletelink" not in page.content
    assert b"deletelink" in staff.get(f"/admin/agents/agent/{plain.pk}/change/").content
    assert staff.get(f"/admin/agents/agent/{system.pk}/delete/").status_code == 403
    selection = {"action": "delete_agents", "_selected_action": [str(default.pk), str(system.pk), str(plain.pk)]}
    page = staff.post("/admin/agents/agent/", selection)  # the confirmation first, refusals named
    assert b"Delete 1 agent?" in page.content and impact(page)["refused"] == 2
    assert b"Default: Cannot delete default agent" in page.content and b"Suna: Cannot delete a system" in page.content
    assert agent_services.Agent.objects.count() == 3
    r = staff.post("/admin/agents/agent/", {**selection, "post": "yes"}, follow=True)
    msgs = texts(r)
    assert any("Cannot delete default agent" in m for m in msgs) and any("system agent" in m for m in msgs)
    assert any("1 agent deleted" in m for m in msgs)
    assert set(a.name for a in agent_services.Agent.objects.all()) == {"Default", "Suna"}


def test_agent_export_action_downloads_json(staff, account):
    agent = agent_services.create_agent(account=account, name="Exported", model="m", system_prompt="hi")
    agent_services.update_agent(agent=agent, system_prompt="v2")
    r = staff.post("/admin/agents/agent/", {"action": "export_agents", "_selected_action": [str(agent.pk)]})
    assert r["Content-Type"] == "application/json" and "attachment" in r["Content-Disposition"]
    doc = json.loads(r.content)
    assert doc["name"] == "Exported" and [v["number"] for v in doc["versions"]] == [1, 2]
    page = staff.get(f"/admin/agents/agent/{agent.pk}/change/")
    assert b"v2" in page.content  # versions inline


def test_sandbox_list_and_retry_deletion(staff, project, django_capture_on_commit_callbacks):
    pending = Sandbox.objects.create(account=project.account, provider="local", state="pending_deletion",
                                     attempts=3, last_error="provider down")
    ready = Sandbox.objects.create(project=project, account=project.account, provider="local", state="ready")
    page = staff.get("/admin/sandboxes/sandbox/")
    assert b"provider down" in page.content
    with django_capture_on_commit_callbacks(execute=True):
        r = staff.post("/admin/sandboxes/sandbox/", {"action": "retry_deletion",
                                                     "_selected_action": [str(pending.pk), str(ready.pk)]}, follow=True)
    assert texts(r) == ["Deletion at the provider retried for 1 sandbox.",
                        "1 sandbox skipped: not pending deletion (only a sandbox pending deletion can be retried)."]
    r = staff.post("/admin/sandboxes/sandbox/", {"action": "retry_deletion", "_selected_action": [str(ready.pk)]},
                   follow=True)
    assert [m.level_tag for m in get_messages(r.wsgi_request)] == ["warning"]  # no green success for none
    pending.refresh_from_db()
    assert pending.state == "deleted"


def test_support_pages(staff, account, project):
    assert b"Acme" in staff.get("/admin/projects/account/", {"q": "Acme"}).content
    assert b"Acme" in staff.get("/admin/projects/account/", {"q": "owner"}).content  # by a member's username
    assert b"Acme" not in staff.get("/admin/projects/account/", {"q": "nobody"}).content
    page = staff.get(f"/admin/projects/account/{account.pk}/change/")
    assert page.status_code == 200 and b"owner" in page.content  # members inline
    assert staff.get("/admin/projects/membership/", {"role__exact": "owner"}).status_code == 200
    assert staff.get("/admin/projects/project/", {"q": "Main"}).status_code == 200


def test_thread_page_lists_messages_a_page_at_a_time_and_runs(staff, project):
    thread = make_threads(project, 1, messages=0)[0]
    Message.objects.bulk_create(
        Message(thread=thread, seq=i + 1, role="user", content=[{"type": "text", "text": f"hello number {i + 1}"}])
        for i in range(120)
    )
    Run.objects.create(thread=thread, seq=1, status="success", model="echo-1")
    page = staff.get(f"{THREADS}{thread.pk}/change/")
    html = page.content.decode()
    assert page.status_code == 200 and "Messages (120)" in html and "Page 1 of 3" in html
    assert "hello number 1<" in html and "hello number 50<" in html and "hello number 51<" not in html
    assert "echo-1" in html and 'name="_save"' not in html  # read-only: no Save buttons
    html = staff.get(f"{THREADS}{thread.pk}/change/", {"messages_page": 3}).content.decode()
    assert "hello number 101<" in html and "hello number 120<" in html and "Page 3 of 3" in html


def test_message_list_is_searchable_and_filterable(staff, project):
    a, b = make_threads(project, 2, messages=0)
    agent = agent_services.create_agent(account=project.account, name="Helper", model="m")
    Message.objects.create(thread=a, seq=1, role="user", content=[{"type": "text", "text": "zebra crossing"}],
                           agent=agent)
    Message.objects.create(thread=b, seq=1, role="assistant", content=[{"type": "text", "text": "giraffe"}])
    url = "/admin/threads/message/"
    assert b"zebra crossing" in staff.get(url, {"q": "zebra"}).content
    assert b"giraffe" not in staff.get(url, {"q": "zebra"}).content
    assert b"giraffe" in staff.get(url, {"q": str(b.pk)}).content  # by thread id
    assert b"zebra" not in staff.get(url, {"thread__id__exact": str(b.pk)}).content
    assert b"zebra" not in staff.get(url, {"role__exact": "assistant"}).content
    assert b"No agent" in staff.get(url).content  # the "no agent" filter reads in words, not "-"
    assert b"zebra" not in staff.get(url, {"agent__isnull": "True"}).content


def test_a_second_submit_of_a_thread_action_reports_the_threads_already_deleted(staff, project):
    threads = make_threads(project, 3)
    assert texts(action(staff, "delete_threads", threads, confirm=True)) == ["3 threads deleted."]
    assert texts(action(staff, "delete_threads", threads, confirm=True)) == [
        "0 threads deleted.", "3 threads skipped: already deleted"]
    kept = make_threads(create_project(account=project.account, name="Other"), 1, checkpoints=2)
    assert texts(action(staff, "prune_keep_latest", [*threads[:1], *kept], confirm=True)) == [
        "1 thread pruned.", "1 thread skipped: already deleted"]
    assert texts(action(staff, "close_threads", [*threads[:2], *kept], confirm=True)) == [
        "1 thread closed.", "2 threads skipped: already deleted"]


def test_thread_page_links_only_to_pages_the_user_may_open(client, project):
    thread = make_threads(project, 1, messages=2)[0]
    run = Run.objects.create(thread=thread, seq=1, status="success", model="echo-1")
    message = thread.messages.get(seq=1)
    message_link = f'href="/admin/threads/message/{message.pk}/change/"'
    run_link = f'href="/admin/threads/run/{run.pk}/change/"'
    messages_list, runs_list = "Search and filter these messages", "All runs of this thread"

    staff_with(client, "view_thread")  # threads only: the numbers as text, no link to a 403
    html = client.get(f"{THREADS}{thread.pk}/change/").content.decode()
    assert "Messages (2)" in html and "echo-1" in html
    assert message_link not in html and run_link not in html
    assert messages_list not in html and runs_list not in html
    assert client.get(f"/admin/threads/message/{message.pk}/change/").status_code == 403  # what a link led to

    client.logout()
    staff_with(client, "view_thread", "view_message")
    html = client.get(f"{THREADS}{thread.pk}/change/").content.decode()
    assert message_link in html and messages_list in html and run_link not in html and runs_list not in html
    assert client.get(f"/admin/threads/message/{message.pk}/change/").status_code == 200

    client.logout()
    staff_with(client, "view_thread", "view_message", "view_run")
    html = client.get(f"{THREADS}{thread.pk}/change/").content.decode()
    assert message_link in html and run_link in html and runs_list in html


def test_a_thread_action_run_as_a_job_reports_the_threads_already_deleted(staff, project, settings):
    """Above the job threshold the posted threads still there make the job; those
    already gone are reported on the way to its page, as below the threshold."""
    settings.BACKGROUND_JOBS = {**settings.BACKGROUND_JOBS, "threshold": 2, "batch_size": 2}
    threads = make_threads(project, 5)
    services.delete_threads(thread_ids=[t.pk for t in threads[:2]])
    shown = texts(action(staff, "delete_threads", threads, confirm=True))
    assert "2 threads skipped: already deleted" in shown
    job = Job.objects.get()
    assert (job.kind, job.total) == (JobKind.DELETE_THREADS, 3)
