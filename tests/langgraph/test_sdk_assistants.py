"""The unmodified LangGraph SDK against a live server: assistants are agents."""

import uuid
from typing import get_type_hints

import pytest
from langgraph_sdk.errors import BadRequestError, ConflictError, NotFoundError, UnprocessableEntityError
from langgraph_sdk.schema import Assistant as SDKAssistant
from langgraph_sdk.schema import AssistantVersion as SDKAssistantVersion

from agents import services as agent_services
from agents.models import Agent, AgentVersion
from threads import services
from threads.models import Checkpoint, Message, Run, Thread
from tests.langgraph.test_sdk_threads import sdk_client

pytestmark = pytest.mark.django_db(transaction=True)

ASSISTANT_KEYS = set(get_type_hints(SDKAssistant))
VERSION_KEYS = set(get_type_hints(SDKAssistantVersion))


@pytest.fixture
def client(live_server, owner, account):
    return sdk_client(live_server, owner)


def assert_assistant(assistant):
    assert ASSISTANT_KEYS <= set(assistant), ASSISTANT_KEYS - set(assistant)


def test_create_get_update_versions_and_latest(client, account):
    created = client.assistants.create("echo", config={"configurable": {"model": "gpt-4o"}}, context={"tone": "dry"},
                                       metadata={"team": "red"}, name="Helper", description="helps")
    assert_assistant(created)
    assert created["graph_id"] == "echo" and created["version"] == 1 and created["name"] == "Helper"
    agent = Agent.objects.get(pk=created["assistant_id"])
    assert agent.account_id == account.pk and agent.versions.get().model == "gpt-4o"
    got = client.assistants.get(created["assistant_id"])
    assert got["config"] == {"configurable": {"model": "gpt-4o"}} and got["context"] == {"tone": "dry"}
    updated = client.assistants.update(created["assistant_id"], context={"tone": "warm"}, metadata={"x": 1})
    assert updated["version"] == 2 and updated["context"] == {"tone": "warm"}
    assert updated["metadata"] == {"team": "red", "x": 1}  # merged
    renamed = client.assistants.update(created["assistant_id"], name="Renamed")
    assert renamed["version"] == 2 and renamed["name"] == "Renamed"  # not a configuration change
    versions = client.assistants.get_versions(created["assistant_id"])
    assert [v["version"] for v in versions] == [2, 1]
    for v in versions:
        assert VERSION_KEYS <= set(v)
    assert versions[1]["context"] == {"tone": "dry"}
    back = client.assistants.set_latest(created["assistant_id"], 1)
    assert back["version"] == 1 and back["context"] == {"tone": "dry"}
    assert AgentVersion.objects.filter(agent=agent).count() == 2
    # A change after moving back makes a version past the newest one, as LangGraph does.
    again = client.assistants.update(created["assistant_id"], context={"tone": "wry"})
    assert again["version"] == 3 and again["context"] == {"tone": "wry"}
    assert [v["version"] for v in client.assistants.get_versions(created["assistant_id"])] == [3, 2, 1]
    graph = client.assistants.get_graph(created["assistant_id"])
    assert {n["id"] for n in graph["nodes"]} == {"__start__", "echo", "__end__"}
    assert client.assistants.get_schemas(created["assistant_id"])["graph_id"] == "echo"


def test_each_version_keeps_its_metadata_and_set_latest_brings_it_back(client):
    """As on LangGraph's server: a version keeps the metadata the assistant had while
    it was current; the versions are filtered by it; `set_latest` restores it."""
    created = client.assistants.create("echo", metadata={"v": 1, "team": "red"})
    assistant_id = created["assistant_id"]
    client.assistants.update(assistant_id, metadata={"v": 2}, context={"tone": "warm"})
    assert {v["version"]: v["metadata"] for v in client.assistants.get_versions(assistant_id)} == {
        2: {"v": 2, "team": "red"}, 1: {"v": 1, "team": "red"}}
    assert [v["version"] for v in client.assistants.get_versions(assistant_id, metadata={"v": 1})] == [1]
    assert [v["version"] for v in client.assistants.get_versions(assistant_id, metadata={"team": "red"})] == [2, 1]
    client.assistants.update(assistant_id, metadata={"note": "x"})  # no new version: the current one's changes
    assert client.assistants.get_versions(assistant_id, metadata={"note": "x"})[0]["version"] == 2
    back = client.assistants.set_latest(assistant_id, 1)
    assert back["version"] == 1 and back["metadata"] == {"v": 1, "team": "red"}
    assert client.assistants.get(assistant_id)["metadata"] == {"v": 1, "team": "red"}


