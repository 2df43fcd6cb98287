"""Closing an agent thread: sub-threads, what a closed thread still allows, and races."""

import threading

import pytest
from django.db import connection

from agents import services as agent_services
from tests.conftest import client_for
from threads import services
from threads.models import Run, Thread

from .test_agent_threads import agent, base, check_detail, create  # noqa: F401  (agent: a fixture)

pytestmark = pytest.mark.django_db


def statuses(*threads):
    return [Thread.objects.get(pk=t.pk).status for t in threads]


def test_an_awaiting_sub_thread_blocks_the_close(api, agent, project, django_capture_on_commit_callbacks):  # noqa: F811
    root = Thread.objects.get(pk=create(api, agent, project)["id"])
    idle_child = services.create_thread(project=project, agent=agent, parent_thread=root)
    waiting = services.create_thread(project=project, agent=agent, parent_thread=idle_child)
    with django_capture_on_commit_callbacks(execute=True):
        services.start_turn(thread=waiting, message="approve: web.fetch")
    r = api.post(base(agent, root.pk, "close"))
    assert r.status_code == 409 and str(waiting.pk) in r.json()["detail"] and "cancel" in r.json()["detail"]
    assert statuses(root, idle_child, waiting) == ["idle", "idle", "awaiting"]
    assert Thread.objects.filter(completed_at__isnull=False).count() == 0

    api.post(base(agent, waiting.pk, "cancel"))  # cancel first, then the close goes through
    assert api.post(base(agent, root.pk, "close")).status_code == 200
    assert statuses(root, idle_child, waiting) == ["closed", "closed", "closed"]


def test_a_closed_sub_thread_keeps_its_completion_time(api, agent, project):  # noqa: F811
    root = Thread.objects.get(pk=create(api, agent, project)["id"])
    child = services.create_thread(project=project, agent=agent, parent_thread=root)
    first = api.post(base(agent, child.pk, "close")).json()
    assert first["status"] == "closed" and first["parentThreadId"] == str(root.pk)
    assert statuses(root) == ["idle"]  # closing a sub-thread leaves its parent alone
    body = api.post(base(agent, root.pk, "close")).json()
    assert body["subThreads"][0]["completedAt"] == first["completedAt"]
    assert body["completedAt"] >= first["completedAt"]


def test_the_closed_detail_is_the_whole_shape(api, agent, project, django_capture_on_commit_callbacks):  # noqa: F811
    with django_capture_on_commit_callbacks(execute=True):
        thread_id = create(api, agent, project, message="hello", tools=["memory.read"])["id"]
    r = api.post(base(agent, thread_id, "close"))
    assert r.status_code == 200
    body = r.json()
    check_detail(body)
    assert body["status"] == "closed" and body["completedAt"] and body["lastTurnStatus"] == "completed"
    assert body["tools"] == ["memory.read"] and len(body["messages"]) == 2 and len(body["turns"]) == 1
    assert body["updatedAt"] >= body["completedAt"]
    assert api.get(base(agent, thread_id)).json() == body  # a closed thread reads the same


def test_a_closed_thread_takes_no_message_run_state_or_checkpoint(api, agent, project):  # noqa: F811
    thread_id = create(api, agent, project)["id"]
    api.post(base(agent, thread_id, "close"))
    writes = [("messages", {"role": "user", "content": [{"type": "text", "text": "x"}]}), ("runs", {}),
              ("state", {"values": {"topic": "x"}}),
              ("checkpoints", {"checkpoint_id": "zz", "checkpoint": {}, "metadata": {}})]
    for path, body in writes:
        r = api.post(f"/api/threads/{thread_id}/{path}", body, format="json")
        assert r.status_code == 409 and "closed" in r.json()["detail"], (path, r.status_code, r.content)
    assert not Thread.objects.get(pk=thread_id).checkpoints.exists()


def test_a_closed_thread_can_be_pruned_and_deleted(api, agent, project):  # noqa: F811
    keep = create(api, agent, project)["id"]  # keeps the project alive
    closed = [create(api, agent, project)["id"] for _ in range(2)]
    for thread_id in closed:
        api.post(base(agent, thread_id, "close"))
    r = api.post("/api/threads/prune", {"thread_ids": [closed[0]], "strategy": "delete"}, format="json")
    assert r.json() == {"pruned_count": 1}
    assert api.delete(f"/api/threads/{closed[1]}").status_code == 200
    assert list(Thread.objects.values_list("pk", flat=True)) == [Thread.objects.get(pk=keep).pk]


def test_close_is_scoped_to_the_agent_and_the_account(api, agent, project, account, other_account):  # noqa: F811
    thread_id = create(api, agent, project)["id"]
    other_agent = agent_services.create_agent(account=account, name="Other", model="echo-1")
    assert api.post(base(other_agent, thread_id, "close")).status_code == 404
    stranger = client_for(other_account.memberships.get().user)
    assert stranger.post(base(agent, thread_id, "close")).status_code == 404
    assert statuses(Thread(pk=thread_id)) == ["idle"]


