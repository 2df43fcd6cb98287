"""Background jobs: above the threshold the admin and `prune_threads --background`
submit one job that deletes or prunes in batches through the same services, with
its progress page; cancelled between batches it leaves nothing half done."""

import io
import json

import pytest
from django.contrib.auth.models import Permission
from django.core.management import call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext

from agents import services as agent_services
from agents.models import Agent
from jobs.models import Job, JobState, JobTarget
from receipts.models import DeletionReceipt
from jobs.services import request_cancel, run_job, submit_job, submit_job_once
from projects.models import Project
from projects.services import create_account, create_project, ensure_user
from tests.admin.test_admin import texts
from tests.conftest import wait_for
from tests.threads.test_prune import make_threads
from threads import services as thread_services
from threads.models import Checkpoint, Message, Run, Thread

pytestmark = pytest.mark.django_db
THREADS = "/admin/threads/thread/"
AGENTS = "/admin/agents/agent/"


@pytest.fixture
def small_jobs(settings):
    """A threshold of 5 threads and batches of 2, so that small data makes jobs."""
    settings.BACKGROUND_JOBS = {"threshold": 5, "batch_size": 2}


@pytest.fixture
def staff(client):
    user = ensure_user(username="staff", password="pw-1234")
    user.is_staff = user.is_superuser = True
    user.save()
    client.force_login(user)
    client.user = user
    return client


def confirm_as_job(staff, url, selection, capture) -> tuple:
    """Post an admin action's selection (the confirmation page), then confirm it with
    after-commit work run; (the confirmation page, the response, the job it started)."""
    page = staff.post(url, selection)
    with capture(execute=True):
        r = staff.post(url, {**selection, "post": "yes"})
    return page, r, Job.objects.get()


@pytest.mark.django_db(transaction=True)
def test_a_job_run_in_process_is_reported_done_not_started(small_jobs, staff, project):
    """Without a broker the job runs as it is submitted (the admin's request commits
    as it goes): the message says it is done, not that it started in the background."""
    doomed = make_threads(project, 7, messages=1)
    selection = {"action": "delete_threads", "_selected_action": [str(t.pk) for t in doomed]}
    staff.post(THREADS, selection)
    page = staff.post(THREADS, {**selection, "post": "yes"}, follow=True)
    assert texts(page) == ["Delete 7 threads: done. This page has its figures."]
    assert Job.objects.get().state == JobState.DONE and not Thread.objects.filter(pk__in=[t.pk for t in doomed]).exists()


def test_bulk_delete_over_threshold_runs_as_a_job(small_jobs, staff, project, django_capture_on_commit_callbacks):
    doomed = make_threads(project, 7, messages=2)
    keep = make_threads(create_project(account=project.account, name="Other"), 1)[0]
    selection = {"action": "delete_threads", "_selected_action": [str(t.pk) for t in doomed]}
    page, r, job = confirm_as_job(staff, THREADS, selection, django_capture_on_commit_callbacks)
    assert b"runs in the background" in page.content
    assert r.status_code == 302 and r["Location"] == f"/admin/jobs/job/{job.pk}/change/"
    assert (job.kind, job.state, job.source, job.created_by_id) == ("delete_threads", "done", "admin", staff.user.pk)
    assert (job.total, job.done, job.affected, job.batches) == (7, 7, 7, 4)
    assert list(Thread.objects.all()) == [keep] and not Message.objects.filter(thread__in=doomed).exists()
    assert not JobTarget.objects.exists()
    page = staff.get(r["Location"])
    assert page.status_code == 200 and b'<ol class="breadcrumbs">' in page.content
    assert b'id="job-done">7<' in page.content and b"100.0" in page.content and b"Save" not in page.content
    progress = json.loads(staff.get(f"/admin/jobs/job/{job.pk}/progress/").content)
    assert progress["state"] == "done" and progress["percent"] == 100.0 and progress["done"] == 7
    receipts = DeletionReceipt.objects.filter(operation_id=job.pk)  # one per batch, as the staff user, from the admin
    assert receipts.count() == 4 and {(r.source, r.actor, r.kind) for r in receipts} == {("admin", "staff", "thread_delete")}
    assert sum(r.threads for r in receipts) == 7 and sum(r.messages for r in receipts) == 14
    assert {r.cleanup_state for r in receipts} == {"complete"}
    # The job page links to exactly those receipts, and counts them.
    link = f'href="/admin/receipts/deletionreceipt/?operation_id={job.pk}"'
    assert link in page.content.decode() and b'id="job-receipts">4<' in page.content and progress["receipts"] == 4
    listed = staff.get(f"/admin/receipts/deletionreceipt/?operation_id={job.pk}")
    assert listed.status_code == 200 and {r.pk for r in listed.context["cl"].result_list} == {r.pk for r in receipts}


