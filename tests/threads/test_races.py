"""Races between writers of one thread, as real concurrent HTTP requests against a live
server on PostgreSQL: each race ends with a 2xx for the winner and a clean 404/409 for
the loser — never a 500 or a deadlock — and the database is consistent afterwards."""

import threading
import uuid

import httpx
import pytest
from rest_framework_simplejwt.tokens import RefreshToken

from threads.models import Checkpoint, Message, Run, Thread
from threads.services import create_thread, post_message, put_checkpoint

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

ROUNDS = 12
ALLOWED = {200, 201, 204, 404, 409}


def together(*calls) -> list:
    """Start the calls at the same moment, each in its own thread; their responses."""
    barrier = threading.Barrier(len(calls))
    results = [None] * len(calls)

    def run(i, call):
        barrier.wait()
        try:
            results[i] = call()
        except Exception as exc:  # a dropped connection is a failure too, reported below
            results[i] = exc

    workers = [threading.Thread(target=run, args=(i, call)) for i, call in enumerate(calls)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(timeout=120)
    return results


@pytest.fixture
def http(live_server, owner):
    token = str(RefreshToken.for_user(owner).access_token)
    with httpx.Client(base_url=f"{live_server.url}/api", headers={"Authorization": f"Bearer {token}"},
                      timeout=60) as client:
        yield client


def statuses(responses) -> list:
    out = []
    for r in responses:
        assert not isinstance(r, Exception), r
        assert r.status_code in ALLOWED, (r.status_code, r.request.method, r.request.url, r.text[:500])
        if r.status_code >= 400:
            assert isinstance(r.json()["detail"], str)
            # A deadlock or serialization failure answers 409 too: never in these races.
            assert r.json().get("code") != "concurrent_conflict", (r.request.method, r.request.url, r.text)
        out.append(r.status_code)
    return out


def new_thread(project, owner, *, checkpoints=0):
    thread = create_thread(project=project, created_by=owner)
    post_message(thread=thread, role="user", content=[{"type": "text", "text": "hello"}])
    parent = None
    for i in range(checkpoints):
        cp = put_checkpoint(thread=thread, checkpoint_id=f"cp-{i}", parent_checkpoint_id=parent,
                            checkpoint={"v": i}, metadata={})
        parent = cp.checkpoint_id
    return thread


def assert_consistent(thread_ids):
    """No row of a deleted thread left; every run has a thread; seqs without gaps; a
    checkpoint's parent exists; at most one active run per thread."""
    for tid in thread_ids:
        if not Thread.objects.filter(pk=tid).exists():
            assert not Run.objects.filter(thread_id=tid).exists()
            assert not Message.objects.filter(thread_id=tid).exists()
            assert not Checkpoint.objects.filter(thread_id=tid).exists()
            continue
        seqs = list(Message.objects.filter(thread_id=tid).order_by("seq").values_list("seq", flat=True))
        assert seqs == list(range(1, len(seqs) + 1))
        assert Run.objects.filter(thread_id=tid, status__in=["pending", "running"]).count() <= 1
        ids = set(Checkpoint.objects.filter(thread_id=tid).values_list("checkpoint_id", flat=True))
        parents = set(Checkpoint.objects.filter(thread_id=tid).exclude(parent_checkpoint_id=None)
                      .values_list("parent_checkpoint_id", flat=True))
        assert parents <= ids


def test_prune_delete_against_run_creation(http, project, owner):
    keep = new_thread(project, owner)  # the project stays: only the raced thread goes
    seen = []
    for _ in range(ROUNDS):
        thread = new_thread(project, owner, checkpoints=2)
        prune, run = together(
            lambda: http.post("/threads/prune", json={"thread_ids": [str(thread.pk)], "strategy": "delete"}),
            lambda: http.post(f"/threads/{thread.pk}/runs", json={}),
        )
        seen.append(tuple(statuses([prune, run])))
        assert prune.json() == {"pruned_count": 1}
        assert not Thread.objects.filter(pk=thread.pk).exists()
        assert_consistent([thread.pk, keep.pk])
    assert Thread.objects.filter(pk=keep.pk).exists()


def test_prune_delete_of_the_last_thread_against_run_creation(http, account, owner):
    from projects.services import create_project

    for i in range(ROUNDS // 2):
        project = create_project(account=account, name=f"last-{i}")
        thread = new_thread(project, owner)
        prune, run = together(
            lambda: http.post("/threads/prune", json={"thread_ids": [str(thread.pk)], "strategy": "delete"}),
            lambda: http.post(f"/threads/{thread.pk}/runs", json={}),
        )
        statuses([prune, run])
        assert not Thread.objects.filter(pk=thread.pk).exists()
        assert not type(project).objects.filter(pk=project.pk).exists()
        assert_consistent([thread.pk])


def test_delete_thread_against_posting_messages(http, project, owner):
    keep = new_thread(project, owner)
    for _ in range(ROUNDS):
        thread = new_thread(project, owner)
        body = {"role": "user", "content": [{"type": "text", "text": "racing"}]}
        results = together(
            lambda: http.delete(f"/threads/{thread.pk}"),
            lambda: http.post(f"/threads/{thread.pk}/messages", json=body),
            lambda: http.post(f"/threads/{thread.pk}/messages", json=body),
        )
        codes = statuses(results)
        assert codes[0] == 200
        assert not Thread.objects.filter(pk=thread.pk).exists()
        assert_consistent([thread.pk, keep.pk])


def test_a_thread_delete_s_receipt_counts_what_went_with_it(http, project, owner):
    """Messages posted and runs deleted while a thread is deleted: its receipt counts
    exactly what the cascade removed (it counted in a snapshot taken before writers
    holding the thread's lock committed: 2 messages for 16 posted, 3 runs for 1)."""
    from receipts.models import DeletionReceipt

    new_thread(project, owner)  # the project stays
    for _ in range(ROUNDS // 2):
        thread = new_thread(project, owner)  # one message
        runs = [Run.objects.create(thread=thread, seq=i + 1, status="success") for i in range(3)]
        Thread.objects.filter(pk=thread.pk).update(last_run_seq=3)
        body = {"role": "user", "content": [{"type": "text", "text": "racing"}]}
        results = together(
            lambda: http.delete(f"/threads/{thread.pk}"),
            *[lambda: http.post(f"/threads/{thread.pk}/messages", json=body)] * 6,
            *[lambda r=r: http.delete(f"/threads/{thread.pk}/runs/{r.pk}") for r in runs[:2]],
        )
        codes = statuses(results)
        assert codes[0] == 200
        posted = codes[1:7].count(201)
        runs_deleted = codes[7:].count(200)
        receipt = DeletionReceipt.objects.get(kind="thread_delete", root_ids__contains=[str(thread.pk)])
        assert (receipt.messages, receipt.runs) == (1 + posted, 3 - runs_deleted), (codes, receipt.messages, receipt.runs)


def test_delete_run_against_cancel(http, project, owner):
    thread = new_thread(project, owner)
    for i in range(ROUNDS):
        run = Run.objects.create(thread=thread, seq=i + 1, status="pending" if i % 2 else "running")
        Thread.objects.filter(pk=thread.pk).update(last_run_seq=i + 1)
        delete, cancel = together(
            lambda: http.delete(f"/threads/{thread.pk}/runs/{run.pk}?force=true"),
            lambda: http.post(f"/threads/{thread.pk}/runs/{run.pk}/cancel?action=interrupt"),
        )
        codes = statuses([delete, cancel])
        assert codes[0] == 200  # a forced delete always wins in the end
        assert not Run.objects.filter(pk=run.pk).exists()
        assert_consistent([thread.pk])


def test_prune_keep_latest_against_run_start(http, project, owner):
    threads = [new_thread(project, owner, checkpoints=3) for _ in range(3)]
    for i in range(ROUNDS):
        for t in threads:  # something to prune again
            parent = Checkpoint.objects.filter(thread=t).order_by("-id").values_list("checkpoint_id", flat=True).first()
            put_checkpoint(thread=t, checkpoint_id=f"more-{i}-{uuid.uuid4()}", parent_checkpoint_id=parent,
                           checkpoint={"i": i}, metadata={})
        target = threads[i % len(threads)]
        prune, run = together(
            lambda: http.post("/threads/prune", json={"thread_ids": [str(t.pk) for t in threads],
                                                      "strategy": "keep_latest"}),
            lambda: http.post(f"/threads/{target.pk}/runs", json={}),
        )
        statuses([prune, run])
        assert_consistent([t.pk for t in threads])
        for t in threads:
            assert Thread.objects.filter(pk=t.pk).exists()
            assert Checkpoint.objects.filter(thread=t).exists()  # the newest always stays


def agent_thread(project, owner):
    from agents.services import create_agent
    from threads.services.lifecycle import open_thread

    agent = getattr(project, "_race_agent", None) or create_agent(account=project.account, name="racer", model="m")
    project._race_agent = agent
    return agent, open_thread(project=project, agent=agent, created_by=owner)


def test_delete_and_prune_against_a_new_turn(http, project, owner):
    """A turn updates its thread twice, so PostgreSQL checks the thread's keys again
    (`FOR KEY SHARE` on the project): the delete's project lock must not conflict with
    that, or the two deadlock. The delete always wins; the turn answers or 404s."""
    keep = new_thread(project, owner)
    for i in range(ROUNDS):
        agent, thread = agent_thread(project, owner)
        remove = ((lambda: http.delete(f"/threads/{thread.pk}")) if i % 2 else
                  (lambda: http.post("/threads/prune", json={"thread_ids": [str(thread.pk)], "strategy": "delete"})))
        gone, turn = together(remove, lambda: http.post(f"/agents/{agent.pk}/threads/{thread.pk}/turns",
                                                        json={"message": "hi"}))
        codes = statuses([gone, turn])
        assert codes[0] == 200, gone.text
        assert codes[1] in (201, 404), turn.text
        assert not Thread.objects.filter(pk=thread.pk).exists()
        assert_consistent([thread.pk, keep.pk])


def test_concurrent_project_deletes_and_an_update(http, account, owner):
    """One delete deletes (one receipt); the others and a racing update get a 404 —
    an update never brings the project back."""
    from projects.models import Project
    from projects.services import create_project
    from receipts.models import DeletionReceipt

    for i in range(ROUNDS // 2):
        project = create_project(account=account, name=f"doomed-{i}")
        new_thread(project, owner)
        results = together(*[lambda: http.delete(f"/projects/{project.pk}")] * 4,
                           lambda: http.patch(f"/projects/{project.pk}", json={"name": "renamed"}))
        codes = statuses(results)
        assert sorted(codes[:4]) == [200, 404, 404, 404], codes
        assert codes[4] in (200, 404)
        assert not Project.objects.filter(pk=project.pk).exists()
        assert DeletionReceipt.objects.filter(kind="project_delete", root_ids__contains=[str(project.pk)]).count() == 1


def test_project_delete_against_a_new_turn(http, account, owner):
    """As the thread delete: deleting the project must not take its row before its
    threads, or it deadlocks with a turn (which takes `FOR KEY SHARE` on the project)."""
    from projects.services import create_project

    for i in range(ROUNDS // 2):
        project = create_project(account=account, name=f"turning-{i}")
        new_thread(project, owner)
        agent, thread = agent_thread(project, owner)
        gone, turn = together(lambda: http.delete(f"/projects/{project.pk}"),
                              lambda: http.post(f"/agents/{agent.pk}/threads/{thread.pk}/turns", json={"message": "hi"}))
        codes = statuses([gone, turn])
        assert codes[0] == 200, gone.text
        assert codes[1] in (201, 404), turn.text
        assert not Thread.objects.filter(pk=thread.pk).exists()


def test_account_delete_against_a_new_turn(http, owner):
    """The account's deletion (the admin's, a command's) against a turn in it: no
    deadlock either way — the account goes, the turn answers or 404s."""
    from django.db import connection

    from projects.models import Account
    from projects.services import create_account, create_project, delete_account

    def delete(account):
        try:
            delete_account(account=account)
            return "deleted"
        finally:
            connection.close()

    for i in range(ROUNDS // 2):
        account = create_account(name=f"going-{i}", owner=owner)
        project = create_project(account=account, name="p")
        agent, thread = agent_thread(project, owner)
        gone, turn = together(lambda: delete(account),
                              lambda: http.post(f"/agents/{agent.pk}/threads/{thread.pk}/turns", json={"message": "hi"}))
        assert gone == "deleted", gone
        assert statuses([turn])[0] in (201, 404), turn.text
        assert not Account.objects.filter(pk=account.pk).exists()


@pytest.mark.parametrize("delete_threads", [False, True])
def test_agent_delete_against_thread_creation(http, project, owner, delete_threads):
    """Deleting an agent while threads bound to it are created. A thread creation
    takes the account's lock, which the deletion takes first: it commits before the
    deletion reads the agent's threads (and is closed, or deleted with
    `delete_threads`) or finds the agent gone (404). Never a foreign-key violation
    (500) at commit, a deadlock, or a thread that escapes the deletion idle and
    unbound (each seen before)."""
    from agents.models import Agent
    from agents.services import create_agent
    from threads.models import ThreadStatus

    new_thread(project, owner)  # keeps the project when the agent's threads are deleted
    for i in range(ROUNDS // 2):
        agent = create_agent(account=project.account, name=f"doomed-{i}", model="echo-1", created_by=owner)
        path = f"/assistants/{agent.pk}?delete_threads=true" if delete_threads else f"/agents/{agent.pk}"
        results = together(lambda: http.delete(path), *[
            lambda: http.post(f"/agents/{agent.pk}/threads", json={"projectId": str(project.pk), "message": "hello"}),
            lambda: http.post("/threads", json={"project_id": str(project.pk), "agent_id": str(agent.pk)}),
        ] * 3)
        codes = statuses(results)
        assert codes[0] in (200, 204), results[0].text
        assert all(c in (201, 404) for c in codes[1:]), [(r.status_code, r.text[:200]) for r in results]
        assert not Agent.objects.filter(pk=agent.pk).exists()
        for r in results[1:]:
            if r.status_code == 201:
                made = Thread.objects.filter(pk=r.json().get("id") or r.json().get("thread_id")).first()
                if delete_threads:
                    assert made is None, "a thread created with the deleted agent was left behind"
                else:
                    assert made is not None and made.status == ThreadStatus.CLOSED and made.agent_id is None


def test_agent_delete_against_runs_of_it(http, project, owner):
    """Runs of an agent on threads of no agent (which bind it), while the agent is
    deleted: a run holds the agent (`FOR KEY SHARE`) until it commits, or finds it gone
    (404) — never a foreign-key violation (500) at commit. The run that committed first
    stays, with its agent reference cleared. A run that starts executing on such a
    thread during the deletion can deadlock with it (each locks a row the other's
    foreign keys need): PostgreSQL breaks it off, the loser answers 409
    `concurrent_conflict` and nothing is half done (the agent is there, or gone)."""
    from agents.models import Agent
    from agents.services import create_agent

    new_thread(project, owner)
    for i in range(ROUNDS // 2):
        agent = create_agent(account=project.account, name=f"used-{i}", model="echo-1", created_by=owner)
        free = [new_thread(project, owner) for _ in range(3)]
        results = together(lambda: http.delete(f"/agents/{agent.pk}"), *[
            lambda t=t: http.post(f"/threads/{t.pk}/runs", json={"assistant_id": str(agent.pk)}) for t in free])
        for r in results:
            assert not isinstance(r, Exception), r
            assert r.status_code in (200, 201, 404, 409), (r.status_code, r.text[:300])
        if results[0].status_code == 409:  # broken off: nothing deleted, and it can be sent again
            assert results[0].json()["code"] == "concurrent_conflict"
            assert Agent.objects.filter(pk=agent.pk).exists()
            assert http.delete(f"/agents/{agent.pk}").status_code == 200
        assert not Agent.objects.filter(pk=agent.pk).exists()
        made = [r.json()["run_id"] for r in results[1:] if r.status_code == 200]
        assert Run.objects.filter(pk__in=made).count() == len(made)
        assert not Run.objects.filter(agent_id=agent.pk).exists()
        assert_consistent([t.pk for t in free])


def test_assistant_delete_against_a_run_on_its_idle_thread(http, project, owner):
    """LangGraph's assistant deletion keeps the threads open, but clears their agent:
    it must hold them (all, not only the busy ones) before deleting the agent, or a
    run created on one meanwhile deadlocks with it."""
    from agents.models import Agent
    from agents.services import create_agent

    new_thread(project, owner)
    for i in range(ROUNDS // 2):
        agent = create_agent(account=project.account, name=f"assistant-{i}", model="echo-1", created_by=owner)
        mine = [create_thread(project=project, created_by=owner, agent=agent) for _ in range(2)]
        results = together(lambda: http.delete(f"/assistants/{agent.pk}"), *[
            lambda t=t: http.post(f"/threads/{t.pk}/runs", json={"assistant_id": str(agent.pk)}) for t in mine])
        codes = statuses(results)
        assert codes[0] == 204 and all(c in (201, 404) for c in codes[1:]), codes
        assert not Agent.objects.filter(pk=agent.pk).exists()
        assert_consistent([t.pk for t in mine])


def test_close_and_delete_of_a_thread_whose_sub_thread_sorts_first(http, project, owner):
    """Closing locks the thread, then its subtree; the deletion must lock the same way
    (roots first), or with a sub-thread whose id sorts before its parent's the two
    deadlock."""
    from agents.services import create_agent

    new_thread(project, owner)
    agent = create_agent(account=project.account, name="closer", model="echo-1", created_by=owner)
    for i in range(ROUNDS // 2):
        parent = create_thread(project=project, created_by=owner, agent=agent,
                               thread_id=uuid.UUID(f"ffffffff-0000-4000-8000-{i:012d}"))
        create_thread(project=project, created_by=owner, parent_thread=parent, agent=agent,
                      thread_id=uuid.UUID(f"00000000-0000-4000-8000-{i:012d}"))
        results = together(lambda: http.delete(f"/threads/{parent.pk}"),
                           lambda: http.post(f"/agents/{agent.pk}/threads/{parent.pk}/close"))
        codes = statuses(results)
        assert codes[0] == 200 and codes[1] in (200, 404, 409), codes
        assert not Thread.objects.filter(pk=parent.pk).exists()


def test_thread_and_project_deletes_against_their_webhooks_firing(http, project, owner, live_server):
    """A webhook call holds its trigger's row, then takes the project and thread locks;
    a deletion reaches the trigger through the cascade: it locks the triggers first,
    so the call either ran first or finds its trigger gone — never a deadlock."""
    from agents.models import AgentTrigger
    from agents.services import create_agent, create_trigger
    from projects.services import create_project

    agent = create_agent(account=project.account, name="hooked", model="echo-1", created_by=owner)
    new_thread(project, owner)

    def fire(trigger, secret):
        with httpx.Client(base_url=live_server.url, timeout=60) as anon:
            return anon.post(f"/api/webhooks/{trigger.pk}/{secret}", json={"message": "ping"})

    for i in range(ROUNDS // 2):
        thread = new_thread(project, owner)
        on_thread, secret = create_trigger(agent=agent, kind="webhook", thread=thread)
        doomed = create_project(account=project.account, name=f"hooked-{i}")
        new_thread(doomed, owner)
        on_project, project_secret = create_trigger(agent=agent, kind="webhook", project=doomed)
        results = together(lambda: http.delete(f"/threads/{thread.pk}"), lambda: http.delete(f"/projects/{doomed.pk}"),
                           *[lambda: fire(on_thread, secret)] * 2, *[lambda: fire(on_project, project_secret)] * 2)
        codes = statuses(results)
        assert codes[:2] == [200, 200], codes
        assert not AgentTrigger.objects.filter(pk__in=[on_thread.pk, on_project.pk]).exists()
        assert_consistent([thread.pk])
