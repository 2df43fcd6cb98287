"""POST /api/threads/prune and the prune service: who may prune what, the count, the
two strategies, and a query cost that does not grow with the batch."""

import uuid

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from projects import caches
from projects.models import Project, Role
from projects.services import create_project
from sandboxes.models import Sandbox, SandboxState
from sandboxes.services import provision_sandbox
from tests.conftest import client_for
from threads import services
from threads.models import Checkpoint, CheckpointWrite, Embedding, Message, Run, Thread
from threads.selectors import deletion_impact, keep_latest_impact
from threads.vectorstore import schedule_message_indexing

pytestmark = pytest.mark.django_db


def make_threads(project, n, *, messages=0, checkpoints=0, **fields):
    """n threads in bulk, each with `messages` messages and a chain of `checkpoints`."""
    threads = Thread.objects.bulk_create(
        [Thread(account_id=project.account_id, project=project, last_message_seq=messages, **fields)
         for _ in range(n)]
    )
    Message.objects.bulk_create(
        [Message(thread=t, seq=i + 1, role="user", content=[]) for t in threads for i in range(messages)]
    )
    Checkpoint.objects.bulk_create(
        [Checkpoint(thread=t, checkpoint_id=f"c{i}", parent_checkpoint_id=f"c{i - 1}" if i else None)
         for t in threads for i in range(checkpoints)]
    )
    return threads


def prune(client, ids, strategy=None):
    body = {"thread_ids": [str(i) for i in ids]}
    if strategy:
        body["strategy"] = strategy
    return client.post("/api/threads/prune", body, format="json")


# --- who may prune what, and the count ----------------------------------------------------


def test_the_count_ignores_duplicates_unknown_and_foreign_ids(api, project, other_account):
    mine = make_threads(project, 3, messages=2)
    foreign = make_threads(create_project(account=other_account, name="theirs"), 1)[0]

    response = prune(api, [mine[0].pk, mine[0].pk, mine[1].pk, uuid.uuid4(), foreign.pk])

    assert response.status_code == 200 and response.json() == {"pruned_count": 2}
    assert list(Thread.objects.filter(project=project).values_list("pk", flat=True)) == [mine[2].pk]
    assert Thread.objects.filter(pk=foreign.pk).exists()
    assert Message.objects.filter(thread=mine[2]).count() == 2


def test_a_viewer_prunes_nothing_but_threads_they_created(account, project, member_of):
    viewer = member_of(account, Role.VIEWER)
    others, = make_threads(project, 1)
    own, = make_threads(project, 1, created_by=viewer)

    assert prune(client_for(viewer), [others.pk, own.pk]).json() == {"pruned_count": 1}
    assert list(Thread.objects.values_list("pk", flat=True)) == [others.pk]


@pytest.mark.parametrize("role", [Role.MEMBER, Role.ADMIN])
def test_write_roles_prune(account, project, member_of, role):
    threads = make_threads(project, 2)
    assert prune(client_for(member_of(account, role)), [t.pk for t in threads]).json() == {"pruned_count": 2}


def test_an_empty_list_prunes_nothing(api, project):
    make_threads(project, 1)
    response = prune(api, [])
    assert response.status_code == 200 and response.json() == {"pruned_count": 0}
    assert Thread.objects.count() == 1


def test_a_thousand_ids_are_accepted_and_the_trailing_slash_works(api, project):
    threads = make_threads(project, 3)
    ids = [t.pk for t in threads] + [uuid.uuid4() for _ in range(997)]
    response = api.post("/api/threads/prune/", {"thread_ids": [str(i) for i in ids]}, format="json")
    assert response.status_code == 200 and response.json() == {"pruned_count": 3}