def test_below_threshold_stays_in_the_request(small_jobs, staff, project):
    threads = make_threads(project, 5)
    r = staff.post(THREADS, {"action": "delete_threads", "_selected_action": [str(t.pk) for t in threads],
                             "post": "yes"}, follow=True)
    assert texts(r) == ["5 threads deleted."] and not Job.objects.exists() and not Thread.objects.exists()


def test_prune_keep_latest_over_threshold(small_jobs, staff, project, django_capture_on_commit_callbacks):
    threads = make_threads(project, 6, checkpoints=3)
    with django_capture_on_commit_callbacks(execute=True):
        staff.post(THREADS, {"action": "prune_keep_latest", "_selected_action": [str(t.pk) for t in threads],
                             "post": "yes"})
    job = Job.objects.get()
    assert (job.kind, job.state, job.done, job.affected) == ("prune_keep_latest", "done", 6, 6)
    assert Checkpoint.objects.count() == 6 and Thread.objects.count() == 6


def test_project_and_account_deletion_over_threshold(small_jobs, staff, account, django_capture_on_commit_callbacks):
    big = create_project(account=account, name="Big")
    make_threads(big, 7, messages=1)
    with django_capture_on_commit_callbacks(execute=True):
        staff.post(f"/admin/projects/project/{big.pk}/delete/", {"post": "yes"})
    job = Job.objects.get()
    assert (job.kind, job.state, job.total, job.done) == ("delete_projects", "done", 7, 7)
    assert not Project.objects.filter(pk=big.pk).exists() and not Thread.objects.exists()

    other = create_account(name="Big Co", owner=ensure_user(username="o2"))
    for name in ("A", "B"):
        make_threads(create_project(account=other, name=name), 3)
    empty = create_project(account=other, name="Empty")
    with django_capture_on_commit_callbacks(execute=True):
        staff.post("/admin/projects/account/", {"action": "delete_with_service",
                                                "_selected_action": [str(other.pk)], "post": "yes"})
    job = Job.objects.get(kind="delete_accounts")
    assert (job.state, job.total, job.done, job.affected) == ("done", 6, 6, 6)
    assert not Project.objects.filter(pk=empty.pk).exists() and not other.__class__.objects.filter(pk=other.pk).exists()


def test_close_threads_over_threshold_runs_as_a_job(small_jobs, staff, project, django_capture_on_commit_callbacks):
    """Seven selected: five idle (one with an idle sub-thread, which closes with it),
    one running, one closed (skipped, as in the request). One receipt per batch."""
    selected = make_threads(project, 7)
    idle, (running, closed) = selected[:5], selected[5:]
    child = thread_services.create_thread(project=project, parent_thread=idle[0])
    thread_services.create_run(thread=running)
    thread_services.close_thread(thread=closed)
    before = set(DeletionReceipt.objects.values_list("pk", flat=True))
    selection = {"action": "close_threads", "_selected_action": [str(t.pk) for t in selected]}
    page, r, job = confirm_as_job(staff, THREADS, selection, django_capture_on_commit_callbacks)
    assert b"runs in the background" in page.content and b"Yes, close them" in page.content
    assert r["Location"] == f"/admin/jobs/job/{job.pk}/change/"
    assert (job.kind, job.state, job.total, job.done, job.affected, job.batches) == ("close_threads", "done", 7, 7, 5, 4)
    statuses = dict(Thread.objects.values_list("pk", "status"))
    assert {statuses[t.pk] for t in [*idle, child]} == {"closed"} and statuses[running.pk] == "running"
    receipts = DeletionReceipt.objects.filter(operation_id=job.pk)
    assert not receipts.filter(pk__in=before).exists() and {(r.kind, r.source, r.actor) for r in receipts} == {
        ("thread_close", "admin", "staff")}
    assert receipts.count() <= job.batches and sum(r.threads_closed for r in receipts) == 6
    assert sorted(i for r in receipts for i in r.root_ids) == sorted(str(t.pk) for t in idle)
    assert b"Closed" in staff.get(r["Location"]).content


