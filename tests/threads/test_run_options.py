"""LangGraph run options through the real `langgraph-sdk` against a live server:
`input.messages` appended as messages, `config`/`context`/`metadata` stored on the
run, `webhook` delivered (and retried), `after_seconds` a delayed start that survives
a worker restart."""

import json
import logging
import signal
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest
from langgraph_sdk import get_sync_client
from django.utils import timezone
from rest_framework_simplejwt.tokens import RefreshToken

from tests.conftest import start_worker, wait_for, wait_for_worker
from threads import services
from threads.models import Message, Run, RunStatus
from threads.services.webhooks import WebhookFailed, deliver_webhook, public_address


@pytest.fixture
def lg(live_server, owner):
    token = RefreshToken.for_user(owner).access_token
    return get_sync_client(url=f"{live_server.url}/api", headers={"Authorization": f"Bearer {token}"})


@pytest.fixture
def thread(project, owner):
    return services.create_thread(project=project, created_by=owner)


class Receiver:
    """A local HTTP endpoint that records the JSON bodies POSTed to it and answers
    with the given statuses in turn (the last one repeats)."""

    def __init__(self, statuses=(200,)):
        self.bodies, self.statuses = [], list(statuses)
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                status = receiver.statuses.pop(0) if len(receiver.statuses) > 1 else receiver.statuses[0]
                receiver.bodies.append((status, body))
                self.send_response(status)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver():
    made = []

    def make(statuses=(200,)):
        made.append(Receiver(statuses))
        return made[-1]

    yield make
    for r in made:
        r.close()


def texts(thread):
    return [(m.role, m.text) for m in Message.objects.filter(thread=thread).order_by("seq")]


@pytest.mark.django_db(transaction=True)
def test_input_messages_are_appended_and_options_stored(lg, thread):
    run = lg.runs.create(
        str(thread.pk), "echo",
        input={"messages": [{"role": "user", "content": "first"}, {"type": "human", "content": [{"type": "text", "text": "second"}]}]},
        config={"configurable": {"user_name": "ada"}, "tags": ["t"]}, context={"lang": "en"}, metadata={"source": "sdk"},
    )
    stored = wait_for(lambda: Run.objects.filter(pk=run["run_id"], status=RunStatus.SUCCESS).first())
    assert stored is not None
    assert texts(thread) == [("user", "first"), ("user", "second"), ("assistant", "Echo: second")]
    assert set(Message.objects.filter(thread=thread).values_list("run_id", flat=True)) == {stored.pk}
    assert stored.kwargs["config"] == {"configurable": {"user_name": "ada"}, "tags": ["t"]}
    assert stored.kwargs["context"] == {"lang": "en"}
    assert stored.metadata == {"source": "sdk"}
    assert stored.start_message_seq == 1 and stored.end_message_seq == 3


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("body, field", [
    ({"input": {"messages": [{"role": "robot", "content": "x"}]}}, "input"),
    ({"input": {"messages": [{"role": "user", "content": []}]}}, "input"),
    ({"input": {"messages": [42]}}, "input"),
    ({"webhook": "ftp://example.com/x"}, "webhook"),
    ({"after_seconds": -1}, "after_seconds"),
    ({"interrupt_before": ["no-such-node"]}, "interrupt_before"),
    ({"command": {"goto": "x"}}, "command"),
])
def test_bad_options_are_422_and_create_nothing(lg, thread, body, field):
    with pytest.raises(httpx.HTTPStatusError) as caught:
        lg.http.post(f"/threads/{thread.pk}/runs", json={"assistant_id": "echo", **body})
    assert caught.value.response.status_code == 422
    assert field in caught.value.response.json()["errors"]
    assert not Run.objects.filter(thread=thread).exists() and not Message.objects.filter(thread=thread).exists()


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("url", [
    "http://127.0.0.1:8000/hook", "http://localhost/hook", "http://api.localhost/hook", "http://[::1]/hook",
    "http://10.1.2.3/hook", "http://192.168.0.10/hook", "http://169.254.169.254/latest/meta-data/",
    "http://[::ffff:127.0.0.1]/hook", "http://0.0.0.0/hook",
])
def test_a_webhook_naming_a_private_address_is_422(lg, thread, settings, url):
    """In production (`WEBHOOK_ALLOW_PRIVATE` off) a run's or a cron's webhook may not
    point at this machine, a private network or a cloud metadata address."""
    settings.WEBHOOK_ALLOW_PRIVATE = False
    with pytest.raises(httpx.HTTPStatusError) as caught:
        lg.runs.create(str(thread.pk), "echo", input={"messages": [{"role": "user", "content": "hi"}]}, webhook=url)
    assert caught.value.response.status_code == 422
    assert "webhook" in caught.value.response.json()["errors"]
    with pytest.raises(httpx.HTTPStatusError) as caught:
        lg.crons.create_for_thread(str(thread.pk), "echo", schedule="@hourly", webhook=url)
    assert caught.value.response.status_code == 422
    assert not Run.objects.filter(thread=thread).exists()