@pytest.mark.parametrize("body", [
    {"thread_ids": ["not-a-uuid"]},
    {"thread_ids": [str(uuid.uuid4()), 42]},
    {"thread_ids": [str(uuid.uuid4())], "strategy": "shred"},
    {"thread_ids": [str(uuid.uuid4())], "strategy": None},
    {"strategy": "delete"},
    {"thread_ids": None},
    {"thread_ids": "abc"},
    {"thread_ids": {"id": str(uuid.uuid4())}},
    {"thread_ids": [str(uuid.uuid4()) for _ in range(1001)]},
])
def test_bad_requests_are_422_and_prune_nothing(api, project, body):
    make_threads(project, 1)
    response = api.post("/api/threads/prune", body, format="json")
    assert response.status_code == 422
    assert isinstance(response.json()["detail"], str) and response.json()["errors"]
    assert Thread.objects.count() == 1


def test_too_many_bad_ids_are_one_error_and_a_huge_id_is_not_echoed(api):
    response = api.post("/api/threads/prune", {"thread_ids": ["x"] * 1001}, format="json")
    assert response.status_code == 422 and response.json()["errors"] == {
        "thread_ids": ["Ensure this field has no more than 1000 elements."]}
    response = api.delete(f"/api/threads/{'a' * 5000}")
    assert response.status_code == 422 and len(response.content) < 300


def test_a_body_that_is_not_an_object_is_422(api):
    response = api.post("/api/threads/prune", [str(uuid.uuid4())], format="json")
    assert response.status_code == 422 and isinstance(response.json()["detail"], str)


def test_no_token_is_401(anon, project):
    thread, = make_threads(project, 1)
    response = anon.post("/api/threads/prune", {"thread_ids": [str(thread.pk)]}, format="json")
    assert response.status_code == 401 and response.json()["detail"]
    assert Thread.objects.filter(pk=thread.pk).exists()


def test_the_service_validates_like_the_endpoint(owner):
    from config.errors import Invalid

    for kwargs in ({"thread_ids": ["x"]}, {"thread_ids": [], "strategy": "shred"},
                   {"thread_ids": "abc"}, {"thread_ids": [uuid.uuid4()] * 1001}):
        with pytest.raises(Invalid):
            services.prune_threads(user=owner, **{"strategy": "delete", **kwargs})


# --- delete: exactly what DELETE /api/threads/{id} does ------------------------------------


def test_pruning_the_last_threads_of_a_project_cleans_up_exactly_as_delete(
    api, account, settings, django_capture_on_commit_callbacks
):
    """Two identical projects, each with a sandbox and threads with embeddings and a
    sub-thread: one emptied with DELETE, one with prune. Same outcome."""
    settings.SANDBOX_PROVIDER = "local"

    def build(name):
        project = create_project(account=account, name=name)
        with django_capture_on_commit_callbacks(execute=True):
            sandbox, _ = provision_sandbox(project=project)
        roots = [services.create_thread(project=project) for _ in range(2)]
        sub = services.create_thread(project=project, parent_thread=roots[0])
        for thread in (*roots, sub):
            services.post_message(thread=thread, role="user", content=[{"type": "text", "text": f"apples {name}"}])
        with django_capture_on_commit_callbacks(execute=True):
            schedule_message_indexing(message_ids=list(Message.objects.filter(thread__project=project)
                                                       .values_list("pk", flat=True)))
        return project, sandbox, roots, [*roots, sub]

    def outcome(project, sandbox, all_threads):
        sandbox.refresh_from_db()
        return {
            "project": Project.objects.filter(pk=project.pk).exists(),
            "threads": Thread.objects.filter(pk__in=[t.pk for t in all_threads]).count(),
            "messages": Message.objects.filter(thread_id__in=[t.pk for t in all_threads]).count(),
            "embeddings": Embedding.objects.filter(thread_id__in=[t.pk for t in all_threads]).count(),
            "sandbox": (sandbox.state, sandbox.project_id),
        }

    deleted, pruned = build("deleted"), build("pruned")
    assert Embedding.objects.filter(thread_id__in=[t.pk for t in pruned[3]]).count() == 3
    assert caches.thread_slots_used(account.pk) == 6
    with django_capture_on_commit_callbacks(execute=True):
        for thread in deleted[2]:
            assert api.delete(f"/api/threads/{thread.pk}").status_code == 200
    with django_capture_on_commit_callbacks(execute=True):
        assert prune(api, [t.pk for t in pruned[2]]).json() == {"pruned_count": 2}

    expected = {"project": False, "threads": 0, "messages": 0, "embeddings": 0,
                "sandbox": (SandboxState.DELETED, None)}
    assert outcome(deleted[0], deleted[1], deleted[3]) == expected
    assert outcome(pruned[0], pruned[1], pruned[3]) == expected
    assert caches.thread_slots_used(account.pk) == 0


