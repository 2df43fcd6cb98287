"""The embedded defaults' runs (no broker, `RUNS_IN_BACKGROUND` on, as `make run`
serves): a run executes in a thread of the web process once its creation committed,
so creating it answers at once with a `pending` run and a stream follows it as it
goes, as with a worker — through the real `langgraph-sdk`."""

import pytest

from threads.models import Run

from .test_langgraph_streaming import ask, client, thread  # noqa: F401

pytestmark = pytest.mark.django_db(transaction=True)
LONG = " ".join(f"w{i}" for i in range(40))  # 40 tokens, ECHO_TOKEN_DELAY apart


@pytest.fixture(autouse=True)
def _in_background(settings):
    settings.CELERY_TASK_ALWAYS_EAGER = True
    settings.RUNS_IN_BACKGROUND = True
    settings.ECHO_TOKEN_DELAY = 0.02


def test_create_answers_pending_and_join_waits_for_the_end(client, thread):  # noqa: F811
    run = client.runs.create(str(thread.pk), "echo", input=ask(LONG))
    assert run["status"] == "pending"
    values = client.runs.join(str(thread.pk), run["run_id"])
    assert values["messages"][-1]["content"] == f"Echo: {LONG}"
    assert Run.objects.get(pk=run["run_id"]).status == "success"


def test_a_stream_follows_the_run_as_it_goes(client, thread):  # noqa: F811
    """The first events arrive while the run is still executing, not all at its end."""
    seen_while_running, tokens = None, []
    for part in client.runs.stream(str(thread.pk), "echo", input=ask(LONG), stream_mode="messages-tuple"):
        if part.event == "messages":
            tokens.append(part.data[0]["content"])
            if seen_while_running is None:
                seen_while_running = Run.objects.get(pk=part.data[1]["run_id"]).status
    assert seen_while_running == "running"
    assert "".join(tokens) == f"Echo: {LONG}"


def test_a_paused_run_resumes_in_the_background_too(client, thread):  # noqa: F811
    values = client.runs.wait(str(thread.pk), "echo", input=ask("hi"), interrupt_before=["echo"])
    assert values["__interrupt__"]
    run = Run.objects.get(thread=thread)
    client.runs.create(str(thread.pk), "echo", command={"resume": True})
    final = client.runs.join(str(thread.pk), str(run.pk))
    assert final["messages"][-1]["content"] == "Echo: hi"