def agent_with_history(account, project, name, *, threads, closed=0):
    """An agent with `threads` threads (`closed` of them closed), each with a run and
    two messages written by the agent."""
    agent = agent_services.create_agent(account=account, name=name, model="m")
    made = make_threads(project, threads, messages=2, agent=agent)
    Thread.objects.filter(pk__in=[t.pk for t in made[:closed]]).update(status="closed")
    Message.objects.filter(thread__in=made).update(agent=agent)
    Run.objects.bulk_create(Run(thread=t, seq=1, status="success", agent=agent) for t in made)
    return agent, made


def test_agent_deletion_over_threshold_runs_as_a_job(small_jobs, staff, account, project,
                                                     django_capture_on_commit_callbacks):
    """Bulk "Delete selected agents" over more threads than the threshold: the
    protected agent refused at once, the others' threads closed and released in
    batches, then the agents deleted; the history stays."""
    busy, threads = agent_with_history(account, project, "Busy agent", threads=7, closed=2)
    idle_agent, _ = agent_with_history(account, project, "Idle agent", threads=0)
    default = agent_services.create_agent(account=account, name="Default agent", model="m", is_default=True)
    selection = {"action": "delete_agents", "_selected_action": [str(a.pk) for a in (busy, idle_agent, default)]}
    page, r, job = confirm_as_job(staff, AGENTS, selection, django_capture_on_commit_callbacks)
    assert b"runs in the background" in page.content and b"Cannot delete default agent" in page.content
    assert r["Location"] == f"/admin/jobs/job/{job.pk}/change/"
    assert any("“Default agent” refused" in m for m in texts(staff.get(r["Location"])))
    # 7 threads in batches of 2 (4), then each agent deleted in a batch of its own
    assert (job.kind, job.state, job.total, job.done, job.affected, job.batches) == ("delete_agents", "done", 7, 7, 5, 6)
    assert list(Agent.objects.values_list("name", flat=True)) == ["Default agent"]
    kept = Thread.objects.filter(pk__in=[t.pk for t in threads])
    assert kept.count() == 7 and set(kept.values_list("status", "agent")) == {("closed", None)}
    assert Message.objects.filter(thread__in=kept, agent=None).count() == 14 and Run.objects.filter(agent=None).count() == 7
    receipts = DeletionReceipt.objects.filter(operation_id=job.pk)
    assert {(r.kind, r.source, r.actor) for r in receipts} == {("agent_delete", "admin", "staff")}
    assert sum(r.threads_closed for r in receipts) == 5 and sum(r.agents for r in receipts) == 2
    assert {tuple(r.root_ids) for r in receipts} == {(str(busy.pk),), (str(idle_agent.pk),)}


def test_agent_deletion_from_its_page_over_threshold(small_jobs, staff, account, project,
                                                    django_capture_on_commit_callbacks):
    agent, threads = agent_with_history(account, project, "Big agent", threads=6)
    page = staff.get(f"{AGENTS}{agent.pk}/delete/")
    assert b"runs in the background" in page.content
    with django_capture_on_commit_callbacks(execute=True):
        r = staff.post(f"{AGENTS}{agent.pk}/delete/", {"post": "yes"})
    job = Job.objects.get()
    assert r["Location"] == f"/admin/jobs/job/{job.pk}/change/" and job.description == "Delete agent “Big agent” (6 threads)"
    assert (job.state, job.done, job.affected) == ("done", 6, 6) and not Agent.objects.filter(pk=agent.pk).exists()
    assert Thread.objects.filter(agent=None, status="closed").count() == 6


def test_agent_made_default_meanwhile_is_passed_over(small_jobs, account, project):
    agent, threads = agent_with_history(account, project, "Soon default", threads=3)
    job = submit_job(kind="delete_agents", targets=Agent.objects.filter(pk=agent.pk), total=3, description="x")
    agent_services.update_agent(agent=agent, is_default=True)
    job = run_job(job_id=job.pk)
    assert (job.state, job.done, job.affected) == ("done", 0, 0)
    assert Agent.objects.filter(pk=agent.pk).exists() and Thread.objects.filter(agent=agent).count() == 3