def test_caller_chosen_id_if_exists_search_and_count(client):
    chosen = str(uuid.uuid4())
    client.assistants.create("echo", assistant_id=chosen, name="one", metadata={"k": "a"})
    with pytest.raises(ConflictError):
        client.assistants.create("echo", assistant_id=chosen)
    assert client.assistants.create("echo", assistant_id=chosen, if_exists="do_nothing")["name"] == "one"
    client.assistants.create("echo", name="two", metadata={"k": "b"})
    client.assistants.create("echo", name="three", metadata={"k": "b"})
    found = client.assistants.search(metadata={"k": "b"})
    assert sorted(a["name"] for a in found) == ["three", "two"]
    for a in found:
        assert_assistant(a)
    assert [a["name"] for a in client.assistants.search(name="ON")] == ["one"]
    assert client.assistants.count(metadata={"k": "b"}) == 2 and client.assistants.count(graph_id="echo") == 3
    page = client.assistants.search(limit=2, sort_by="name", sort_order="asc", response_format="object")
    assert [a["name"] for a in page["assistants"]] == ["one", "three"] and page["next"] == "2"
    with pytest.raises(NotFoundError):
        client.assistants.get(str(uuid.uuid4()))


def test_an_assistant_id_another_account_holds_is_answered_as_that_account_s_assistants_are(client, other_account):
    """As for thread ids: `raise` is the 409 an own taken id gets, `do_nothing` the 404
    any read of that account's assistant gets; theirs is untouched."""
    theirs = agent_services.create_agent(account=other_account, name="theirs", model="echo-1")
    with pytest.raises(ConflictError):
        client.assistants.create("echo", assistant_id=str(theirs.pk))
    with pytest.raises(NotFoundError) as taken:
        client.assistants.create("echo", assistant_id=str(theirs.pk), if_exists="do_nothing", name="mine")
    with pytest.raises(NotFoundError) as read:
        client.assistants.get(str(theirs.pk))
    assert taken.value.response.json() == read.value.response.json() == {"detail": "Agent not found."}
    assert Agent.objects.get(pk=theirs.pk).name == "theirs" and Agent.objects.filter(name="mine").count() == 0


def test_a_run_with_an_assistant_binds_the_run_and_the_thread(client):
    assistant = client.assistants.create("echo", name="Binder")
    thread = client.threads.create()
    services.post_message(thread=Thread.objects.get(pk=thread["thread_id"]), role="user",
                          content=[{"type": "text", "text": "hi"}])
    run = client.runs.create(thread["thread_id"], assistant["assistant_id"])
    row = Run.objects.get(pk=run["run_id"])
    assert str(row.agent_id) == assistant["assistant_id"] and row.runtime == "echo"
    assert str(Thread.objects.get(pk=thread["thread_id"]).agent_id) == assistant["assistant_id"]
    by_graph = client.threads.create()
    run = client.runs.create(by_graph["thread_id"], "echo")  # a graph name stands for its default assistant
    assert Run.objects.get(pk=run["run_id"]).runtime == "echo"


def test_a_graph_name_or_its_default_assistant_id_reads_as_that_assistant(client):
    """LangGraph lets a graph's name, or its default assistant's id (uuid5 of the name),
    stand for the graph's default assistant on every read, not only on runs."""
    system_id = str(uuid.uuid5(uuid.UUID("6ba7b821-9dad-11d1-80b4-00c04fd430c8"), "echo"))
    for name in ("echo", system_id):
        got = client.assistants.get(name)
        assert_assistant(got)
        assert got["assistant_id"] == system_id and got["graph_id"] == "echo" and got["version"] == 1
        assert got["metadata"] == {"created_by": "system"} and got["config"] == {}
        assert {n["id"] for n in client.assistants.get_graph(name)["nodes"]} == {"__start__", "echo", "__end__"}
        assert client.assistants.get_schemas(name)["graph_id"] == "echo"
        assert client.assistants.get_subgraphs(name) == {}
        [version] = client.assistants.get_versions(name)
        assert VERSION_KEYS <= set(version) and version["assistant_id"] == system_id and version["version"] == 1
    for change in (lambda: client.assistants.update("echo", context={"tone": "dry"}),
                   lambda: client.assistants.delete(system_id), lambda: client.assistants.set_latest("echo", 1)):
        with pytest.raises(ConflictError) as refused:
            change()
        assert "default assistant" in refused.value.response.json()["detail"]
    thread = client.threads.create()
    run = client.runs.wait(thread["thread_id"], system_id, input={"messages": [{"role": "user", "content": "hi"}]})
    assert run["messages"][-1]["content"] == "Echo: hi"
    with pytest.raises(NotFoundError):
        client.assistants.get(str(uuid.uuid5(uuid.UUID("6ba7b821-9dad-11d1-80b4-00c04fd430c8"), "nope")))
    with pytest.raises(ConflictError):  # its id is taken by the graph's default assistant
        client.assistants.create("echo", assistant_id=system_id)
    assert not Agent.objects.filter(pk=system_id).exists()