def race(*calls):
    """Run the calls at once in real threads; their outcomes: "ok" or the HTTP status."""
    outcomes, barrier = [None] * len(calls), threading.Barrier(len(calls))

    def attempt(i, call):
        try:
            barrier.wait()
            call()
            outcomes[i] = "ok"
        except Exception as exc:
            outcomes[i] = getattr(exc, "status_code", repr(exc))
        finally:
            connection.close()

    workers = [threading.Thread(target=attempt, args=(i, call)) for i, call in enumerate(calls)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    return outcomes


def test_a_sub_thread_of_a_parent_closed_since_it_was_read_is_refused(agent, project):  # noqa: F811
    """The API reads the parent, then creates under the locks: a close that committed
    in between is seen there (409), not missed because the parent read was idle."""
    root = services.create_thread(project=project, agent=agent)
    read_before_the_close = Thread.objects.get(pk=root.pk)
    services.close_thread(thread=root)
    with pytest.raises(Exception) as refused:
        services.create_thread(project=project, agent=agent, parent_thread=read_before_the_close)
    assert getattr(refused.value, "status_code", None) == 409 and "closed" in str(refused.value.detail)
    assert not Thread.objects.filter(parent_thread=root).exists()


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_closing_a_parent_while_sub_threads_are_created_through_the_api(owner, agent, project):  # noqa: F811
    """A close and sub-thread creations sent at once: each sub-thread is either closed
    with its parent or refused (409) — never left open under a closed parent."""
    for _ in range(3):
        root_id = services.create_thread(project=project, agent=agent).pk
        clients = [client_for(owner) for _ in range(4)]
        codes = {"close": [], "create": []}

        def close():
            codes["close"].append(clients[0].post(base(agent, root_id, "close")).status_code)

        def sub_thread(client):
            def call():
                body = {"project_id": str(project.pk), "parent_thread_id": str(root_id), "agent_id": str(agent.pk)}
                codes["create"].append(client.post("/api/threads", body, format="json").status_code)
            return call

        race(close, *(sub_thread(client) for client in clients[1:]))
        assert codes["close"] == [200] and set(codes["create"]) <= {201, 409}, codes
        children = Thread.objects.filter(parent_thread_id=root_id)
        assert children.count() == codes["create"].count(201)
        assert not children.exclude(status="closed").exists(), codes


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_closing_a_parent_while_a_sub_thread_starts_a_turn(agent, project):  # noqa: F811
    for _ in range(5):
        root = services.create_thread(project=project, agent=agent)
        child = services.create_thread(project=project, agent=agent, parent_thread=root)
        grandchild = services.create_thread(project=project, agent=agent, parent_thread=child)
        outcomes = race(lambda: services.close_thread(thread=root),
                        lambda: services.start_turn(thread=grandchild, message="hi"))
        assert sorted(outcomes, key=str) == [409, "ok"], outcomes
        closed = Thread.objects.filter(pk__in=[root.pk, child.pk, grandchild.pk], status="closed").count()
        active = Run.objects.filter(thread=grandchild, status__in=["pending", "running"]).exists()
        if outcomes[0] == "ok":  # the close won: the whole tree closed, no turn started
            assert closed == 3 and not Run.objects.filter(thread=grandchild).exists()
        else:  # the turn won: nothing closed
            assert closed == 0
        assert not (closed and active)


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_close_and_turns_sent_at_once_through_the_api(owner, agent, project):  # noqa: F811
    """Through HTTP with several clients: one close and two turns at once."""
    for _ in range(3):
        thread_id = services.create_thread(project=project, agent=agent).pk
        clients = [client_for(owner) for _ in range(3)]
        codes = []

        def post(client, action, body=None):
            def call():
                codes.append(client.post(base(agent, thread_id, action), body, format="json").status_code)
            return call

        race(post(clients[0], "close"), post(clients[1], "turns", {"message": "a"}),
             post(clients[2], "turns", {"message": "b"}))
        thread = Thread.objects.get(pk=thread_id)
        runs = Run.objects.filter(thread=thread).count()
        assert sorted(codes).count(409) == 2 and len(codes) == 3, codes
        assert (thread.status == "closed") == (runs == 0)
        assert runs <= 1
        assert not (thread.status == "closed" and Run.objects.filter(thread=thread, status__in=["pending", "running"]).exists())


def test_close_threads_closes_each_subtree_or_skips_it_whole(project):
    """A batch: a thread with a running sub-thread is skipped whole (nothing under it
    closes); an idle one closes with its sub-threads; a closed one is skipped. One
    receipt for what closed."""
    from receipts.models import DeletionReceipt

    blocked, free, done = (services.create_thread(project=project) for _ in range(3))
    blocked_child = services.create_thread(project=project, parent_thread=blocked)
    busy_grandchild = services.create_thread(project=project, parent_thread=blocked_child)
    services.create_run(thread=busy_grandchild)
    free_child = services.create_thread(project=project, parent_thread=free)
    services.close_thread(thread=done)
    before = set(DeletionReceipt.objects.values_list("pk", flat=True))

    closed, skipped = services.close_threads(thread_ids=[blocked.pk, free.pk, done.pk])

    assert closed == 1
    assert skipped == {f"Sub-thread {busy_grandchild.pk} is running or awaiting: cancel it first, then close.": 1,
                       "The thread is already closed.": 1}
    assert statuses(blocked, blocked_child, busy_grandchild) == ["idle", "idle", "running"]
    assert statuses(free, free_child) == ["closed", "closed"]
    receipt = DeletionReceipt.objects.exclude(pk__in=before).get()
    assert (receipt.kind, receipt.root_ids, receipt.threads_closed) == ("thread_close", [str(free.pk)], 2)


def test_closing_many_threads_costs_the_queries_of_closing_one(project, django_assert_num_queries):
    from django.test.utils import CaptureQueriesContext

    one = [services.create_thread(project=project)]
    many = [services.create_thread(project=project) for _ in range(20)]
    for thread in many[:10]:
        services.create_thread(project=project, parent_thread=thread)
    with CaptureQueriesContext(connection) as few_queries:
        assert services.close_threads(thread_ids=[t.pk for t in one]) == (1, {})
    with django_assert_num_queries(len(few_queries)):
        assert services.close_threads(thread_ids=[t.pk for t in many]) == (20, {})
    assert not Thread.objects.exclude(status="closed").exists()