def test_a_webhook_host_resolving_to_a_private_address_is_never_posted(receiver, settings, caplog):
    """A host name passes the request's check (the URL alone); at delivery every
    address it resolves to must be public. This machine's own name (not a valid URL
    host for the API, having no dot, so the delivery is called directly) resolves to
    a loopback or private address."""
    hostname = socket.gethostname()
    if any(public_address(info[4][0]) for info in socket.getaddrinfo(hostname, 80)):
        pytest.skip("this machine's name resolves to a public address")
    settings.WEBHOOK_ALLOW_PRIVATE = False
    hook = receiver()
    url = hook.url.replace("127.0.0.1", hostname)
    with caplog.at_level(logging.WARNING, logger="threads.services.webhooks"):
        assert deliver_webhook(url=url, run={"run_id": "r1"}) is None  # refused: not retried
    assert "Webhook of run r1 not sent" in caplog.text and "non-public address" in caplog.text
    assert hook.bodies == []
    settings.WEBHOOK_ALLOW_PRIVATE = True  # the same delivery to 127.0.0.1, allowed
    assert deliver_webhook(url=hook.url, run={"run_id": "r1"}) == 200 and len(hook.bodies) == 1


def trickling_receiver(answer_head: bytes, *, trickle: bytes = b"", every: float = 0.0, times: int = 0) -> str:
    """A receiver on a raw socket: reads the POST, sends `answer_head`, then `trickle`
    every `every` seconds, `times` times, then ends its headers. Returns its URL."""
    server = socket.create_server(("127.0.0.1", 0))

    def serve():
        conn, _ = server.accept()
        with conn, server:
            conn.recv(65536)
            conn.sendall(answer_head)
            try:
                for _ in range(times):
                    time.sleep(every)
                    conn.sendall(trickle)
                conn.sendall(b"\r\n")
            except OSError:  # the client hung up
                pass

    threading.Thread(target=serve, daemon=True).start()
    return f"http://127.0.0.1:{server.getsockname()[1]}/hook"


def test_a_receiver_trickling_its_answer_is_cut_off_at_the_timeout(settings):
    """WEBHOOK_TIMEOUT_SECONDS bounds the whole attempt: a receiver sending a header
    line every half second (each read within the socket timeout) held the delivery
    for as long as it kept sending, and its answer then counted as delivered."""
    settings.WEBHOOK_TIMEOUT_SECONDS = 1
    url = trickling_receiver(b"HTTP/1.1 200 OK\r\n", trickle=b"X-Slow: 1\r\n", every=0.5, times=12)
    started = time.monotonic()
    with pytest.raises(WebhookFailed, match="no complete answer within 1 s"):  # retried, with backoff
        deliver_webhook(url=url, run={"run_id": "r1"})
    assert time.monotonic() - started < 2.5