def test_config_that_is_not_an_object_or_a_model_too_long_is_a_422(client):
    for config, context in (({"configurable": "x"}, None), ({"configurable": [1]}, None), ({"configurable": []}, None),
                            ({"configurable": ""}, None), ({"configurable": 0}, None),
                            ({"configurable": {"model": "m" * 201}}, None), (None, {"model": "m" * 201})):
        with pytest.raises(UnprocessableEntityError) as refused:
            client.assistants.create("echo", config=config, context=context)
        assert refused.value.response.json()["detail"]
    created = client.assistants.create("echo", config={"configurable": {"model": {"provider": "x"}}})
    assert created["config"] == {"configurable": {"model": {"provider": "x"}}}  # a non-string model is kept as is
    for configurable in ("x", [], 0):
        with pytest.raises(UnprocessableEntityError):
            client.assistants.update(created["assistant_id"], config={"configurable": configurable})
    assert Agent.objects.count() == 1


def test_delete_plain_protected_and_with_threads(client, account):
    plain = client.assistants.create("echo", name="plain")
    thread = client.threads.create()
    Thread.objects.filter(pk=thread["thread_id"]).update(agent_id=plain["assistant_id"])
    client.runs.wait(thread["thread_id"], plain["assistant_id"], input={"messages": [{"role": "user", "content": "x"}]})
    busy = client.threads.create()
    paused = client.runs.create(busy["thread_id"], plain["assistant_id"],
                                input={"messages": [{"role": "user", "content": "approve: tool.hold"}]})
    client.assistants.delete(plain["assistant_id"])
    assert not Agent.objects.filter(pk=plain["assistant_id"]).exists()
    assert Thread.objects.get(pk=thread["thread_id"]).agent_id is None  # history kept
    # As on LangGraph, the threads stay usable (they were closed): a run of another assistant
    assert Thread.objects.get(pk=thread["thread_id"]).status != "closed"
    again = client.runs.wait(thread["thread_id"], "echo", input={"messages": [{"role": "user", "content": "y"}]})
    assert [m["content"] for m in again["messages"]] == ["x", "Echo: x", "y", "Echo: y"]
    assert Run.objects.get(pk=paused["run_id"]).status == "interrupted"  # a busy thread is cancelled
    assert client.threads.get(busy["thread_id"])["status"] == "idle"

    default = client.assistants.create("echo", name="default")
    agent_services.update_agent(agent=Agent.objects.get(pk=default["assistant_id"]), is_default=True)
    with pytest.raises(BadRequestError) as refused:
        client.assistants.delete(default["assistant_id"])
    assert "default" in refused.value.response.json()["detail"]
    assert Agent.objects.filter(pk=default["assistant_id"]).exists()

    doomed = client.assistants.create("echo", name="doomed")
    bound, tagged, kept = client.threads.create(), client.threads.create(metadata={
        "assistant_id": doomed["assistant_id"]}), client.threads.create()
    Thread.objects.filter(pk=bound["thread_id"]).update(agent_id=doomed["assistant_id"])
    for t in (bound, tagged):
        row = Thread.objects.get(pk=t["thread_id"])
        services.post_message(thread=row, role="user", content=[{"type": "text", "text": "x"}])
        services.execute_run(run_id=services.create_run(thread=row).pk)
    client.assistants.delete(doomed["assistant_id"], delete_threads=True)
    gone = [bound["thread_id"], tagged["thread_id"]]
    assert not Thread.objects.filter(pk__in=gone).exists()
    assert not Run.objects.filter(thread_id__in=gone).exists()
    assert not Checkpoint.objects.filter(thread_id__in=gone).exists()
    assert not Message.objects.filter(thread_id__in=gone).exists()
    assert Thread.objects.filter(pk=kept["thread_id"]).exists()
    assert not Agent.objects.filter(pk=doomed["assistant_id"]).exists()

