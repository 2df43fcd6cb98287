"""Every destructive operation writes exactly one receipt, in its transaction, with
the right counts, who and from where — in a number of queries that does not grow
with what it removes."""

from io import StringIO

import pytest
from django.core.management import call_command
from django.db import transaction

from agents import services as agent_services
from projects import services as project_services
from projects.models import Account
from receipts.context import acting
from receipts.models import DeletionReceipt
from receipts.services import operation
from sandboxes.models import Sandbox, SandboxState
from tests.conftest import client_for
from tests.threads.test_delete_cascade import fill
from tests.threads.test_prune import make_threads
from threads import services
from threads.models import Checkpoint, Embedding, Message, Run, Thread
from threads.vectorstore import schedule_message_indexing

pytestmark = pytest.mark.django_db

COUNTS = ("threads", "messages", "runs", "checkpoints", "projects", "sandboxes", "agents", "threads_closed")


def only_receipt(**expected) -> DeletionReceipt:
    """The one receipt written, with these counts (the others zero)."""
    receipts = list(DeletionReceipt.objects.all())
    assert len(receipts) == 1, [(r.kind, r.root_ids) for r in receipts]
    receipt = receipts[0]
    assert {c: getattr(receipt, c) for c in COUNTS} == {c: expected.get(c, 0) for c in COUNTS}
    return receipt


def sandbox_for(project, state=SandboxState.READY):
    return Sandbox.objects.create(project=project, account=project.account, provider="local", state=state)


def indexed(django_capture_on_commit_callbacks, threads, text="apples and pears"):
    with django_capture_on_commit_callbacks(execute=True), transaction.atomic():
        ids = []
        for thread in threads:
            seq = Thread.objects.get(pk=thread.pk).last_message_seq + 1
            Thread.objects.filter(pk=thread.pk).update(last_message_seq=seq)
            ids.append(Message.objects.create(thread=thread, seq=seq, role="user",
                                              content=[{"type": "text", "text": text}]).pk)
        schedule_message_indexing(message_ids=ids)


# --- one receipt per operation, with its counts ------------------------------------------


def test_thread_delete_from_the_api(api, owner, account, project, django_capture_on_commit_callbacks):
    thread = services.create_thread(project=project, created_by=owner)
    sub = services.create_thread(project=project, parent_thread=thread)
    fill(thread, messages=5, runs=2, checkpoints=3)
    fill(sub, messages=2, runs=0, checkpoints=1)
    indexed(django_capture_on_commit_callbacks, [thread, sub])
    sandbox = sandbox_for(project)

    with django_capture_on_commit_callbacks(execute=True):
        assert api.delete(f"/api/threads/{thread.pk}").status_code == 200

    receipt = only_receipt(threads=2, messages=9, runs=2, checkpoints=4, projects=1, sandboxes=1)
    assert (receipt.kind, receipt.source, receipt.actor, receipt.actor_id) == ("thread_delete", "api", "owner", owner.pk)
    assert receipt.account_id == account.pk and receipt.root_ids == [str(thread.pk)]
    assert (receipt.cleanup_state, receipt.embeddings, receipt.cleanup_error) == ("complete", 2, "")
    assert receipt.embedding_thread_ids == [] and receipt.completed_at is not None
    sandbox.refresh_from_db()
    assert sandbox.state == SandboxState.DELETED
    assert not Embedding.objects.exists()


def test_the_receipt_holds_no_content(api, project, django_capture_on_commit_callbacks):
    thread = services.create_thread(project=project)
    fill(thread, messages=3)
    Message.objects.filter(thread=thread).update(content=[{"type": "text", "text": "secret-words-here"}])
    with django_capture_on_commit_callbacks(execute=True):
        api.delete(f"/api/threads/{thread.pk}")
    row = DeletionReceipt.objects.values().get()
    assert "secret-words-here" not in repr(row)


def test_the_receipt_is_part_of_the_deleting_transaction(project):
    thread = services.create_thread(project=project)
    with pytest.raises(RuntimeError), transaction.atomic():
        services.delete_thread(thread=thread)
        assert DeletionReceipt.objects.count() == 1
        raise RuntimeError("rolled back")
    assert Thread.objects.filter(pk=thread.pk).exists() and not DeletionReceipt.objects.exists()


