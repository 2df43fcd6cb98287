"""Checkpoints laid out like LangGraph's: parent in the same thread and namespace, state per namespace."""

import pytest
from django.db import connection

from projects.models import Role
from tests.conftest import client_for
from threads import services
from threads.models import Checkpoint, CheckpointWrite, Run

pytestmark = pytest.mark.django_db


@pytest.fixture
def thread(project, owner):
    return services.create_thread(project=project, created_by=owner)


def checkpoints_url(thread, path="checkpoints"):
    return f"/api/threads/{thread.pk}/{path}"


def put(client, thread, cid, parent=None, ns="", writes=(), **extra):
    return client.post(checkpoints_url(thread), {
        "checkpoint_id": cid, "parent_checkpoint_id": parent, "checkpoint_ns": ns,
        "checkpoint": {"step": cid}, "metadata": {"m": 1}, "writes": list(writes), **extra,
    }, format="json")


def test_parent_must_exist_in_the_thread_and_namespace(api, thread, project, owner):
    assert put(api, thread, "a").status_code == 201
    r = put(api, thread, "b", "a", writes=[{"task_id": "t", "idx": 0, "channel": "c", "value": 1}])
    assert r.status_code == 201
    assert r.json()["parent_checkpoint_id"] == "a" and r.json()["writes"][0]["channel"] == "c"
    r = put(api, thread, "x", "missing")
    assert r.status_code == 422 and r.json()["errors"]["parent_checkpoint_id"]
    assert put(api, thread, "y", "a", ns="inner").status_code == 422  # the parent is in another namespace
    other = services.create_thread(project=project, created_by=owner)
    assert put(api, other, "z", "a").status_code == 422  # ... or in another thread
    assert put(api, thread, "a").status_code == 409
    assert put(api, thread, "w", writes=[{"task_id": "t", "idx": 0, "channel": "c"}] * 2).status_code == 422
    assert set(Checkpoint.objects.values_list("checkpoint_id", flat=True)) == {"a", "b"}


def test_state_is_the_latest_checkpoint_of_a_namespace(api, thread):
    put(api, thread, "a")
    writes = [{"task_id": "t", "idx": 1, "channel": "c"}, {"task_id": "t", "idx": 0, "channel": "d"}]
    put(api, thread, "b", "a", writes=writes)
    put(api, thread, "i1", ns="inner")
    state = api.get(checkpoints_url(thread, "state")).json()
    assert state["checkpoint"]["checkpoint_id"] == "b" and state["parent_checkpoint"]["checkpoint_id"] == "a"
    inner = api.post(checkpoints_url(thread, "state/checkpoint"), {"checkpoint": {"checkpoint_ns": "inner"}},
                     format="json").json()
    assert inner["checkpoint"] == {"thread_id": str(thread.pk), "checkpoint_ns": "inner", "checkpoint_id": "i1",
                                   "checkpoint_map": {}}
    listed = api.get(checkpoints_url(thread), {"checkpoint_ns": ""}).json()["results"]
    assert [c["checkpoint_id"] for c in listed] == ["b", "a"]  # newest first
    assert [w["idx"] for w in listed[0]["writes"]] == [0, 1]
    assert len(api.get(checkpoints_url(thread)).json()["results"]) == 3


def test_a_checkpoint_may_belong_to_a_run_of_this_thread_only(api, thread, project, owner):
    run = Run.objects.create(thread=thread, seq=1, status="running")
    assert put(api, thread, "a", run_id=str(run.pk)).json()["run_id"] == str(run.pk)
    other = services.create_thread(project=project, created_by=owner)
    foreign = Run.objects.create(thread=other, seq=1, status="running")
    assert put(api, thread, "b", run_id=str(foreign.pk)).status_code == 422


@pytest.mark.django_db(transaction=True)
def test_a_checkpoint_for_a_run_deleted_since_it_was_read_is_a_422(project, owner):
    """As for messages: the run is checked again under the thread's lock (422), not
    left to the foreign key at commit (a 500)."""
    thread = services.create_thread(project=project, created_by=owner)
    run = services.create_run(thread=thread)
    read_before_the_delete = Run.objects.get(pk=run.pk)
    services.delete_run(thread=thread, run_id=run.pk, force=True)
    with pytest.raises(Exception) as refused:
        services.put_checkpoint(thread=thread, checkpoint_id="a", checkpoint={}, run=read_before_the_delete)
    assert getattr(refused.value, "status_code", None) == 422, refused.value
    assert refused.value.errors == {"run_id": ["No such run."]}
    assert not Checkpoint.objects.filter(thread=thread, checkpoint_id="a").exists()


def test_checkpoint_access(anon, thread, account, member_of, other_account):
    assert put(anon, thread, "a").status_code == 401
    viewer = client_for(member_of(account, Role.VIEWER))
    assert put(viewer, thread, "a").status_code == 403
    assert viewer.get(checkpoints_url(thread, "state")).status_code == 200
    assert client_for(other_account.memberships.get().user).get(checkpoints_url(thread)).status_code == 404


@pytest.mark.parametrize("size", [1, 30])
def test_listing_checkpoints_costs_the_same_queries_whatever_the_page_size(
    api, thread, django_assert_num_queries, size
):
    cps = Checkpoint.objects.bulk_create(Checkpoint(thread=thread, checkpoint_id=f"c{i}") for i in range(size))
    CheckpointWrite.objects.bulk_create(
        CheckpointWrite.for_checkpoint(cp, task_id="t", idx=i, channel="c") for cp in cps for i in range(2)
    )
    # the authenticated user, the thread, the count, the page, its writes
    with django_assert_num_queries(5):
        results = api.get(checkpoints_url(thread), {"limit": 500}).json()["results"]
    assert len(results) == size and all(len(c["writes"]) == 2 for c in results)


@pytest.mark.skipif(connection.vendor != "postgresql", reason="PostgreSQL's planner")
def test_a_thread_s_newest_checkpoint_is_read_from_its_index_whatever_the_statistics(project):
    """A thread holding half the table, behind another thread's newer checkpoints: its
    newest checkpoint (the state every read and run starts from, the parent of its next
    checkpoint, the head of its history, what a run delete keeps) comes from the
    `checkpoint_latest` index, not from walking the primary key back through the other
    thread's checkpoints."""
    from threads.selectors import latest_checkpoint, thread_history
    from threads.services.runs import relink_and_delete_sql

    older, newer = (services.create_thread(project=project) for _ in range(2))
    run = Run.objects.create(thread=older, seq=1, status="success")
    for thread in (older, newer):
        Checkpoint.objects.bulk_create(Checkpoint(thread=thread, checkpoint_id=f"c{i}", run=run if thread == older else None)
                                       for i in range(3000))
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE threads_checkpoint")
        cursor.execute("EXPLAIN " + relink_and_delete_sql("SELECT %(run)s::uuid AS id"),
                       {"run": run.pk, "thread": older.pk})
        run_delete = "\n".join(row[0] for row in cursor.fetchall())
    newest = Checkpoint.objects.newest_first(thread=older)
    for plan in (newest[:1].explain(), newest.values_list("checkpoint_id", "metadata")[:1].explain(),
                 newest[:10].explain(), run_delete):
        assert "Backward using threads_checkpoint_pkey" not in plan, plan
    assert "checkpoint_latest" in newest[:1].explain()
    assert latest_checkpoint(thread_id=older.pk).checkpoint_id == "c2999"
    assert [c.checkpoint_id for c in thread_history(thread=older, limit=2)] == ["c2999", "c2998"]
