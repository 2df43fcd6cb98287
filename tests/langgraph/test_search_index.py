"""LangGraph's thread search filters metadata in the database: on PostgreSQL a
containment (`@>`) the GIN index on `metadata` serves."""

import pytest
from django.db import connection

from threads import selectors, services
from threads.models import Thread

pytestmark = pytest.mark.django_db


@pytest.mark.postgres
def test_metadata_containment_uses_the_gin_index(project, owner):
    for i in range(50):
        services.create_thread(project=project, created_by=owner, metadata={"user": f"u{i}", "tags": {"a": i % 3}})
    qs = selectors.search_langgraph_threads(Thread.objects.all(), metadata={"user": "u7"})
    sql = str(qs.query)
    assert "@>" in sql
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_seqscan = off")  # a 50-row table: make the planner show its index choice
    assert "thread_metadata_gin" in qs.explain()
    assert [t.metadata["user"] for t in qs] == ["u7"]
    nested = selectors.search_langgraph_threads(Thread.objects.all(), metadata={"tags": {"a": 1}})
    assert nested.count() == 17  # containment reaches into nested objects


def test_metadata_filter_on_either_database(project, owner):
    services.create_thread(project=project, created_by=owner, metadata={"user": "a", "n": 1, "x": None})
    services.create_thread(project=project, created_by=owner, metadata={"user": "b", "n": 1})
    found = selectors.search_langgraph_threads(Thread.objects.all(), metadata={"user": "a", "n": 1})
    assert [t.metadata["user"] for t in found] == ["a"]
    assert selectors.search_langgraph_threads(Thread.objects.all(), metadata={"n": 1}).count() == 2
    assert selectors.search_langgraph_threads(Thread.objects.all(), metadata={"user": "c"}).count() == 0


def test_supersteps_on_creation_become_checkpoints(api, account):
    body = {"supersteps": [{"updates": [{"values": {"messages": [{"type": "human", "content": "hi"}]},
                                         "as_node": "__input__"}]},
                           {"updates": [{"values": {"messages": [{"type": "ai", "content": "hello"}]},
                                         "as_node": "echo"}]}]}
    response = api.post("/api/threads", body, format="json")
    assert response.status_code == 201, response.content
    thread = response.json()
    assert [m["content"] for m in thread["values"]["messages"]] == ["hi", "hello"]
    history = api.post(f"/api/threads/{thread['thread_id']}/history", {}, format="json").json()
    assert [h["metadata"]["step"] for h in history] == [1, 0]
    bad = api.post("/api/threads", {"supersteps": [{"updates": [{"values": {"messages": [{"content": "?"}]}}]}]},
                   format="json")
    assert bad.status_code == 422 and bad.json()["detail"]
    assert not Thread.objects.exclude(pk=thread["thread_id"]).exists()  # nothing created by the refused one


def test_values_filter_matches_the_latest_state(api, project, owner):
    first = services.create_thread(project=project, created_by=owner)
    services.update_state(thread=first, values={"topic": "old"})
    services.update_state(thread=first, values={"topic": "new", "n": 2})
    second = services.create_thread(project=project, created_by=owner)
    services.update_state(thread=second, values={"topic": "old"})
    found = api.post("/api/threads/search", {"values": {"topic": "old"}}, format="json").json()
    assert [t["thread_id"] for t in found] == [str(second.pk)]
    assert api.post("/api/threads/count", {"values": {"topic": "new", "n": 2}}, format="json").json() == 1