def test_delete_on_500_threads_costs_the_queries_of_5(account, owner):
    """Every project of each batch is emptied (project and sandbox go), with
    sub-threads, messages and checkpoints: the work that costs queries."""
    def batch(n_projects, per_project):
        ids = []
        for p in range(n_projects):
            project = create_project(account=account, name=f"{n_projects}-{p}")
            Sandbox.objects.create(project=project, account=account, provider="local", state=SandboxState.READY)
            roots = make_threads(project, per_project, messages=2, checkpoints=2)
            make_threads(project, 1, parent_thread=roots[0])
            ids += [t.pk for t in roots]
        return ids

    five, many = batch(5, 1), batch(50, 10)
    with CaptureQueriesContext(connection) as few_queries:
        assert services.prune_threads(user=owner, thread_ids=five, strategy="delete") == 5
    with CaptureQueriesContext(connection) as many_queries:
        assert services.prune_threads(user=owner, thread_ids=many, strategy="delete") == 500
    print(f"prune delete: {len(few_queries)} queries for 5 threads, {len(many_queries)} for 500")
    assert len(many_queries) <= len(few_queries) + 2
    assert not Thread.objects.exists() and not Project.objects.filter(account=account).exists()
    assert Sandbox.objects.filter(state=SandboxState.PENDING_DELETION, project=None).count() == 55


# --- keep_latest ---------------------------------------------------------------------------


def test_keep_latest_leaves_the_newest_checkpoint_per_namespace_as_a_root_with_its_writes(api, project):
    thread, = make_threads(project, 1, messages=3)
    newest = {}
    for ns in ("", "inner", "inner|deep"):
        parent = None
        for i in range(4):
            cp = Checkpoint.objects.create(thread=thread, checkpoint_ns=ns, checkpoint_id=f"{ns}-{i}",
                                           parent_checkpoint_id=parent)
            CheckpointWrite.for_checkpoint(cp, task_id="t", idx=0, channel="c", value={"i": i}).save()
            CheckpointWrite.for_checkpoint(cp, task_id="t", idx=1, channel="d", value={"i": i}).save()
            parent, newest[ns] = cp.checkpoint_id, cp.pk

    assert prune(api, [thread.pk], "keep_latest").json() == {"pruned_count": 1}

    left = Checkpoint.objects.filter(thread=thread).order_by("checkpoint_ns")
    assert [(c.checkpoint_ns, c.pk, c.parent_checkpoint_id) for c in left] == [
        ("", newest[""], None), ("inner", newest["inner"], None), ("inner|deep", newest["inner|deep"], None)]
    writes = CheckpointWrite.objects.filter(checkpoint__thread=thread)
    expected = sorted((pk, idx) for pk in newest.values() for idx in (0, 1))
    assert sorted(writes.values_list("checkpoint_id", "idx")) == expected
    assert not CheckpointWrite.objects.exclude(checkpoint_id__in=newest.values()).exists()  # no orphan write
    assert Message.objects.filter(thread=thread).count() == 3 and Thread.objects.filter(pk=thread.pk).exists()


def test_keep_latest_keeps_the_highest_id_not_the_highest_checkpoint_id(api, project):
    thread, = make_threads(project, 1)
    Checkpoint.objects.create(thread=thread, checkpoint_id="zzz-first")
    newest = Checkpoint.objects.create(thread=thread, checkpoint_id="aaa-second", parent_checkpoint_id="zzz-first")
    assert prune(api, [thread.pk], "keep_latest").json() == {"pruned_count": 1}
    assert list(Checkpoint.objects.filter(thread=thread).values_list("pk", flat=True)) == [newest.pk]