def test_a_redirect_is_not_followed_nor_taken_for_a_delivery(settings, caplog):
    url = trickling_receiver(b"HTTP/1.1 307 Temporary Redirect\r\nLocation: http://169.254.169.254/\r\n"
                             b"Content-Length: 0\r\n")
    with caplog.at_level(logging.WARNING, logger="threads.services.webhooks"):
        assert deliver_webhook(url=url, run={"run_id": "r1"}) == 307  # final: not retried
    assert "Webhook of run r1 not delivered" in caplog.text and "redirect" in caplog.text


@pytest.mark.django_db(transaction=True)
def test_webhook_receives_the_final_run(lg, thread, receiver):
    hook = receiver()
    run = lg.runs.create(str(thread.pk), "echo", input={"messages": [{"role": "user", "content": "hi"}]},
                         webhook=hook.url, metadata={"k": "v"})
    assert wait_for(lambda: hook.bodies)
    status, body = hook.bodies[0]
    assert body["run_id"] == run["run_id"] and body["thread_id"] == str(thread.pk)
    assert body["status"] == "success" and body["metadata"] == {"k": "v"}
    assert body["kwargs"]["webhook"] == hook.url and body["webhook_sent_at"]
    time.sleep(0.3)
    assert len(hook.bodies) == 1  # delivered once


@pytest.mark.django_db(transaction=True)
def test_failed_webhook_is_retried_and_never_fails_the_run(lg, thread, receiver, settings):
    settings.WEBHOOK_RETRY_BACKOFF = 0
    hook = receiver(statuses=(503, 500, 200))
    run = lg.runs.create(str(thread.pk), "echo", input={"messages": [{"role": "user", "content": "hi"}]},
                         webhook=hook.url)
    assert wait_for(lambda: len(hook.bodies) >= 3)
    assert [s for s, _ in hook.bodies] == [503, 500, 200]
    assert Run.objects.get(pk=run["run_id"]).status == RunStatus.SUCCESS


@pytest.mark.django_db(transaction=True)
def test_unreachable_webhook_does_not_block_the_run(lg, thread, receiver, settings):
    settings.WEBHOOK_RETRY_BACKOFF = 0
    settings.WEBHOOK_MAX_RETRIES = 1
    hook = receiver()
    hook.close()  # nothing listens there any more
    started = time.monotonic()
    run = lg.runs.create(str(thread.pk), "echo", input={"messages": [{"role": "user", "content": "hi"}]},
                         webhook=hook.url)
    assert time.monotonic() - started < 5
    assert wait_for(lambda: Run.objects.get(pk=run["run_id"]).status == RunStatus.SUCCESS)


@pytest.mark.django_db(transaction=True)
def test_after_seconds_delays_the_start(lg, thread):
    run = lg.runs.create(str(thread.pk), "echo", input={"messages": [{"role": "user", "content": "later"}]},
                         after_seconds=2)
    stored = Run.objects.get(pk=run["run_id"])
    assert stored.status == RunStatus.PENDING and stored.start_after is not None
    assert not Message.objects.filter(thread=thread).exists()  # the input is applied when the run starts
    assert services.requeue_pending_runs(older_than_seconds=0) == 0  # not due: nothing starts early
    # Stay off the database while the in-process timer starts the run: the in-memory
    # SQLite test database locks whole tables (a file database waits instead).
    time.sleep(max(0.0, (stored.start_after - timezone.now()).total_seconds()) + 2)
    done = wait_for(lambda: Run.objects.filter(pk=run["run_id"], status=RunStatus.SUCCESS).first(), timeout=15)
    assert done is not None and done.started_at >= done.start_after
    assert texts(thread) == [("user", "later"), ("assistant", "Echo: later")]


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_after_seconds_survives_a_worker_restart(celery_worker_process, api, thread):
    """The worker holding the countdown is killed (no warm shutdown: the countdown is
    lost with it); the run is still pending once due, and the periodic requeue (what
    beat sends every minute) on a new worker starts it. Nothing starts early: see
    `test_after_seconds_delays_the_start`."""
    from threads.tasks import requeue_pending_runs

    response = api.post(f"/api/threads/{thread.pk}/runs",
                        {"input": {"messages": [{"role": "user", "content": "wake"}]}, "after_seconds": 4},
                        format="json")
    assert response.status_code == 201, response.content
    run_id = response.json()["run_id"]
    due = Run.objects.get(pk=run_id).start_after
    time.sleep(1)  # the worker has taken the countdown message
    celery_worker_process.send_signal(signal.SIGKILL)
    celery_worker_process.wait(timeout=10)
    replacement = start_worker(celery_worker_process.env)
    try:
        wait_for_worker(replacement)
        time.sleep(max(0.0, (due - timezone.now()).total_seconds()) + 1)
        assert Run.objects.get(pk=run_id).status == RunStatus.PENDING  # due, but its countdown died
        requeue_pending_runs.delay()
        run = wait_for(lambda: Run.objects.filter(pk=run_id, status=RunStatus.SUCCESS).first(), timeout=30)
        assert run is not None and run.started_at >= run.start_after
        assert texts(thread) == [("user", "wake"), ("assistant", "Echo: wake")]
    finally:
        replacement.terminate()
        replacement.wait(timeout=10)


