"""Messages of a thread: per-thread seq without gaps, cursor pages, indexing after commit."""

import threading

import pytest
from django.db import connection

from projects.models import Role
from tests.conftest import client_for
from threads import services
from threads.models import Embedding, Message, Run, Thread, ThreadStatus

pytestmark = pytest.mark.django_db


@pytest.fixture
def thread(project, owner):
    return services.create_thread(project=project, created_by=owner)


def messages_url(thread):
    return f"/api/threads/{thread.pk}/messages"


def text(value):
    return {"role": "user", "content": [{"type": "text", "text": value}]}


def test_messages_get_seq_1_2_3_and_page_by_seq(api, thread):
    for i in range(5):
        r = api.post(messages_url(thread), text(f"m{i}"), format="json")
        assert r.status_code == 201 and r.json()["seq"] == i + 1
    body = api.get(messages_url(thread), {"limit": 2}).json()
    assert [m["seq"] for m in body["results"]] == [1, 2] and body["has_more"] and body["next_after_seq"] == 2
    body = api.get(messages_url(thread) + "/", {"after_seq": body["next_after_seq"], "limit": 2}).json()
    assert [m["seq"] for m in body["results"]] == [3, 4] and body["has_more"]
    body = api.get(messages_url(thread), {"after_seq": 4, "limit": 2}).json()
    assert [m["seq"] for m in body["results"]] == [5] and not body["has_more"] and body["next_after_seq"] is None
    thread.refresh_from_db()
    assert thread.last_message_seq == 5


@pytest.mark.parametrize("payload", [
    {"role": "robot", "content": [{"type": "text", "text": "x"}]},
    {"role": "user", "content": []},
    {"role": "user", "content": "text"},
    {"role": "user", "content": [{"type": "text"}]},
    {"role": "user"},
    {"role": "user", "content": [{"type": "text", "text": "x"}], "run_id": "not-a-uuid"},
])
def test_bad_messages_are_422(api, thread, payload):
    r = api.post(messages_url(thread), payload, format="json")
    assert r.status_code == 422 and r.json()["detail"]
    assert not Message.objects.exists()


def test_bad_message_query_is_422(api, thread):
    assert api.get(messages_url(thread), {"limit": 0}).status_code == 422
    assert api.get(messages_url(thread), {"limit": 501}).status_code == 422
    assert api.get(messages_url(thread), {"after_seq": "x"}).status_code == 422
    assert api.get("/api/threads/not-a-uuid/messages").status_code == 422
    offset = api.get(messages_url(thread), {"offset": 1})  # other lists page by offset; this one does not
    assert offset.status_code == 422 and "after_seq" in offset.json()["detail"]


def test_a_message_may_belong_to_a_run_of_this_thread_only(api, thread, project, owner):
    run = Run.objects.create(thread=thread, seq=1, status="success")
    r = api.post(messages_url(thread), {**text("x"), "run_id": str(run.pk)}, format="json")
    assert r.status_code == 201 and r.json()["run_id"] == str(run.pk)
    other = services.create_thread(project=project, created_by=owner)
    foreign = Run.objects.create(thread=other, seq=1, status="success")
    r = api.post(messages_url(thread), {**text("y"), "run_id": str(foreign.pk)}, format="json")
    assert r.status_code == 422 and r.json()["errors"]["run_id"]


@pytest.mark.django_db(transaction=True)
def test_a_message_for_a_run_deleted_since_it_was_read_is_a_422(project, owner):
    """The API reads the run, then posts under the thread's lock: a run deleted in
    between (its deletion takes that lock first) is a 422, as an unknown run — not a
    foreign-key violation at commit, a 500 with nothing said."""
    thread = services.create_thread(project=project, created_by=owner)
    run = services.create_run(thread=thread)
    read_before_the_delete = Run.objects.get(pk=run.pk)
    services.delete_run(thread=thread, run_id=run.pk, force=True)
    with pytest.raises(Exception) as refused:
        services.post_message(thread=thread, role="user", content=[{"type": "text", "text": "x"}],
                              run=read_before_the_delete)
    assert getattr(refused.value, "status_code", None) == 422, refused.value
    assert refused.value.errors == {"run_id": ["No such run."]}
    assert not Message.objects.filter(thread=thread, role="user").exists()


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_messages_and_checkpoints_posted_for_a_run_being_deleted_are_201_or_422(project, owner):
    """Through HTTP, at once: posts naming a run, and the run's deletion. Each post
    lands before the deletion (201; its message detached, its checkpoint deleted with
    the run) or after it (422), never a 500."""
    from .test_close import race

    for _ in range(3):
        thread = services.create_thread(project=project, created_by=owner)
        run_id = str(services.create_run(thread=thread).pk)
        clients = [client_for(owner) for _ in range(7)]
        codes = {"delete": [], "post": []}
        url = f"/api/threads/{thread.pk}"

        def delete():
            codes["delete"].append(clients[0].delete(f"{url}/runs/{run_id}?force=true").status_code)

        def post(i):
            def call():
                if i % 2:
                    body = {**text(str(i)), "run_id": run_id}
                    codes["post"].append(clients[i].post(f"{url}/messages", body, format="json").status_code)
                else:
                    body = {"checkpoint_id": f"c{i}", "checkpoint": {}, "metadata": {}, "run_id": run_id}
                    codes["post"].append(clients[i].post(f"{url}/checkpoints", body, format="json").status_code)
            return call

        race(delete, *(post(i) for i in range(1, 7)))
        assert codes["delete"] == [200] and set(codes["post"]) <= {201, 422}, codes
        assert not Run.objects.filter(pk=run_id).exists()
        assert not Message.objects.filter(thread=thread).exclude(run=None).exists()