def test_prune_command_background_submits_the_same_job(small_jobs, project, django_capture_on_commit_callbacks):
    make_threads(project, 5, messages=1)
    out = io.StringIO()
    with django_capture_on_commit_callbacks(execute=True):
        call_command("prune_threads", "--status", "idle", "--background", "--yes", "--batch-size", "2", stdout=out)
    job = Job.objects.get()
    assert f"Job {job.pk} submitted" in out.getvalue() and f"/admin/jobs/job/{job.pk}/change/" in out.getvalue()
    assert (job.kind, job.source, job.created_by_id, job.batch_size) == ("delete_threads", "command", None, 2)
    assert (job.state, job.done, job.batches) == ("done", 5, 3) and not Thread.objects.exists()
    receipts = DeletionReceipt.objects.filter(operation_id=job.pk)
    assert {(r.source, r.actor) for r in receipts} == {("command", "system")} and sum(r.threads for r in receipts) == 5


def test_cancel_a_pending_job_does_nothing(project):
    make_threads(project, 3)
    job = submit_job(kind="delete_threads", targets=Thread.objects.all(), total=3, description="Delete 3 threads")
    job = request_cancel(job=job)
    assert job.state == "cancelled" and not JobTarget.objects.exists()
    assert run_job(job_id=job.pk).state == "cancelled" and Thread.objects.count() == 3


def test_job_page_permissions(client, project, django_capture_on_commit_callbacks):
    """Staff who started a job may follow and cancel it with no permission on jobs;
    other limited staff may not see it."""
    starter, other = (ensure_user(username=n, password="pw-1234") for n in ("starter", "other"))
    for user in (starter, other):
        user.is_staff = True
        user.save()
        user.user_permissions.add(*Permission.objects.filter(codename__in=["view_thread", "delete_thread"]))
    make_threads(project, 2)
    job = submit_job(kind="delete_threads", targets=Thread.objects.all(), total=2, description="Delete 2 threads",
                     created_by=starter)
    client.force_login(other)
    assert client.get(f"/admin/jobs/job/{job.pk}/change/").status_code == 403
    assert client.post(f"/admin/jobs/job/{job.pk}/cancel/").status_code == 403
    assert client.get(f"/admin/jobs/job/{job.pk}/progress/").status_code == 403
    assert list(client.get("/admin/jobs/job/").context["cl"].result_list) == []  # their own jobs only: none
    client.force_login(starter)
    page = client.get(f"/admin/jobs/job/{job.pk}/change/")
    assert page.status_code == 200 and b"Cancel job" in page.content
    # The breadcrumbs lead to pages they can open: the jobs list shows their own jobs.
    for crumb in ("/admin/jobs/", "/admin/jobs/job/"):
        assert f'<a href="{crumb}">' in page.content.decode() and client.get(crumb).status_code == 200
    assert list(client.get("/admin/jobs/job/").context["cl"].result_list) == [job]
    assert b"Background jobs" in client.get("/admin/").content
    # No permission on receipts: the count, without a link to a list they cannot open.
    assert b'id="job-receipts">0<' in page.content and b"/admin/receipts/" not in page.content
    client.post(f"/admin/jobs/job/{job.pk}/cancel/")
    assert Job.objects.get().state == "cancelled" and Thread.objects.count() == 2
    starter.user_permissions.add(Permission.objects.get(codename="view_deletionreceipt"))
    page = client.get(f"/admin/jobs/job/{job.pk}/change/")
    assert f'href="/admin/receipts/deletionreceipt/?operation_id={job.pk}"' in page.content.decode()


def test_staff_with_the_jobs_permission_see_every_job(client, project):
    starter, viewer = (ensure_user(username=n, password="pw-1234") for n in ("starter", "viewer"))
    for user in (starter, viewer):
        user.is_staff = True
        user.save()
    viewer.user_permissions.add(Permission.objects.get(codename="view_job"))
    job = submit_job(kind="delete_threads", targets=Thread.objects.none(), total=0, description="x", created_by=starter)
    client.force_login(viewer)
    assert list(client.get("/admin/jobs/job/").context["cl"].result_list) == [job]
    page = client.get(f"/admin/jobs/job/{job.pk}/change/")
    assert page.status_code == 200 and b"Cancel job" not in page.content  # cancelling needs change_job


def test_a_batch_costs_the_same_queries_whatever_its_size(project):
    """One batch of 2 threads or of 500 (with messages and checkpoints): the same
    statements (claim; per batch: lock the job, read targets, the deletion, drop the
    targets, record progress; finish), no per-row work."""
    counts = []
    for n in (2, 500):
        make_threads(project, n, messages=3, checkpoints=2)
        job = submit_job(kind="delete_threads", targets=Thread.objects.all(), total=n, description="x",
                         batch_size=1000)
        with CaptureQueriesContext(connection) as queries:
            run_job(job_id=job.pk)
        counts.append(len(queries))
        assert Job.objects.get(pk=job.pk).state == "done" and not Thread.objects.exists()
        project = create_project(account=project.account, name=f"again {n}")
    assert counts[0] == counts[1] <= 24, counts