def run_of(run_id):
    return Run.objects.get(pk=run_id)


@pytest.mark.django_db(transaction=True)
def test_interrupt_before_pauses_on_an_approval_and_command_resume_continues(lg, thread):
    run = lg.runs.create(str(thread.pk), "echo", input={"messages": [{"role": "user", "content": "hi"}]},
                         interrupt_before=["echo"])
    assert wait_for(lambda: thread.approvals.filter(status="pending").exists())
    approval = thread.approvals.get()
    assert approval.tool_name == "interrupt_before:echo" and approval.run_id == run_of(run["run_id"]).pk
    assert run_of(run["run_id"]).status == RunStatus.RUNNING
    thread.refresh_from_db()
    assert thread.status == "awaiting"
    assert texts(thread) == [("user", "hi")]  # stopped before the node: no answer yet

    resumed = lg.runs.create(str(thread.pk), "echo", command={"resume": "go on"})
    assert resumed["run_id"] == run["run_id"]  # the waiting run continues; no new run
    done = wait_for(lambda: Run.objects.filter(pk=run["run_id"], status=RunStatus.SUCCESS).first())
    assert done is not None and done.kwargs["command"] == {"resume": "go on"}
    assert texts(thread) == [("user", "hi"), ("assistant", "Echo: hi")]
    assert Run.objects.filter(thread=thread).count() == 1
    approval.refresh_from_db()
    assert approval.status == "approved"


@pytest.mark.django_db(transaction=True)
def test_interrupt_after_pauses_with_the_answer_and_resume_ends_the_run(lg, thread):
    run = lg.runs.create(str(thread.pk), "echo", input={"messages": [{"role": "user", "content": "hi"}]},
                         interrupt_after="*")
    assert wait_for(lambda: thread.approvals.filter(status="pending", tool_name="interrupt_after:echo").exists())
    assert texts(thread) == [("user", "hi"), ("assistant", "Echo: hi")]
    assert run_of(run["run_id"]).status == RunStatus.RUNNING
    lg.runs.create(str(thread.pk), "echo", command={"resume": None})
    done = wait_for(lambda: Run.objects.filter(pk=run["run_id"], status=RunStatus.SUCCESS).first())
    assert done is not None and done.result == "Echo: hi"
    assert texts(thread) == [("user", "hi"), ("assistant", "Echo: hi")]


