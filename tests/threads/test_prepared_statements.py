"""The delete statements are prepared once per database connection and planned once
(`config.prepared`): a thread delete and a run delete send their statements as they
are the first time on a connection, their `PREPARE`s in the same message the second,
only `EXECUTE`s after, and keep PostgreSQL's generic plan; a connection that failed mid-message, or lost its statements, recovers; and
`DB_PREPARED_STATEMENTS=0` turns it off."""

import uuid

import pytest
from django.db import DatabaseError, connection, transaction
from django.test.utils import CaptureQueriesContext

from config.prepared import compiled, prepared
from receipts.models import DeletionReceipt
from threads import services
from threads.models import Checkpoint, Message, Run, Thread

pytestmark = pytest.mark.django_db
on_postgresql = pytest.mark.skipif(connection.vendor != "postgresql", reason="PostgreSQL's PREPARE")


def conversation(project, owner, n):
    thread = services.create_thread(project=project, created_by=owner)
    for i in range(n):
        services.post_message(thread=thread, role="user", content=[{"type": "text", "text": f"hello {i}"}])
    return thread


def finished_run(thread, text):
    services.post_message(thread=thread, role="user", content=[{"type": "text", "text": text}])
    run = services.create_run(thread=thread)
    return services.execute_run(run_id=run.pk)


def plans() -> list:
    """(generic plans, custom plans) of each statement this connection prepared."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT generic_plans, custom_plans FROM pg_prepared_statements WHERE name LIKE 'tk%%'")
        return cursor.fetchall()


def plan_cache_mode() -> str:
    with connection.cursor() as cursor:
        cursor.execute("SHOW plan_cache_mode")
        return cursor.fetchone()[0]


def sql_of(queries) -> str:
    return "\n".join(q["sql"] for q in queries.captured_queries)


@on_postgresql
@pytest.mark.django_db(transaction=True)
def test_a_connection_prepares_the_delete_statements_once_and_plans_them_once(project, owner):
    connection.close()  # a new connection: nothing prepared yet
    conversation(project, owner, 1)  # the project keeps a thread
    threads = [conversation(project, owner, 3 + i) for i in range(3)]

    sent = []
    for thread in threads:
        with transaction.atomic():  # a caller's transaction goes on with PostgreSQL's own plan choice
            with CaptureQueriesContext(connection) as queries:
                services.delete_thread(thread=thread)
            sent.append(sql_of(queries))
            assert plan_cache_mode() == "auto"

    # sent as they are the first time (a connection per request prepares nothing),
    # prepared the second, executed after
    assert "DELETE FROM" in sent[0] and "PREPARE" not in sent[0] and "EXECUTE tk_" not in sent[0]
    assert "PREPARE" in sent[1] and "EXECUTE tk_" in sent[1]
    assert "PREPARE" not in sent[2] and "EXECUTE tk_" in sent[2] and "DELETE FROM" not in sent[2]
    # every statement planned once, generic (left to choose, PostgreSQL re-plans the
    # recursive ones on every execution)
    assert plans() == [(2, 0)] * 5
    # and each did its work: the thread and what it held gone, its receipt counted
    assert not Thread.objects.filter(pk__in=[t.pk for t in threads]).exists()
    assert not Message.objects.filter(thread_id__in=[t.pk for t in threads]).exists()
    assert sorted(DeletionReceipt.objects.values_list("messages", flat=True)) == [3, 4, 5]


@on_postgresql
@pytest.mark.django_db(transaction=True)
def test_a_connection_prepares_the_run_delete_once(project, owner):
    connection.close()
    thread = services.create_thread(project=project, created_by=owner)
    runs = [finished_run(thread, f"turn {i}") for i in range(3)]
    checkpoints = {run.pk: Checkpoint.objects.filter(run=run).count() for run in runs}

    sent = []
    for run in reversed(runs):
        with CaptureQueriesContext(connection) as queries:
            services.delete_run(thread=thread, run_id=run.pk)
        sent.append(sql_of(queries))

    assert "PREPARE" not in sent[0] and "EXECUTE tk_" not in sent[0]
    assert "PREPARE" in sent[1] and "PREPARE" not in sent[2] and "EXECUTE tk_" in sent[2]
    assert plans() == [(2, 0)] * 3  # the thread's lock, the run's, the delete
    assert not Run.objects.filter(thread=thread).exists() and not Checkpoint.objects.filter(thread=thread).exists()
    assert sorted(DeletionReceipt.objects.values_list("checkpoints", flat=True)) == sorted(checkpoints.values())
    assert all(checkpoints.values())


def ask(statement, params):
    """Run a prepared statement in its own transaction; (its one value, the message)."""
    with transaction.atomic(), connection.cursor() as cursor, prepared(statement) as message:
        message.execute(cursor, params)
        return cursor.fetchone()[0], message


@on_postgresql
def test_a_failed_message_leaves_the_connection_able_to_use_the_statement():
    statement = f"SELECT 10 / %(x)s::int AS quotient -- {uuid.uuid4()}"
    name = compiled(statement).name

    value, message = ask(statement, {"x": 5})  # its first use: sent as it is
    assert (value, message.skip) == (2, 0) and name not in message.sql
    with pytest.raises(DatabaseError):  # PREPARE ran, then EXECUTE divided by zero
        ask(statement, {"x": 0})
    value, message = ask(statement, {"x": 5})  # it was prepared: asked, not prepared twice
    assert (value, message.skip) == (2, 0) and "PREPARE" not in message.sql and name in message.sql

    with pytest.raises(DatabaseError):
        ask(statement, {"x": 0})
    with connection.cursor() as cursor:  # then lost (as a DEALLOCATE would lose it)
        cursor.execute(f"DEALLOCATE {name}")
    value, message = ask(statement, {"x": 2})  # prepared again
    assert (value, message.skip) == (5, 1) and "PREPARE" in message.sql


@on_postgresql
@pytest.mark.django_db(transaction=True)
def test_a_connection_whose_statements_were_deallocated_fails_once_then_prepares_them_again(project, owner):
    conversation(project, owner, 1)
    first, second, third = (conversation(project, owner, 2) for _ in range(3))
    services.delete_thread(thread=conversation(project, owner, 2))  # sent as they are
    services.delete_thread(thread=first)  # prepared
    with connection.cursor() as cursor:
        cursor.execute("DEALLOCATE ALL")

    with pytest.raises(DatabaseError):
        services.delete_thread(thread=second)
    assert Thread.objects.filter(pk=second.pk).exists()  # nothing half done

    services.delete_thread(thread=second)
    services.delete_thread(thread=third)
    assert not Thread.objects.filter(pk__in=[second.pk, third.pk]).exists()
    assert DeletionReceipt.objects.count() == 4


def test_off_the_statements_are_sent_as_they_are(project, owner, settings):
    settings.DB_PREPARED_STATEMENTS = False
    conversation(project, owner, 1)
    thread = conversation(project, owner, 2)
    run = finished_run(thread, "turn")

    with CaptureQueriesContext(connection) as queries:
        services.delete_run(thread=thread, run_id=run.pk)
        services.delete_thread(thread=thread)

    assert "PREPARE" not in sql_of(queries) and "EXECUTE" not in sql_of(queries)
    assert not Thread.objects.filter(pk=thread.pk).exists()
    assert list(DeletionReceipt.objects.order_by("created_at").values_list("runs", "messages")) == [(1, 0), (0, 4)]
    with prepared("SELECT 1", "SELECT 2") as message:
        assert message == ("SELECT 1\n;\nSELECT 2", 0)