def test_a_thread_deleted_in_the_shell_gets_a_receipt_too(project, django_capture_on_commit_callbacks):
    keep = services.create_thread(project=project)
    thread = services.create_thread(project=project)
    fill(thread, messages=4, runs=1, checkpoints=2)
    with django_capture_on_commit_callbacks(execute=True):
        Thread.objects.get(pk=thread.pk).delete()
    receipt = only_receipt(threads=1, messages=4, runs=1, checkpoints=2)
    assert (receipt.kind, receipt.source, receipt.actor) == ("thread_delete", "system", "system")
    assert Thread.objects.filter(pk=keep.pk).exists()


@pytest.mark.parametrize("strategy", ["delete", "keep_latest"])
def test_prune_from_the_api(api, owner, project, strategy, django_capture_on_commit_callbacks):
    threads = make_threads(project, 3, messages=2, checkpoints=4)
    with django_capture_on_commit_callbacks(execute=True):
        response = api.post("/api/threads/prune", {"thread_ids": [str(t.pk) for t in threads], "strategy": strategy},
                            format="json")
    assert response.json() == {"pruned_count": 3}
    if strategy == "delete":
        receipt = only_receipt(threads=3, messages=6, checkpoints=12, projects=1)
    else:
        receipt = only_receipt(checkpoints=9)
        assert Checkpoint.objects.count() == 3
    assert (receipt.kind, receipt.source, receipt.actor) == (f"prune_{strategy}", "api", "owner")
    assert sorted(receipt.root_ids) == sorted(str(t.pk) for t in threads)
    assert receipt.cleanup_state == "complete"


def test_prune_command_writes_a_receipt_per_batch_of_one_operation(project, tmp_path,
                                                                  django_capture_on_commit_callbacks):
    ids = [t.pk for t in make_threads(project, 5, messages=1)]
    services.create_thread(project=project)  # not in the file: stays
    ids_file = tmp_path / "ids.txt"
    ids_file.write_text("\n".join(str(i) for i in ids))
    with django_capture_on_commit_callbacks(execute=True):
        call_command("prune_threads", "--ids-file", str(ids_file), "--batch-size", "2", "--yes", stdout=StringIO())
    receipts = list(DeletionReceipt.objects.order_by("created_at"))
    assert [r.threads for r in receipts] == [2, 2, 1]
    assert {(r.kind, r.source, r.actor) for r in receipts} == {("prune_delete", "command", "system")}
    assert len({r.operation_id for r in receipts}) == 1
    assert sum(r.messages for r in receipts) == 5


def test_ttl_sweep(project, django_capture_on_commit_callbacks):
    from django.utils import timezone

    expired = make_threads(project, 2, messages=3, expires_at=timezone.now())
    services.create_thread(project=project)
    with django_capture_on_commit_callbacks(execute=True):
        assert services.sweep_expired_threads(strategy="delete") == 2
    receipt = only_receipt(threads=2, messages=6)
    assert (receipt.kind, receipt.source, receipt.actor) == ("prune_delete", "ttl", "system")
    assert sorted(receipt.root_ids) == sorted(str(t.pk) for t in expired)


def test_run_delete_and_rollback(api, owner, project):
    thread = services.create_thread(project=project, created_by=owner)
    fill(thread, messages=4, runs=2, checkpoints=6)
    run = Run.objects.filter(thread=thread).order_by("seq").first()
    assert api.delete(f"/api/threads/{thread.pk}/runs/{run.pk}").status_code == 200
    receipt = only_receipt(runs=1, checkpoints=3)
    assert (receipt.kind, receipt.source, receipt.root_ids) == ("run_delete", "api", [str(run.pk)])
    assert (receipt.actor_id, receipt.actor, receipt.account_id) == (owner.pk, owner.username, thread.account_id)
    assert (receipt.cleanup_state, receipt.operation_id is not None) == ("complete", True)
    assert receipt.created_at and receipt.completed_at
    assert Message.objects.filter(thread=thread).count() == 4  # detached, not removed

    DeletionReceipt.objects.all().delete()
    other = Run.objects.get(thread=thread)
    Run.objects.filter(pk=other.pk).update(status="running")
    services.cancel_run(thread=thread, run_id=other.pk, action="rollback")
    assert only_receipt(runs=1, checkpoints=3).kind == "run_delete"