@pytest.mark.django_db(transaction=True)
def test_wait_stream_and_join_end_when_the_run_pauses_and_a_join_after_resume_follows_it(lg, thread):
    """As LangGraph's server does for a paused graph: `runs.wait` returns the state with
    `__interrupt__`, a stream ends; the run continues under its id once resumed."""
    started = time.monotonic()
    values = lg.runs.wait(str(thread.pk), "echo", input={"messages": [{"role": "user", "content": "hi"}]},
                          interrupt_before=["echo"])
    assert time.monotonic() - started < 20  # returned at the pause, not at a timeout
    (interrupt,) = values["__interrupt__"]
    assert interrupt["value"]["tool_name"] == "interrupt_before:echo"
    assert [m["content"] for m in values["messages"]] == ["hi"]
    run = Run.objects.get(thread=thread)
    assert run.status == RunStatus.RUNNING and thread.approvals.filter(status="pending").count() == 1
    # Joining the paused run returns at once, with the same state.
    assert lg.runs.join(str(thread.pk), str(run.pk))["__interrupt__"] == values["__interrupt__"]
    parts = list(lg.runs.join_stream(str(thread.pk), str(run.pk)))
    assert parts[-1].event == "end" and parts[-1].data["status"] == "interrupted"
    assert not {"paused", "resumed"} & {p.event for p in parts}  # internal events stay internal

    lg.runs.create(str(thread.pk), "echo", command={"resume": True})
    final = lg.runs.join(str(thread.pk), str(run.pk))  # past the pause, to the run's end
    assert "__interrupt__" not in final
    assert [m["content"] for m in final["messages"]] == ["hi", "Echo: hi"]
    assert Run.objects.get(pk=run.pk).status == RunStatus.SUCCESS


@pytest.mark.django_db(transaction=True)
def test_a_stream_ends_at_a_tool_approval_with_the_interrupt(lg, thread):
    parts = list(lg.runs.stream(str(thread.pk), "echo", stream_mode=["values", "updates"],
                                input={"messages": [{"role": "user", "content": "approve:deploy"}]}))
    updates = [p.data for p in parts if p.event == "updates"]
    assert updates[-1]["__interrupt__"][0]["value"]["tool_name"] == "deploy"
    assert parts[-1].event == "end" and parts[-1].data["status"] == "interrupted"
    assert Run.objects.get(thread=thread).status == RunStatus.RUNNING  # waits on the approval


@pytest.mark.django_db(transaction=True)
def test_command_resume_decides_a_tool_approval(lg, thread):
    run = lg.runs.create(str(thread.pk), "echo", input={"messages": [{"role": "user", "content": "approve:deploy"}]})
    assert wait_for(lambda: thread.approvals.filter(status="pending", tool_name="deploy").exists())
    with pytest.raises(httpx.HTTPStatusError) as caught:
        lg.runs.create(str(thread.pk), "echo", command={"resume": "perhaps"})
    assert caught.value.response.status_code == 422
    lg.runs.create(str(thread.pk), "echo", command={"resume": {"approved": False}})
    done = wait_for(lambda: Run.objects.filter(pk=run["run_id"], status=RunStatus.SUCCESS).first())
    assert done is not None and "denied" in done.result
    assert thread.approvals.get().status == "denied"


@pytest.mark.django_db(transaction=True)
def test_new_input_on_a_paused_thread_ends_the_paused_run_and_runs_at_once(lg, thread):
    """As on LangGraph's server, a run stopped at an interrupt is over: new input does
    not queue behind it (a `runs.wait` would wait on a person); the paused run is
    interrupted, its approval cancelled, and the new run answers."""
    paused = lg.runs.create(str(thread.pk), "echo", input={"messages": [{"role": "user", "content": "approve:deploy"}]})
    assert wait_for(lambda: thread.approvals.filter(status="pending", tool_name="deploy").exists())
    started = time.monotonic()
    values = lg.runs.wait(str(thread.pk), "echo", input={"messages": [{"role": "user", "content": "never mind"}]})
    assert time.monotonic() - started < 20
    assert values["messages"][-1]["content"] == "Echo: never mind"
    assert run_of(paused["run_id"]).status == RunStatus.INTERRUPTED
    assert thread.approvals.get().status == "cancelled"
    assert Run.objects.filter(thread=thread, status=RunStatus.SUCCESS).count() == 1
    thread.refresh_from_db()
    assert thread.status == "idle"


