"""In a real browser (headless Debian Chromium, as test_browser_deletion.py): a
confirmation above the job threshold confirmed from two tabs starts one job, the
second tab landing on the first's page with "already running"."""

import re

import pytest

from jobs.models import Job, JobTarget
from projects.services import create_account, create_project
from tests.admin.test_browser import chromium_page  # noqa: F401 (skip rule)
from tests.admin.test_browser import pytestmark as browser_marks
from tests.admin.test_browser_deletion import bulk, log_in, make_staff, messages_shown, shot
from tests.threads.test_prune import make_threads
from threads.models import Thread

pytestmark = browser_marks


@pytest.mark.django_db(transaction=True)
def test_confirming_from_two_tabs_runs_one_job(live_server, settings, monkeypatch):
    settings.BACKGROUND_JOBS = {"threshold": 5, "batch_size": 2}
    monkeypatch.setattr("jobs.services.send_job", lambda **kwargs: None)  # the job stays pending: no worker
    user = make_staff("superuser", suffix="twice")
    project = create_project(account=create_account(name="Twice Co", owner=user), name="Many")
    doomed = make_threads(project, 7, messages=1)
    job_page = re.compile(r".*/admin/jobs/job/[0-9a-f-]+/change/$")

    with chromium_page() as first:
        log_in(first, live_server, user)
        tab = first.context.browser.new_context()  # a second tab, on the same session
        tab.add_cookies(first.context.cookies())
        second = tab.new_page()
        for tab in (first, second):
            bulk(tab, live_server, "/admin/threads/thread/", [t.pk for t in doomed], "delete_threads")
        first.click("input[type=submit][value='Yes, delete them']")
        first.wait_for_url(job_page)
        said_first, url_first = messages_shown(first), first.url
        second.click("input[type=submit][value='Yes, delete them']")
        second.wait_for_url(job_page)
        said_second, url_second = messages_shown(second), second.url
        shot(second, "superuser", "job-already-running")

    job = Job.objects.get()
    assert url_first == url_second and url_first.endswith(f"/admin/jobs/job/{job.pk}/change/")
    assert said_first == ["Delete 7 threads: started in the background. This page follows its progress."]
    assert len(said_second) == 1 and said_second[0].startswith("Delete 7 threads: already running — this job")
    assert JobTarget.objects.filter(job=job).count() == 7 and Thread.objects.count() == 7