@pytest.mark.django_db(transaction=True)
def test_a_checkpoint_deleted_right_after_its_post_committed_is_still_a_201(api, thread):
    """The race above, made certain: the run (with the checkpoint) is deleted between
    the post's commit and its reading the checkpoint back. The answer is the 201 of
    the creation, the checkpoint and its writes as created — it was a 500."""
    from threads.models import Checkpoint

    run = services.create_run(thread=thread)
    Run.objects.filter(pk=run.pk).update(status="success")

    inserted = []

    def delete_first(execute, sql, params, many, context):
        table = Checkpoint._meta.db_table
        if sql.startswith("INSERT") and table in sql:
            inserted.append(sql)
        elif inserted and sql.startswith("SELECT") and table in sql and not connection.in_atomic_block:
            inserted.clear()  # committed; now the racing DELETE of the run, before the read-back
            services.delete_run(thread=thread, run_id=run.pk)
        return execute(sql, params, many, context)

    body = {"checkpoint_id": "c1", "checkpoint": {"v": 1}, "metadata": {"step": 0}, "run_id": str(run.pk),
            "writes": [{"task_id": "t", "idx": 1, "channel": "b", "value": 2},
                       {"task_id": "t", "idx": 0, "channel": "a", "value": 1}]}
    with connection.execute_wrapper(delete_first):
        r = api.post(f"/api/threads/{thread.pk}/checkpoints", body, format="json")
    assert r.status_code == 201, r.content
    assert r.json()["checkpoint_id"] == "c1" and [w["idx"] for w in r.json()["writes"]] == [0, 1]
    assert not Checkpoint.objects.filter(thread=thread).exists() and not Run.objects.filter(pk=run.pk).exists()


def test_a_closed_thread_takes_no_message(api, thread):
    Thread.objects.filter(pk=thread.pk).update(status=ThreadStatus.CLOSED)
    r = api.post(messages_url(thread), text("late"), format="json")
    assert r.status_code == 409 and r.json()["detail"]
    assert api.get(messages_url(thread)).status_code == 200  # still readable


def test_message_access(anon, thread, account, member_of, other_account):
    assert anon.post(messages_url(thread), text("x"), format="json").status_code == 401
    viewer = client_for(member_of(account, Role.VIEWER))
    assert viewer.get(messages_url(thread)).status_code == 200
    assert viewer.post(messages_url(thread), text("x"), format="json").status_code == 403
    stranger = client_for(other_account.memberships.get().user)
    assert stranger.get(messages_url(thread)).status_code == 404
    member = client_for(member_of(account, Role.MEMBER))
    assert member.post(messages_url(thread), text("x"), format="json").status_code == 201


def test_posted_messages_are_indexed_after_commit(api, thread, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        message_id = api.post(messages_url(thread), text("remember the lighthouse"), format="json").json()["message_id"]
    assert not Embedding.objects.exists()  # nothing before the commit
    for callback in callbacks:
        callback()
    assert Embedding.objects.filter(thread_id=thread.pk, message_id=message_id).exists()


@pytest.mark.parametrize("size", [1, 60])
def test_listing_messages_costs_the_same_queries_whatever_the_page_size(api, thread, django_assert_num_queries, size):
    Message.objects.bulk_create(Message(thread=thread, seq=i + 1, role="user", content=[]) for i in range(size))
    # the authenticated user, the thread, the page
    with django_assert_num_queries(3):
        assert len(api.get(messages_url(thread), {"limit": 500}).json()["results"]) == size


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_20_concurrent_posts_get_seqs_1_to_20(project, owner):
    thread = services.create_thread(project=project, created_by=owner)
    errors, barrier = [], threading.Barrier(20)

    def post(i):
        try:
            barrier.wait()
            services.post_message(thread=thread, role="user", content=[{"type": "text", "text": str(i)}])
        except Exception as exc:
            errors.append(exc)
        finally:
            connection.close()

    workers = [threading.Thread(target=post, args=(i,)) for i in range(20)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    assert errors == []
    seqs = Message.objects.filter(thread=thread).order_by("seq").values_list("seq", "content")
    assert [s for s, _ in seqs] == list(range(1, 21))
    assert sorted(int(c[0]["text"]) for _, c in seqs) == list(range(20))  # every post is there once
    assert Thread.objects.get(pk=thread.pk).last_message_seq == 20


def test_the_last_seq_counts_the_messages_whichever_way_they_arrive(thread, owner):
    """Deletion receipts and previews read a thread's message count from its
    `last_message_seq`: messages are numbered 1, 2, ... with no gap whichever way they
    arrive, and a copy keeps the numbers."""
    from threads.selectors import deletion_impact

    services.post_message(thread=thread, role="user", content=[{"type": "text", "text": "hello"}])
    run = services.create_run(thread=thread, input={"messages": [
        {"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}, {"role": "user", "content": "c"}]})
    services.execute_run(run_id=run.pk)  # the input, appended by role, then the answer
    services.post_message(thread=thread, role="user", content=[{"type": "text", "text": "again"}])
    services.execute_run(run_id=services.create_run(thread=thread).pk)
    copy = services.copy_thread(thread=thread, created_by=owner)
    services.post_message(thread=copy, role="user", content=[{"type": "text", "text": "in the copy"}])
    for t, expected in ((thread, 7), (copy, 8)):
        t.refresh_from_db()
        seqs = list(Message.objects.filter(thread=t).order_by("seq").values_list("seq", flat=True))
        assert seqs == list(range(1, expected + 1)) and t.last_message_seq == expected
        assert deletion_impact(thread_ids_queryset=Thread.objects.filter(pk=t.pk))["messages"] == expected