@pytest.mark.django_db(transaction=True)
def test_no_input_on_a_thread_paused_at_a_breakpoint_continues_it(lg, thread):
    """LangGraph's `runs.wait(thread, assistant, input=None)` after a static
    breakpoint continues the paused run (the same run, as `command: {resume}`)."""
    paused = lg.runs.create(str(thread.pk), "echo", input={"messages": [{"role": "user", "content": "hi"}]},
                            interrupt_before=["echo"])
    assert wait_for(lambda: thread.approvals.filter(status="pending").exists())
    started = time.monotonic()
    values = lg.runs.wait(str(thread.pk), "echo", input=None)
    assert time.monotonic() - started < 20
    assert [m["content"] for m in values["messages"]] == ["hi", "Echo: hi"]
    assert run_of(paused["run_id"]).status == RunStatus.SUCCESS
    assert Run.objects.filter(thread=thread).count() == 1 and thread.approvals.get().status == "approved"


@pytest.mark.django_db(transaction=True)
def test_no_input_on_a_thread_paused_on_a_tool_approval_is_409(lg, thread):
    lg.runs.create(str(thread.pk), "echo", input={"messages": [{"role": "user", "content": "approve:deploy"}]})
    assert wait_for(lambda: thread.approvals.filter(status="pending").exists())
    with pytest.raises(httpx.HTTPStatusError) as caught:
        lg.runs.create(str(thread.pk), "echo")
    assert caught.value.response.status_code == 409 and "resume" in caught.value.response.json()["detail"]
    assert thread.approvals.get().status == "pending" and Run.objects.filter(thread=thread).count() == 1


@pytest.mark.django_db(transaction=True)
def test_command_resume_with_nothing_waiting_is_409(lg, thread):
    with pytest.raises(httpx.HTTPStatusError) as caught:
        lg.runs.create(str(thread.pk), "echo", command={"resume": True})
    assert caught.value.response.status_code == 409
    assert not Run.objects.filter(thread=thread).exists()


@pytest.mark.django_db(transaction=True)
def test_a_cancelled_run_is_delivered_to_its_webhook(lg, thread, receiver):
    hook = receiver()
    run = lg.runs.create(str(thread.pk), "echo", input={"messages": [{"role": "user", "content": "hi"}]},
                         interrupt_before="*", webhook=hook.url)
    assert wait_for(lambda: thread.approvals.filter(status="pending").exists())
    assert hook.bodies == []  # paused, not ended
    lg.runs.cancel(str(thread.pk), run["run_id"], action="interrupt")
    assert wait_for(lambda: hook.bodies)
    assert hook.bodies[0][1]["status"] == "interrupted" and hook.bodies[0][1]["run_id"] == run["run_id"]


@pytest.mark.django_db(transaction=True)
def test_if_not_exists_create_makes_the_thread(lg, owner, account, other_account):
    import uuid

    from threads.models import Thread

    new_id = str(uuid.uuid4())
    with pytest.raises(httpx.HTTPStatusError) as caught:  # the default: reject
        lg.runs.create(new_id, "echo", input={"messages": [{"role": "user", "content": "hi"}]})
    assert caught.value.response.status_code == 404
    with pytest.raises(httpx.HTTPStatusError) as caught:  # a bad body creates nothing
        lg.runs.create(new_id, "echo", input={"messages": [{"role": "robot", "content": "x"}]}, if_not_exists="create")
    assert caught.value.response.status_code == 422 and not Thread.objects.filter(pk=new_id).exists()

    run = lg.runs.create(new_id, "echo", input={"messages": [{"role": "user", "content": "hi"}]}, if_not_exists="create")
    thread = Thread.objects.get(pk=new_id)
    assert run["thread_id"] == new_id and thread.account_id == account.pk and thread.created_by_id == owner.pk
    assert wait_for(lambda: Run.objects.filter(pk=run["run_id"], status=RunStatus.SUCCESS).exists())
    assert texts(thread) == [("user", "hi"), ("assistant", "Echo: hi")]
    again = lg.runs.create(new_id, "echo", input={"messages": [{"role": "user", "content": "again"}]},
                           if_not_exists="create")  # it exists now: an ordinary run on it
    assert again["thread_id"] == new_id and Thread.objects.filter(pk=new_id).count() == 1

    theirs = services.create_thread(project=other_account.projects.create(name="P"))
    with pytest.raises(httpx.HTTPStatusError) as caught:  # an id taken in another account
        lg.runs.create(str(theirs.pk), "echo", if_not_exists="create")
    assert caught.value.response.status_code == 404 and not Run.objects.filter(thread=theirs).exists()