def test_a_run_delete_writes_the_receipt_record_would_and_counts_it_after_commit(
        api, owner, project, caplog, django_capture_on_commit_callbacks):
    """A run deleted on its own writes its receipt in its delete statement (PostgreSQL);
    the receipt, the log line and the metrics are those of any recorded deletion."""
    from config.observability import DELETED, DESTRUCTIVE_OPS

    thread = services.create_thread(project=project, created_by=owner)
    fill(thread, messages=4, runs=2, checkpoints=6)
    alone, in_operation = Run.objects.filter(thread=thread).order_by("seq")
    checkpoints_before = DELETED.labels("checkpoints")._value.get()
    operations_before = DESTRUCTIVE_OPS.labels("run_delete")._value.get()
    caplog.set_level("INFO", logger="threadkeeper")
    with django_capture_on_commit_callbacks(execute=True):
        assert api.delete(f"/api/threads/{thread.pk}/runs/{alone.pk}").status_code == 200
    with acting(source="api", user=owner), transaction.atomic(), operation("run_delete"):
        services.delete_run(thread=thread, run_id=in_operation.pk)  # the receipt is the operation's
    first, second = DeletionReceipt.objects.order_by("created_at")
    assert [first.root_ids, second.root_ids] == [[str(alone.pk)], [str(in_operation.pk)]]
    ignored = {"id", "operation_id", "created_at", "completed_at", "root_ids"}
    fields = [f.attname for f in DeletionReceipt._meta.concrete_fields if f.attname not in ignored]
    assert {f: getattr(first, f) for f in fields} == {f: getattr(second, f) for f in fields}
    assert (first.runs, first.checkpoints, first.account_id, first.actor) == (1, 3, thread.account_id, owner.username)
    assert first.completed_at is not None and first.operation_id != second.operation_id
    logged = [r for r in caplog.records if getattr(r, "event", None) == "destructive_operation"]
    assert [(r.operation, r.counts, r.source) for r in logged] == [("run_delete", {"runs": 1, "checkpoints": 3}, "api")]
    assert DELETED.labels("checkpoints")._value.get() - checkpoints_before == 3
    assert DESTRUCTIVE_OPS.labels("run_delete")._value.get() - operations_before == 1


def test_a_thread_delete_writes_the_receipt_record_would_and_sends_its_cleanup(
        api, owner, project, caplog, django_capture_on_commit_callbacks):
    """A thread deleted on its own writes its receipt in its delete statement
    (PostgreSQL): the same receipt as one recorded in an operation, then its cleanup
    task, log line and metrics after commit."""
    from config.observability import DELETED

    services.create_thread(project=project)  # the project stays
    alone, in_operation = (services.create_thread(project=project, created_by=owner) for _ in range(2))
    children = {}
    for root in (alone, in_operation):
        fill(root, messages=5, runs=2, checkpoints=4)
        children[root.pk] = services.create_thread(project=project, parent_thread=root)
        fill(children[root.pk], messages=3, runs=1, checkpoints=1)
    Embedding.objects.create(thread_id=alone.pk, project_id=project.pk, account_id=project.account_id,
                             vector=[0.0] * 8, text="alone")
    messages_before = DELETED.labels("messages")._value.get()
    caplog.set_level("INFO", logger="threadkeeper")
    with django_capture_on_commit_callbacks() as after_commit:
        assert api.delete(f"/api/threads/{alone.pk}").status_code == 200
    written = DeletionReceipt.objects.get()
    assert sorted(written.embedding_thread_ids) == sorted([str(alone.pk), str(children[alone.pk].pk)])
    assert written.cleanup_state == "pending"
    for callback in after_commit:
        callback()
    with acting(source="api", user=owner), transaction.atomic(), operation("thread_delete"):
        services.delete_thread(thread=in_operation)
    first, second = DeletionReceipt.objects.order_by("created_at")
    assert [first.root_ids, second.root_ids] == [[str(alone.pk)], [str(in_operation.pk)]]
    ignored = {"id", "operation_id", "created_at", "completed_at", "root_ids", "embedding_thread_ids",
               "cleanup_state", "cleanup_attempts", "last_attempt_at", "embeddings_removed_at", "embeddings"}
    fields = [f.attname for f in DeletionReceipt._meta.concrete_fields if f.attname not in ignored]
    assert {f: getattr(first, f) for f in fields} == {f: getattr(second, f) for f in fields}
    assert (first.threads, first.messages, first.runs, first.checkpoints) == (2, 8, 3, 5)
    assert (first.account_id, first.actor, first.source) == (project.account_id, owner.username, "api")
    assert len(second.embedding_thread_ids) == 2
    assert (first.cleanup_state, first.embeddings) == ("complete", 1)  # its task ran after commit
    assert not Embedding.objects.exists()
    logged = [r for r in caplog.records if getattr(r, "event", None) == "destructive_operation"]
    assert [(r.operation, r.counts) for r in logged] == [
        ("thread_delete", {"threads": 2, "messages": 8, "runs": 3, "checkpoints": 5})]
    assert DELETED.labels("messages")._value.get() - messages_before == 8


