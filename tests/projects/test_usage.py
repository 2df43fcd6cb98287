"""The account caches: usage served from the account-state cache, the slot counter
enforcing the thread limit, and a cache outage that never fails a request."""

import logging
import uuid

import pytest
from django.core.cache import cache

from projects import caches
from projects import services as project_services
from projects.models import Role
from tests.conftest import client_for
from threads.models import Thread
from threads.services import create_thread

pytestmark = pytest.mark.django_db

UNREACHABLE_CACHE = {
    "default": {
        "BACKEND": "django_redis.cache.RedisCache",
        "LOCATION": "redis://127.0.0.1:1/0",  # nothing listens on port 1
        "OPTIONS": {"CLIENT_CLASS": "django_redis.client.DefaultClient", "SOCKET_CONNECT_TIMEOUT": 0.5, "SOCKET_TIMEOUT": 0.5},
    }
}


@pytest.fixture
def on_commit(django_capture_on_commit_callbacks):
    """Run the after-commit work (cache updates) of whatever happens inside."""
    return lambda: django_capture_on_commit_callbacks(execute=True)


def usage(api, account):
    response = api.get(f"/api/accounts/{account.pk}/usage")
    assert response.status_code == 200
    return response.json()


def test_usage_counts_and_limits(api, account, project, settings):
    settings.DEFAULT_AGENT_LIMIT = 7
    account.thread_limit = 50
    account.save()
    create_thread(project=project)
    project_services.create_project(account=account, name="second")

    assert usage(api, account) == {
        "thread_count": 1, "project_count": 2, "agent_count": 0, "limits": {"threads": 50, "agents": 7},
    }


def test_usage_is_cached_per_account_and_invalidated_by_creates_and_deletes(api, account, project, on_commit):
    assert usage(api, account)["thread_count"] == 0
    assert cache.get(caches.account_state_key(account.pk)) is not None
    with on_commit():
        response = api.post("/api/threads", {"project_id": str(project.pk)}, format="json")
    assert response.status_code == 201
    assert usage(api, account)["thread_count"] == 1

    with on_commit():
        assert api.delete(f"/api/threads/{response.json()['thread_id']}").status_code == 200
    after = usage(api, account)  # the project went with its last thread
    assert (after["thread_count"], after["project_count"]) == (0, 0)


def test_usage_is_keyed_on_the_owning_account_not_the_caller(api, account, project, member_of, on_commit):
    member = client_for(member_of(account, Role.MEMBER))
    assert usage(api, account)["thread_count"] == 0
    with on_commit():
        thread_id = member.post("/api/threads", {"project_id": str(project.pk)}, format="json").json()["thread_id"]
    assert usage(api, account)["thread_count"] == 1
    with on_commit():
        assert member.delete(f"/api/threads/{thread_id}").status_code == 200
    assert usage(api, account)["thread_count"] == 0


def test_usage_of_another_account_is_404(api, other_account, anon):
    assert api.get(f"/api/accounts/{other_account.pk}/usage").status_code == 404
    assert anon.get(f"/api/accounts/{other_account.pk}/usage").status_code == 401


def test_thread_limit_is_402_until_a_thread_is_deleted(api, account, project, on_commit):
    account.thread_limit = 2
    account.save()
    ids = []
    for _ in range(2):
        with on_commit():
            ids.append(api.post("/api/threads", {"project_id": str(project.pk)}, format="json").json()["thread_id"])
    assert cache.get(caches.slots_key(account.pk)) == 2

    refused = api.post("/api/threads", {"project_id": str(project.pk)}, format="json")
    assert refused.status_code == 402 and "limit" in refused.json()["detail"]

    with on_commit():
        assert api.delete(f"/api/threads/{ids[0]}").status_code == 200
    assert cache.get(caches.slots_key(account.pk)) == 1
    assert api.post("/api/threads", {"project_id": str(project.pk)}, format="json").status_code == 201


def test_runs_refused_after_making_their_thread_leave_the_thread_limit_free(api, account, on_commit):
    """`if_not_exists: "create"` makes the thread in the run's transaction, so a run
    refused after that rolls the thread back — and the slot it reserved must not stay
    counted: the account has no thread, so creating its two is not a 402."""
    account.thread_limit = 2
    account.save()
    bad_input = {"if_not_exists": "create", "input": {"messages": [{"role": "bogus", "content": "x"}]}}
    for _ in range(2):
        assert api.post(f"/api/threads/{uuid.uuid4()}/runs", bad_input, format="json").status_code == 422
    assert not Thread.objects.filter(account=account).exists()

    with on_commit():
        created = [api.post("/api/threads", {}, format="json").status_code for _ in range(2)]
    assert created == [201, 201]
    refused = api.post("/api/threads", {}, format="json")
    assert refused.status_code == 402 and "limit" in refused.json()["detail"]  # the limit still holds
    assert caches.thread_slots_used(account.pk) == 2


def test_slot_counter_is_rebuilt_when_missing_and_never_goes_below_zero(account, project, on_commit):
    with on_commit():
        threads = [create_thread(project=project) for _ in range(3)]
    cache.delete(caches.slots_key(account.pk))
    assert caches.thread_slots_used(account.pk) == 3

    cache.set(caches.slots_key(account.pk), 0)  # drifted low
    with on_commit():
        threads[0].delete()
    assert cache.get(caches.slots_key(account.pk)) is None  # dropped, not negative
    assert caches.thread_slots_used(account.pk) == 2


def test_with_the_cache_down_deletion_succeeds_and_usage_heals(api, account, project, settings, caplog, on_commit):
    with on_commit():
        threads = [create_thread(project=project) for _ in range(3)]
    assert usage(api, account)["thread_count"] == 3  # cached
    working_cache = settings.CACHES

    settings.CACHES = UNREACHABLE_CACHE
    with caplog.at_level(logging.ERROR, logger="projects.caches"), on_commit():
        deleted = [api.delete(f"/api/threads/{t.pk}").status_code for t in threads[:2]]
        created = api.post("/api/threads", {"project_id": str(project.pk)}, format="json")
    assert deleted == [200, 200]
    assert created.status_code == 201  # the limit is checked against the database
    assert str(account.pk) in caplog.text and "Cache" in caplog.text
    assert usage(api, account)["thread_count"] == 2  # from the database

    settings.CACHES = working_cache  # back: the stale entries are dropped, numbers rebuilt
    assert usage(api, account)["thread_count"] == 2
    assert caches.thread_slots_used(account.pk) == 2
