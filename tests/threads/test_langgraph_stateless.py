"""Stateless runs (`POST /api/runs`, `/runs/stream`, `/runs/wait`, `/runs/batch`): a
temporary thread that goes, with everything under it, once the run ended."""

import pytest

from tests.conftest import wait_for
from threads.models import Checkpoint, Message, Run, Thread

from .test_langgraph_streaming import ask, client  # noqa: F401

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def _owner_has_an_account(account):
    """Temporary threads go to the caller's account's default project."""


def nothing_left():
    return not (Thread.objects.exists() or Message.objects.exists() or Run.objects.exists()
                or Checkpoint.objects.exists())


def test_stateless_wait_returns_the_values_and_leaves_nothing(client):  # noqa: F811
    values = client.runs.wait(None, "echo", input=ask("stateless"))
    assert [m["content"] for m in values["messages"]][-1] == "Echo: stateless"
    assert nothing_left()


def test_stateless_stream_leaves_nothing(client):  # noqa: F811
    parts = list(client.runs.stream(None, "echo", input=ask("a b"), stream_mode=["messages-tuple", "values"]))
    assert parts[0].event == "metadata" and parts[-1].event == "end" and parts[-1].data["status"] == "success"
    assert "".join(p.data[0]["content"] for p in parts if p.event == "messages") == "Echo: a b"
    assert nothing_left()


def test_stateless_background_run_and_batch_leave_nothing(client):  # noqa: F811
    run = client.runs.create(None, "echo", input=ask("bg"))
    assert run["kwargs"]["temporary"] is True and run["kwargs"]["on_completion"] == "delete"
    runs = client.runs.create_batch([{"assistant_id": "echo", "input": ask(f"b{i}")} for i in range(3)])
    assert len(runs) == 3 and len({r["thread_id"] for r in runs}) == 3
    assert wait_for(nothing_left, timeout=10)


def test_a_batch_run_with_a_thread_id_runs_on_that_thread(client):  # noqa: F811
    """LangGraph's `RunCreate.thread_id`: that item's run goes on that thread (kept);
    the others on temporary threads; an unknown thread is a 404 and nothing is created."""
    import uuid

    from langgraph_sdk.errors import NotFoundError

    kept = client.threads.create()["thread_id"]
    runs = client.runs.create_batch([{"thread_id": kept, "assistant_id": "echo", "input": ask("on mine")},
                                     {"assistant_id": "echo", "input": ask("elsewhere")}])
    assert runs[0]["thread_id"] == kept and runs[1]["thread_id"] != kept
    assert wait_for(lambda: Thread.objects.count() == 1 and Run.objects.filter(status="success").count() == 1,
                    timeout=10)
    assert client.threads.get_state(kept)["values"]["messages"][-1]["content"] == "Echo: on mine"
    with pytest.raises(NotFoundError):
        client.runs.create_batch([{"assistant_id": "echo", "input": ask("x")},
                                  {"thread_id": str(uuid.uuid4()), "assistant_id": "echo", "input": ask("y")}])
    assert Run.objects.count() == 1 and Thread.objects.count() == 1
    from langgraph_sdk.errors import UnprocessableEntityError

    for bad in ("", 0, "nope"):
        with pytest.raises(UnprocessableEntityError):
            client.runs.create_batch([{"thread_id": bad, "assistant_id": "echo", "input": ask("z")}])
    assert Run.objects.count() == 1


def test_on_completion_keep_keeps_the_thread(client):  # noqa: F811
    values = client.runs.wait(None, "echo", input=ask("keep me"), on_completion="keep")
    assert values["messages"][-1]["content"] == "Echo: keep me"
    assert Thread.objects.count() == 1 and Run.objects.get().status == "success"


def test_a_failing_stateless_run_leaves_nothing_either(client):  # noqa: F811
    parts = list(client.runs.stream(None, "echo", input=ask("fail: no"), stream_mode="values"))
    assert [p.event for p in parts][-2:] == ["error", "end"]
    assert nothing_left()


def test_bad_batches_are_422_and_create_nothing(client, live_server, owner):  # noqa: F811
    import httpx
    from rest_framework_simplejwt.tokens import RefreshToken

    headers = {"Authorization": f"Bearer {RefreshToken.for_user(owner).access_token}"}
    for body in ([], {"assistant_id": "echo"}, [1], [{"assistant_id": "echo"}, {"stream_mode": "nope"}]):
        r = httpx.post(f"{live_server.url}/api/runs/batch", json=body, headers=headers)
        assert r.status_code == 422 and r.json()["detail"], body
    assert nothing_left()