def test_agent_delete(api, owner, account, project):
    agent = agent_services.create_agent(account=account, name="Doomed", model="m")
    threads = [services.create_thread(project=project, agent=agent) for _ in range(3)]
    services.close_thread(thread=threads[0])
    DeletionReceipt.objects.all().delete()
    assert api.delete(f"/api/agents/{agent.pk}").status_code == 200
    receipt = only_receipt(agents=1, threads_closed=2)
    assert (receipt.kind, receipt.source, receipt.root_ids) == ("agent_delete", "api", [str(agent.pk)])


def test_close(api, owner, account, project):
    agent = agent_services.create_agent(account=account, name="Closer", model="m")
    thread = services.create_thread(project=project, agent=agent, created_by=owner)
    services.create_thread(project=project, agent=agent, parent_thread=thread)
    assert api.post(f"/api/agents/{agent.pk}/threads/{thread.pk}/close").status_code == 200
    receipt = only_receipt(threads_closed=2)
    assert (receipt.kind, receipt.root_ids) == ("thread_close", [str(thread.pk)])


def test_project_delete(api, project, django_capture_on_commit_callbacks):
    for thread in make_threads(project, 3, messages=2, checkpoints=1):
        services.create_thread(project=project, parent_thread=thread)
    sandbox_for(project)
    with django_capture_on_commit_callbacks(execute=True):
        assert api.delete(f"/api/projects/{project.pk}").status_code == 200
    receipt = only_receipt(threads=6, messages=6, checkpoints=3, projects=1, sandboxes=1)
    assert (receipt.kind, receipt.source, receipt.root_ids) == ("project_delete", "api", [str(project.pk)])
    assert receipt.cleanup_state == "complete"


def test_account_delete(account, project, django_capture_on_commit_callbacks):
    second = project_services.create_project(account=account, name="second")
    make_threads(project, 2, messages=3)
    make_threads(second, 1, checkpoints=2)
    agent_services.create_agent(account=account, name="A", model="m")
    sandbox_for(second)
    with django_capture_on_commit_callbacks(execute=True), acting(source="admin"):
        Account.objects.get(pk=account.pk).delete()
    receipt = only_receipt(threads=3, messages=6, checkpoints=2, projects=2, sandboxes=1, agents=1)
    assert (receipt.kind, receipt.source, receipt.account_id) == ("account_delete", "admin", account.pk)
    assert receipt.cleanup_state == "complete"


def test_nothing_removed_writes_no_receipt(api, project):
    thread = services.create_thread(project=project)
    assert api.post("/api/threads/prune", {"thread_ids": [str(thread.pk)], "strategy": "keep_latest"},
                    format="json").json() == {"pruned_count": 0}
    assert services.delete_threads(thread_ids=[]) == 0
    assert not DeletionReceipt.objects.exists()


def test_one_receipt_per_account_touched(account, project, other_account, django_capture_on_commit_callbacks):
    theirs = project_services.create_project(account=other_account, name="theirs")
    mine, foreign = make_threads(project, 2, messages=1), make_threads(theirs, 3, messages=2)
    services.prune_threads(thread_ids=[t.pk for t in mine + foreign])  # a trusted caller
    receipts = {r.account_id: r for r in DeletionReceipt.objects.all()}
    assert set(receipts) == {account.pk, other_account.pk}
    assert (receipts[account.pk].threads, receipts[account.pk].messages) == (2, 2)
    assert (receipts[other_account.pk].threads, receipts[other_account.pk].messages) == (3, 6)
    assert receipts[account.pk].operation_id == receipts[other_account.pk].operation_id


def test_an_outer_acting_names_user_and_operation(owner, project):
    import uuid

    thread = services.create_thread(project=project)
    job = uuid.uuid4()
    with transaction.atomic(), acting(source="job", user=owner, operation_id=job):
        services.delete_thread(thread=thread)
    receipt = DeletionReceipt.objects.get()
    assert (receipt.source, receipt.actor, receipt.actor_id, receipt.operation_id) == ("job", "owner", owner.pk, job)