@pytest.mark.django_db
def test_webhooks_with_the_broker_down_are_a_warning_naming_the_runs(project, owner, broker_down, caplog):
    """The ended runs' webhooks cannot be queued: a warning naming every run, the
    broker tried once — not an exception out of the commit's callback that skipped
    the other runs."""
    from threads.services.webhooks import send_webhooks

    thread = services.create_thread(project=project, created_by=owner)
    runs = [Run.objects.create(thread=thread, seq=seq, status="success", kwargs={"webhook": "https://example.com/h"})
            for seq in (1, 2)]
    with caplog.at_level(logging.WARNING, logger="threads.services.webhooks"):
        send_webhooks([r.pk for r in runs])
    assert "not sent: the broker is unreachable" in caplog.text
    assert all(str(r.pk) in caplog.text for r in runs)


@pytest.mark.django_db(transaction=True)
def test_a_resumed_run_s_stream_and_wait_send_only_what_follows_the_resume(lg, thread):
    """`command: {resume}` continues the paused run under its id: its new stream (and a
    wait) starts at the resume — the part before the interrupt, with its answered
    `__interrupt__`, is not sent again."""
    modes = ["values", "updates"]
    first = list(lg.runs.stream(str(thread.pk), "echo", stream_mode=modes,
                                input={"messages": [{"role": "user", "content": "approve:deploy"}]}))
    assert first[-1].event == "end" and first[-1].data["status"] == "interrupted"
    resumed = list(lg.runs.stream(str(thread.pk), "echo", stream_mode=modes, command={"resume": True}))
    assert not {p.id for p in first} & {p.id for p in resumed}, [(p.event, p.data) for p in resumed]
    assert not [p for p in resumed if p.event == "updates" and "__interrupt__" in p.data]
    assert resumed[-1].event == "end" and resumed[-1].data["status"] == "success"
    assert resumed[0].event == "metadata" and resumed[0].data == first[0].data  # the same run, announced first

    lg.runs.wait(str(thread.pk), "echo", input={"messages": [{"role": "user", "content": "approve:ship"}]})
    values = lg.runs.wait(str(thread.pk), "echo", command={"resume": True})
    assert "__interrupt__" not in values and values["messages"][-1]["type"] == "ai"


def test_a_resumed_stream_drops_what_comes_before_the_resume_even_a_late_pause(thread):
    """The pause's events are published after its commit: a client that saw the pause
    in the database may resume before they reach the log. The resumed stream skips them
    (a late `paused` would end it at once) and starts at the resume, with `metadata`."""
    import uuid

    from threads.streams.bus import get_bus, run_log
    from threads.streams.events import RunEvents
    from threads.streams.sse import Follower

    run_id, bus = uuid.uuid4(), get_bus()
    events = RunEvents(run_id=run_id, thread_id=thread.pk)
    events.metadata()
    point = bus.last_id(run_log(run_id))  # what the resuming transaction read
    follower = Follower(log=run_log(run_id), after=point, run_id=run_id, resumed=True)
    events.paused(values={"messages": []}, interrupts=[{"value": "late"}], new_messages=[])  # late
    assert follower.take(bus.read(run_log(run_id), follower.after, 0.1)) == [] and not follower.done
    events.resumed()
    events.emit("values", {"messages": ["after"]})
    events.end("success")
    sent = follower.take(bus.read(run_log(run_id), follower.after, 0.1))
    assert [(e.event, e.data) for e in sent] == [
        ("metadata", {"run_id": str(run_id), "thread_id": str(thread.pk)}),
        ("values", {"messages": ["after"]}), ("end", {"run_id": str(run_id), "status": "success"})]
    assert follower.done and follower.status == "success"