@pytest.mark.worker
def test_cancel_stops_a_running_job_between_batches(celery_worker_process, settings, project):
    """A real worker runs the job; a cancel while it runs stops it after a whole
    batch: every thread is either gone with everything under it or intact."""
    settings.BACKGROUND_JOBS = {"threshold": 5, "batch_size": 50}
    threads = make_threads(project, 3000, messages=2, checkpoints=1)
    job = submit_job(kind="delete_threads", targets=Thread.objects.all(), total=len(threads),
                     description="Delete 3,000 threads", batch_size=50)
    assert wait_for(lambda: Job.objects.get(pk=job.pk).done >= 100, timeout=60)
    request_cancel(job=job)
    job = wait_for(lambda: Job.objects.filter(pk=job.pk, state__in=["cancelled", "done"]).first(), timeout=60)
    assert job.state == JobState.CANCELLED and 0 < job.done < 3000 and job.done % 50 == 0
    left = Thread.objects.count()
    assert left == 3000 - job.done == 3000 - job.affected
    assert Message.objects.count() == 2 * left and Checkpoint.objects.count() == left
    assert not JobTarget.objects.filter(job=job).exists()


@pytest.mark.worker
def test_a_cancelled_agent_deletion_stops_between_batches(celery_worker_process, account, project):
    """A real worker releases an agent's 3,000 threads 50 at a time; cancelled, it
    stops after a whole batch: each thread is closed and detached with its runs and
    messages, or untouched; the agent stays; the receipts count exactly the closes."""
    agent, _ = agent_with_history(account, project, "Huge agent", threads=3000)
    job = submit_job(kind="delete_agents", targets=Agent.objects.filter(pk=agent.pk), total=3000,
                     description="Delete agent “Huge agent” (3,000 threads)", batch_size=50)
    assert wait_for(lambda: Job.objects.get(pk=job.pk).done >= 100, timeout=60)
    request_cancel(job=job)
    job = wait_for(lambda: Job.objects.filter(pk=job.pk, state__in=["cancelled", "done"]).first(), timeout=60)
    assert job.state == JobState.CANCELLED and 0 < job.done < 3000 and job.done % 50 == 0
    released = Thread.objects.filter(agent=None)
    assert released.count() == job.done == job.affected and set(released.values_list("status", flat=True)) == {"closed"}
    left = 3000 - job.done
    assert Agent.objects.filter(pk=agent.pk).exists() and Thread.objects.filter(agent=agent, status="idle").count() == left
    assert Message.objects.filter(agent=agent).count() == 2 * left and Run.objects.filter(agent=agent).count() == left
    receipts = DeletionReceipt.objects.filter(operation_id=job.pk)
    assert receipts.count() == job.batches and {r.threads_closed for r in receipts} == {50}
    assert sum(r.agents for r in receipts) == 0 and not JobTarget.objects.filter(job=job).exists()


@pytest.mark.worker
def test_admin_job_through_a_real_worker(celery_worker_process, settings, client, project):
    settings.BACKGROUND_JOBS = {"threshold": 5, "batch_size": 10}
    user = ensure_user(username="staff", password="pw-1234")
    user.is_staff = user.is_superuser = True
    user.save()
    client.force_login(user)
    threads = make_threads(project, 45, messages=1)
    r = client.post(THREADS, {"action": "delete_threads", "_selected_action": [str(t.pk) for t in threads],
                              "post": "yes"})
    assert r.status_code == 302  # at once, before the work
    job = wait_for(lambda: Job.objects.filter(state="done").first(), timeout=60)
    assert (job.done, job.affected, job.batches) == (45, 45, 5) and not Thread.objects.exists()


# --- A confirmation posted twice runs one job -------------------------------------