def test_keep_latest_skips_active_runs_and_threads_with_nothing_to_prune(api, project):
    busy, clean, empty, done = make_threads(project, 4)
    for thread in (busy, done):
        Checkpoint.objects.create(thread=thread, checkpoint_id="a")
        Checkpoint.objects.create(thread=thread, checkpoint_id="b", parent_checkpoint_id="a")
    Run.objects.create(thread=busy, seq=1, status="pending")
    Run.objects.create(thread=done, seq=1, status="success")
    Checkpoint.objects.create(thread=clean, checkpoint_id="only")
    Checkpoint.objects.create(thread=clean, checkpoint_ns="sub", checkpoint_id="only")

    response = prune(api, [busy.pk, clean.pk, empty.pk, done.pk], "keep_latest")

    assert response.json() == {"pruned_count": 1}
    assert Checkpoint.objects.filter(thread=busy).count() == 2
    assert list(Checkpoint.objects.filter(thread=done).values_list("checkpoint_id", "parent_checkpoint_id")) == [
        ("b", None)]
    assert Thread.objects.count() == 4


def test_keep_latest_on_500_threads_costs_the_queries_of_5(project, owner):
    five, many = make_threads(project, 5, checkpoints=3), make_threads(project, 500, checkpoints=3)
    with CaptureQueriesContext(connection) as few_queries:
        assert services.prune_threads(user=owner, thread_ids=[t.pk for t in five], strategy="keep_latest") == 5
    with CaptureQueriesContext(connection) as many_queries:
        assert services.prune_threads(user=owner, thread_ids=[t.pk for t in many], strategy="keep_latest") == 500
    assert len(many_queries) == len(few_queries)
    statements = [q for q in many_queries if "SAVEPOINT" not in q["sql"]]
    # The permission filter, then on PostgreSQL the lock and the prune in one execute, the
    # receipt; on SQLite (no lock) select, count, delete writes, delete checkpoints,
    # update, receipt.
    assert len(statements) == (3 if connection.vendor == "postgresql" else 7)
    assert Checkpoint.objects.count() == 505 and not Checkpoint.objects.exclude(parent_checkpoint_id=None).exists()


# --- the impact counts (the command's dry run, the admin's confirmation pages) ------------


def test_deletion_impact_counts_everything_that_would_go(project, account, django_assert_max_num_queries):
    other = create_project(account=account, name="other")
    Sandbox.objects.create(project=project, account=account, provider="local", state=SandboxState.READY)
    Sandbox.objects.create(project=other, account=account, provider="local", state=SandboxState.READY)
    a, b = make_threads(project, 2, messages=3, checkpoints=2)
    child, = make_threads(project, 1, messages=1, parent_thread=a)
    make_threads(project, 1, parent_thread=child)
    Run.objects.create(thread=child, seq=1, status="success")
    make_threads(other, 1)

    with django_assert_max_num_queries(1):
        impact = deletion_impact(thread_ids_queryset=Thread.objects.filter(pk__in=[a.pk, b.pk]))
    assert impact == {"threads": 4, "messages": 7, "runs": 1, "checkpoints": 4, "projects": 1, "sandboxes": 1}
    impact = deletion_impact(thread_ids_queryset=Thread.objects.filter(pk=a.pk))
    assert impact["threads"] == 3 and impact["projects"] == 0 and impact["sandboxes"] == 0
    assert deletion_impact(thread_ids_queryset=Thread.objects.none()) == dict.fromkeys(impact, 0)


def test_keep_latest_impact_counts_what_would_go(project):
    idle, busy = make_threads(project, 2, checkpoints=4)
    Run.objects.create(thread=busy, seq=1, status="running")
    impact = keep_latest_impact(thread_ids_queryset=Thread.objects.all())
    assert impact == {"threads": 2, "skipped_active_run": 1, "skipped_nothing_to_prune": 0, "checkpoints": 3}
    assert services.prune_batch(thread_ids=[idle.pk, busy.pk], strategy="keep_latest") == 1
    assert Checkpoint.objects.filter(thread=idle).count() == 1