def test_receipts_outlive_the_account_and_the_user(make_user, django_capture_on_commit_callbacks):
    user = make_user("leaving")
    account = project_services.create_account(name="Gone", owner=user)
    project = project_services.create_project(account=account, name="p")
    thread = services.create_thread(project=project, created_by=user)
    with django_capture_on_commit_callbacks(execute=True):
        client_for(user).delete(f"/api/threads/{thread.pk}")
        Account.objects.get(pk=account.pk).delete()
    user.delete()
    assert DeletionReceipt.objects.filter(account_id=account.pk).count() == 2
    assert set(DeletionReceipt.objects.values_list("actor", flat=True)) == {"leaving", "system"}


# --- O(1): the same queries for 1 and 1,000 threads ---------------------------------------


def _queries(django_assert_max_num_queries, budget, fn):
    with django_assert_max_num_queries(budget) as captured:
        fn()
    return len(captured)


@pytest.mark.parametrize("strategy", ["delete", "keep_latest"])
def test_a_receipt_costs_the_same_queries_for_1_and_1000_threads(
    account, django_assert_max_num_queries, strategy
):
    counts = []
    for n in (1, 1000):
        project = project_services.create_project(account=account, name=f"p{n}")
        sandbox_for(project)
        threads = make_threads(project, n, messages=3, checkpoints=3)
        services.create_thread(project=project, parent_thread=threads[0])
        budget = 13 if strategy == "delete" else 8  # savepoints (2) included
        counts.append(_queries(django_assert_max_num_queries, budget,
                               lambda: services.prune_batch(thread_ids=[t.pk for t in threads], strategy=strategy)))
        receipt = DeletionReceipt.objects.order_by("-created_at").first()
        if strategy == "delete":
            assert (receipt.threads, receipt.messages, receipt.checkpoints, receipt.projects, receipt.sandboxes) == (
                n + 1, 3 * n, 3 * n, 1, 1)
        else:
            assert (receipt.threads, receipt.checkpoints, len(receipt.root_ids)) == (0, 2 * n, n)
    assert counts[0] == counts[1], counts


def test_project_and_account_deletes_cost_the_same_queries_whatever_they_hold(
    make_user, django_assert_max_num_queries
):
    counts = []
    for n in (1, 1000):
        account = project_services.create_account(name=f"a{n}", owner=make_user(f"o{n}"))
        project = project_services.create_project(account=account, name="p")
        sandbox_for(project)
        make_threads(project, n, messages=2, checkpoints=2)
        second = project_services.create_project(account=account, name="q")
        make_threads(second, n, messages=1)
        # the project's triggers, its row lock, then its threads': a lock each, in that order
        counts.append(_queries(django_assert_max_num_queries, 11,
                               lambda: project_services.delete_project(project=project)))
        counts.append(_queries(django_assert_max_num_queries, 7, lambda: Account.objects.get(pk=account.pk).delete()))
        project_receipt, account_receipt = DeletionReceipt.objects.filter(account_id=account.pk).order_by("created_at")
        assert (project_receipt.threads, project_receipt.messages, project_receipt.checkpoints) == (n, 2 * n, 2 * n)
        assert (account_receipt.threads, account_receipt.messages, account_receipt.projects) == (n, n, 1)
    assert counts[0] == counts[2] and counts[1] == counts[3], counts


def test_the_source_follows_the_surface():
    from receipts.middleware import DeletionOriginMiddleware

    middleware = DeletionOriginMiddleware(lambda request: None)
    assert middleware.source_of("/admin/threads/thread/") == "admin"
    assert middleware.source_of("/api/webhooks/1/abc") == "webhook"
    assert middleware.source_of("/api/threads/1") == "api"


def test_runs_deleted_inside_an_operation_share_its_receipt(owner, project):
    """Runs deleted inside one open operation (as a caller deleting several would)
    get its single receipt, each run's tally added to it."""
    thread = services.create_thread(project=project, created_by=owner)
    fill(thread, messages=4, runs=2, checkpoints=6)
    first, second = Run.objects.filter(thread=thread).order_by("seq")
    with transaction.atomic(), operation("run_delete"):
        services.delete_run(thread=thread, run_id=first.pk)
        services.delete_run(thread=thread, run_id=second.pk)
    receipt = only_receipt(runs=2, checkpoints=6)
    assert sorted(receipt.root_ids) == sorted([str(first.pk), str(second.pk)])
    assert not Run.objects.filter(thread=thread).exists()