def test_confirming_twice_runs_one_job(small_jobs, staff, project):
    """The second post of a confirmation (two tabs, or back and submit again) while the
    first job is unfinished goes to that job, saying so, and starts nothing — also
    when the job has deleted some of the threads already (the second post then finds
    only the rest: every one of them is a target of the running job)."""
    doomed = make_threads(project, 9, messages=1)
    selection = {"action": "delete_threads", "_selected_action": [str(t.pk) for t in doomed], "post": "yes"}
    first = staff.post(THREADS, selection, follow=True)  # after-commit work not run: the job stays pending
    job = Job.objects.get()
    assert first.redirect_chain[-1][0] == f"/admin/jobs/job/{job.pk}/change/"
    assert texts(first) == ["Delete 9 threads: started in the background. This page follows its progress."]
    again = staff.post(THREADS, selection, follow=True)
    assert Job.objects.count() == 1 and again.redirect_chain[-1][0] == f"/admin/jobs/job/{job.pk}/change/"
    assert len(texts(again)) == 1 and texts(again)[0].startswith("Delete 9 threads: already running — this job")
    assert "nothing new was started" in texts(again)[0]

    Job.objects.filter(pk=job.pk).update(state=JobState.RUNNING)  # its first batch done: two threads gone
    thread_services.delete_threads(thread_ids=[doomed[0].pk, doomed[1].pk])
    again = staff.post(THREADS, selection, follow=True)
    assert Job.objects.count() == 1 and again.redirect_chain[-1][0] == f"/admin/jobs/job/{job.pk}/change/"
    assert texts(again)[0].startswith("Delete 7 threads: already running")
    assert texts(again)[1:] == ["2 threads skipped: already deleted"]

    more = make_threads(project, 1)[0]  # a selection the job does not cover is a job of its own
    staff.post(THREADS, {**selection, "_selected_action": [*selection["_selected_action"], str(more.pk)]})
    assert Job.objects.count() == 2
    staff.post(THREADS, {**selection, "action": "prune_keep_latest"})  # as is another kind over the same threads
    assert Job.objects.filter(kind="prune_keep_latest").count() == 1 and Job.objects.count() == 3


def test_a_cancelled_or_finished_job_does_not_hold_a_new_one(small_jobs, staff, project):
    doomed = make_threads(project, 7)
    selection = {"action": "close_threads", "_selected_action": [str(t.pk) for t in doomed], "post": "yes"}
    staff.post(THREADS, selection)
    first = Job.objects.get()
    Job.objects.filter(pk=first.pk).update(state=JobState.RUNNING)
    request_cancel(job=first)  # cancelling: it stops after its batch
    staff.post(THREADS, selection)
    second = Job.objects.exclude(pk=first.pk).get()
    Job.objects.filter(pk=second.pk).update(state=JobState.FAILED)
    staff.post(THREADS, selection)
    assert Job.objects.count() == 3


def test_deleting_a_project_twice_from_its_page_runs_one_job(small_jobs, staff, account):
    big = create_project(account=account, name="Big")
    make_threads(big, 7, messages=1)
    staff.post(f"/admin/projects/project/{big.pk}/delete/", {"post": "yes"}, follow=True)
    job = Job.objects.get()
    again = staff.post(f"/admin/projects/project/{big.pk}/delete/", {"post": "yes"}, follow=True)
    assert Job.objects.count() == 1 and again.redirect_chain[-1][0] == f"/admin/jobs/job/{job.pk}/change/"
    assert texts(again)[0].startswith("Delete project “Big” (7 threads): already running")

    other = ensure_user(username="other-staff")  # staff who may not see that job: told so, sent to the list
    other.is_staff = True
    other.save()
    other.user_permissions.add(*Permission.objects.filter(codename__in=["view_project", "delete_project"]))
    staff.force_login(other)
    again = staff.post(f"/admin/projects/project/{big.pk}/delete/", {"post": "yes"}, follow=True)
    assert Job.objects.count() == 1 and again.redirect_chain[-1][0] == "/admin/projects/project/"
    assert texts(again) == ["Delete project “Big” (7 threads): already running — a job started by staff has them "
                            "all; nothing new was started."]


def test_submit_job_once(project):
    threads = make_threads(project, 3)
    job, started = submit_job_once(kind="delete_threads", targets=Thread.objects.all(), total=3, description="x")
    assert started and JobTarget.objects.filter(job=job).count() == 3
    again, started = submit_job_once(kind="delete_threads", targets=Thread.objects.filter(pk=threads[0].pk),
                                     total=1, description="x")
    assert (again, started) == (job, False) and Job.objects.count() == 1
    empty, started = submit_job_once(kind="delete_threads", targets=Thread.objects.none(), total=0, description="x")
    assert started and empty != job
