"""The run lifecycle: create, execute through a runtime, cancel, delete.

Status rules: at most one executing (`running`) run per thread (the database
enforces it with a partial unique constraint); more runs may wait as `pending`
behind it (`enqueue`) and start in order when it ends. The thread's row lock
serialises creators, cancels and deletes: a conflict is a clean 409. The thread's status follows its runs: `running` while a run is active,
`awaiting` while the active run waits on an approval, `idle` after; a `closed` thread
takes no new run and keeps its status. Lock order everywhere: thread, then run.
"""

import logging
import threading
import time
import uuid
from dataclasses import replace
from datetime import timedelta
from functools import cache, partial
from itertools import groupby
from typing import NamedTuple
from urllib.parse import urlsplit

from celery import current_app
from django.conf import settings
from django.db import IntegrityError, InterfaceError, OperationalError, connection, transaction
from django.db.models import Case, CharField, Exists, F, OuterRef, Q, QuerySet, Subquery, Sum, Value, When
from django.db.models.functions import Greatest
from django.utils import timezone

from config.errors import Conflict, Invalid, NotFound
from config.prepared import prepared
from receipts import services as receipts
from receipts.models import DeletionKind

from ..models import (
    ACTIVE_RUN_STATUSES, MAX_AFTER_SECONDS, Approval, ApprovalStatus, Checkpoint, Message, MultitaskStrategy, Run,
    RunStatus, Thread, ThreadStatus,
)
from config.celery import worker_lease, worker_name

from ..runtime import RuntimeResult, get_runtime
from ..message_format import from_stored
from ..selectors import latest_checkpoint, state_message_seq, thread_values
from ..streams.bus import get_bus
from ..streams.events import RunEvents
from .checkpoints import parent_and_step, store_checkpoint
from .state import update_state
from .messages import append_messages, validate_content
from .threads import activity, ensure_open, lock_thread
from .webhooks import schedule_webhooks

logger = logging.getLogger(__name__)

CANCEL_ACTIONS = ("interrupt", "rollback")
# LangGraph message types and roles, as the thread's message roles.
MESSAGE_ROLES = {"human": "user", "user": "user", "ai": "assistant", "assistant": "assistant",
                 "system": "system", "tool": "tool"}


def input_message_list(input) -> list:
    """The raw messages of a run's LangGraph `input` (`{"messages": [...]}` or one)."""
    if not isinstance(input, dict) or input.get("messages") is None:
        return []
    return input["messages"] if isinstance(input["messages"], list) else [input["messages"]]


def asked_in(messages: list[tuple[str, list[dict]]]) -> str | None:
    """What a run given these input messages is asked: the text of the last user
    message (None without one), as a turn's `message` is its user's text."""
    for role, content in reversed(messages):
        if role == "user":
            text = " ".join(b.get("text", "") for b in content if b.get("type") == "text" and b.get("text"))
            return text or None
    return None


def input_messages(input) -> list[tuple[str, list[dict]]]:
    """The LangGraph messages of a run's `input` (`{"messages": [{"role"|"type",
    "content"}]}`) as (role, content blocks); 422 for a malformed one. A string
    content becomes one text block; a string message is a user message."""
    parsed = []
    for i, message in enumerate(input_message_list(input)):
        if isinstance(message, str):
            message = {"role": "user", "content": message}
        if not isinstance(message, dict):
            raise Invalid(f"input.messages[{i}] must be an object with a role and content.",
                          errors={"input": [f"messages[{i}]: an object."]})
        role = MESSAGE_ROLES.get(message.get("role") or message.get("type"))
        if role is None:
            raise Invalid(f"input.messages[{i}] has an unknown role; use {', '.join(MESSAGE_ROLES)}.",
                          errors={"input": [f"messages[{i}]: unknown role or type."]})
        content = message.get("content")
        if isinstance(content, str):
            content = [{"type": "text", "text": content}]
        elif isinstance(content, list):
            content = [{"type": "text", "text": b} if isinstance(b, str) else b for b in content]
        try:
            parsed.append((role, validate_content(content)))
        except Invalid:
            raise Invalid(f"input.messages[{i}].content must be a string or a non-empty list of blocks.",
                          errors={"input": [f"messages[{i}]: bad content."]})
    return parsed


def input_message_ids(input) -> list:
    """The ids the client gave the messages of a run's `input` (as `input_messages`
    reads them), each a UUID or None (not a UUID, or none given: the server picks)."""
    ids = []
    for message in input_message_list(input):
        try:
            ids.append(uuid.UUID(str(message["id"])) if isinstance(message, dict) and message.get("id") else None)
        except ValueError:
            ids.append(None)
    return ids


def free_message_ids(ids: list) -> list:
    """These ids, with None for each one a stored message has already (or repeated):
    a client's id is kept when it is new, never overwrites. One query."""
    taken = set(Message.objects.filter(pk__in=[i for i in ids if i]).values_list("pk", flat=True)) if any(ids) else set()
    free, seen = [], set()
    for i in ids:
        free.append(i if i and i not in taken and i not in seen else None)
        seen.add(i)
    return free


def validate_run_kwargs(kwargs: dict, *, runtime: str) -> dict:
    """LangGraph's run options (`config`, `context`, `interrupt_before/after`,
    `webhook`, `command`, `after_seconds`, ...) checked where this service acts on
    them (422 otherwise); the others are kept as given."""
    for name in ("config", "context", "command", "checkpoint"):
        if kwargs.get(name) is not None and not isinstance(kwargs[name], dict):
            raise Invalid(f"{name} must be an object.", errors={name: ["An object."]})
    node = get_runtime(runtime).name  # a runtime is a one-node graph named after it
    for name in ("interrupt_before", "interrupt_after"):
        value = kwargs.get(name)
        if value is None or value == "*":
            continue
        if not isinstance(value, list) or not all(isinstance(n, str) for n in value):
            raise Invalid(f"{name} must be '*' or a list of node names.", errors={name: ["'*' or a list of names."]})
        unknown = sorted(set(value) - {node})
        if unknown:
            raise Invalid(f"{name}: unknown node '{unknown[0]}' (the '{runtime}' graph has one node, '{node}').",
                          errors={name: [f"Unknown node '{unknown[0]}'."]})
    if kwargs.get("webhook") is not None:
        validate_webhook_url(kwargs["webhook"])
    command = kwargs.get("command")
    if command is not None and set(command) - {"resume"}:
        raise Invalid("command: only 'resume' is supported.", errors={"command": ["Only resume is supported."]})
    after = kwargs.get("after_seconds")
    if after is not None and (
        isinstance(after, bool) or not isinstance(after, (int, float)) or not 0 <= after <= MAX_AFTER_SECONDS
    ):
        raise Invalid(f"after_seconds must be a number from 0 to {MAX_AFTER_SECONDS}.",
                      errors={"after_seconds": ["Out of range."]})
    return {k: v for k, v in kwargs.items() if v is not None}


def run_base_checkpoint(kwargs: dict) -> tuple[str, str] | None:
    """(namespace, id) of the checkpoint a run starts from (LangGraph's `checkpoint_id`,
    or `checkpoint: {checkpoint_id, checkpoint_ns}`), or None: the thread's latest."""
    ref = kwargs.get("checkpoint") or {}
    checkpoint_id = kwargs.get("checkpoint_id") or ref.get("checkpoint_id")
    return (str(ref.get("checkpoint_ns") or ""), str(checkpoint_id)) if checkpoint_id else None


def validate_webhook_url(url) -> str:
    parsed = urlsplit(url) if isinstance(url, str) else None
    if parsed is None or parsed.scheme not in ("http", "https") or not parsed.netloc or len(url) > 2000:
        raise Invalid("webhook must be an http(s) URL.", errors={"webhook": ["An http(s) URL."]})
    return url


@transaction.atomic
def create_run(
    *,
    thread: Thread,
    agent=None,
    input=None,
    metadata: dict | None = None,
    model: str = "",
    message: str | None = None,
    runtime: str | None = None,
    multitask_strategy: str = MultitaskStrategy.REJECT,
    kwargs: dict | None = None,
    bind_agent: bool = False,
    supersede_paused: bool = False,
) -> Run:
    """Create a `pending` run and execute it after commit (a worker, or in-process).

    When the thread already has an active run, `multitask_strategy` decides (see
    `MultitaskStrategy`): 409, interrupt it, roll it back, or queue behind it.
    `kwargs`: the run's LangGraph options as posted (config, context, stream_mode,
    webhook, after_seconds, ...), kept on the run; those this service acts on are
    checked (`validate_run_kwargs`). `input.messages` are validated now and appended
    to the thread when the run starts (so queued and delayed runs keep the
    conversation in order); `after_seconds` delays the start; `webhook` receives the
    run when it ends; `command: {resume}` creates no run: the thread's waiting run
    continues and is returned.

    The runtime: `runtime`, else the agent's graph (its current version's
    `graph_id`), else `DEFAULT_RUNTIME`. `bind_agent` (LangGraph's `assistant_id`):
    a thread without an agent gets this run's agent.

    `supersede_paused` (LangGraph's runs, for which a run stopped at an interrupt is
    over): a run of the thread paused on an approval does not count as active —
    without `input` and paused at a breakpoint it continues (as `command: {resume}`,
    and is returned); without `input` and paused on a tool approval, 409 (decide it);
    with `input` it is interrupted, its approval cancelled, and the new run starts
    instead of queueing behind a run that waits on a person.
    """
    if runtime is not None and runtime not in settings.THREAD_RUNTIMES:
        raise Invalid(f"Unknown runtime '{runtime}'.", errors={"runtime": ["Unknown runtime."]})
    if multitask_strategy not in MultitaskStrategy.values:
        raise Invalid(f"Unknown multitask_strategy '{multitask_strategy}'.",
                      errors={"multitask_strategy": [f"One of {', '.join(MultitaskStrategy.values)}."]})
    # (an agent's graph, resolved below, is a one-node graph like the default runtime)
    kwargs = validate_run_kwargs(kwargs or {}, runtime=runtime or settings.DEFAULT_RUNTIME)
    if "command" in kwargs:
        return resume_with_command(thread=thread, command=kwargs["command"])
    asked = message if message is not None else asked_in(input_messages(input))
    after_seconds = kwargs.get("after_seconds")
    locked = lock_thread(thread.pk)
    ensure_open(locked)
    base = run_base_checkpoint(kwargs)
    if base is not None and not Checkpoint.objects.filter(thread=locked, checkpoint_ns=base[0],
                                                          checkpoint_id=base[1]).exists():
        raise NotFound(f"Checkpoint '{base[1]}' not found in this thread.")
    active = Run.objects.filter(thread=locked, status__in=ACTIVE_RUN_STATUSES)
    if supersede_paused and locked.status == ThreadStatus.AWAITING:  # (no query on a thread not waiting)
        paused = active.filter(status=RunStatus.RUNNING, approvals__status=ApprovalStatus.PENDING)
        if input is None and paused.filter(approvals__status=ApprovalStatus.PENDING,
                                           approvals__payload__has_key="interrupt").exists():
            return resume_with_command(thread=locked, command={"resume": None})
        if input is None and paused.exists():
            raise Conflict("The thread's run waits on an approval: decide it with command: {\"resume\": ...}, "
                           "or send new input (which ends it).")
        if interrupt_runs(runs=paused):
            advance_queue(locked)
    busy = active.exists()
    if busy and multitask_strategy != MultitaskStrategy.ENQUEUE:
        if multitask_strategy == MultitaskStrategy.REJECT:
            raise Conflict("The thread already has an active run; cancel it or wait for it to finish.")
        doomed = list(active.values_list("pk", flat=True))
        interrupt_runs(runs=Run.objects.filter(pk__in=doomed))
        if multitask_strategy == MultitaskStrategy.ROLLBACK:
            with receipts.operation(DeletionKind.RUN_DELETE):  # one receipt for the runs rolled back
                for run in Run.objects.filter(pk__in=doomed):
                    roll_back_run(run, account_id=locked.account_id)
    if agent is not None and agent.pk != locked.agent_id:
        # Another agent than the thread's (whose deletion would close this thread under
        # its lock): held until commit, or a 404 if deleted meanwhile.
        from agents.services import hold_agent

        hold_agent(agent.pk)
    if bind_agent and agent is not None and locked.agent_id is None:
        Thread.objects.filter(pk=locked.pk).update(agent=agent)
        locked.agent = agent
    named = agent  # the assistant this run was asked for (LangGraph's thread metadata names it)
    agent = agent if agent is not None else locked.agent
    if agent is not None and (runtime is None or (not model and not locked.model)):
        from agents.caches import agent_config  # the agent's current version, through its cache

        config = agent_config(agent) or {}
        model = model or ("" if locked.model else config.get("model", ""))
        runtime = runtime or config.get("graph_id") or None
    runtime = runtime or settings.DEFAULT_RUNTIME
    if runtime not in settings.THREAD_RUNTIMES:
        raise Invalid(f"Unknown runtime '{runtime}'.", errors={"runtime": ["Unknown runtime."]})
    seq = locked.last_run_seq + 1
    try:
        with transaction.atomic():
            run = Run.objects.create(
                thread=locked, agent=agent, seq=seq, status=RunStatus.PENDING, runtime=runtime,
                model=model or locked.model, input=input, metadata=metadata or {}, message=asked,
                start_message_seq=locked.last_message_seq + 1 if message is None else locked.last_message_seq,
                multitask_strategy=multitask_strategy, kwargs=kwargs,
                start_after=timezone.now() + timedelta(seconds=after_seconds) if after_seconds else None,
            )
    except IntegrityError:  # a run numbered behind the thread's counter (data written by hand)
        raise Conflict("The thread's run numbering is out of step; the run was not created.")
    # Queued behind an active run, the thread keeps its status (running or awaiting).
    status = {} if busy and multitask_strategy == MultitaskStrategy.ENQUEUE else {"status": ThreadStatus.RUNNING}
    if bind_agent:  # as LangGraph's server: the thread's metadata names the graph and assistant of its last run
        from agents.selectors import graph_assistant_id

        names = {"graph_id": runtime, "assistant_id": str(named.pk if named is not None else graph_assistant_id(runtime))}
        if any((locked.metadata or {}).get(k) != v for k, v in names.items()):
            status["metadata"] = locked.metadata = {**(locked.metadata or {}), **names}
    Thread.objects.filter(pk=locked.pk).update(last_run_seq=seq, **status, **activity(locked))
    transaction.on_commit(partial(publish, RunEvents.of(run).metadata), robust=True)
    schedule_execution(run)
    return run


def publish(send, *args, **kwargs) -> None:
    """Send events on the bus; a bus outage never fails the run (readers fall back
    on the run's status in the database)."""
    try:
        send(*args, **kwargs)
    except Exception as exc:
        logger.warning("Publishing run events failed: %s", exc)


def schedule_execution(run: Run, *, approval: Approval | None = None) -> None:
    """Execute (or, after an approval was decided, resume) the run after commit.

    `robust`: with the broker down the request still succeeds (the run is committed);
    `requeue_pending_runs` sends runs left pending to the worker again.
    """
    from ..tasks import execute_run, resume_run

    if approval is None:
        task, args = execute_run, (str(run.pk),)
        delay = max(0.0, (run.start_after - timezone.now()).total_seconds()) if run.start_after else 0.0
    else:
        task, args, delay = resume_run, (str(run.pk), str(approval.pk)), 0.0
        # Resumed from the moment the decision commits, not when an executor picks the
        # run up: a join sent right after the decision follows the run past its pause.
        transaction.on_commit(partial(publish, RunEvents.of(run).resumed), robust=True)
    if current_app.conf.task_always_eager and (delay or settings.RUNS_IN_BACKGROUND):
        send = partial(run_in_process_later, task, *args, delay=delay)
    else:
        send = partial(task.apply_async, args, countdown=delay or None)
    transaction.on_commit(send, robust=True)


def run_in_process_later(task, *args, delay: float = 0.0) -> threading.Thread:
    """Embedded mode (tasks in-process, no worker, no beat): run `task` in a daemon
    thread after `delay` seconds, so a run (`RUNS_IN_BACKGROUND`), a delayed start or a
    webhook delivery never holds the request. Nothing of it survives a restart: that
    is what the worker is for."""
    def call():
        try:
            task.apply(args=args)
        finally:
            connection.close()

    timer = threading.Timer(delay, call)
    timer.daemon = True
    timer.start()
    return timer


def requeue_pending_runs(*, older_than_seconds: int | None = None) -> int:
    """Send again the runs still `pending` after a while (broker down, worker lost).
    Executing a run is idempotent: only a `pending` run starts, under its row lock.
    A delayed run (`after_seconds`) counts from its start time, not its creation: one
    whose countdown a lost worker took with it starts within a requeue period after
    it was due, and none starts early. A run queued behind a running one is not sent:
    it could not start."""
    from ..tasks import execute_run

    age = older_than_seconds if older_than_seconds is not None else settings.RUN_REQUEUE_AFTER_SECONDS
    now = timezone.now()
    stale = Run.objects.filter(status=RunStatus.PENDING).filter(
        Q(start_after__isnull=True, created_at__lte=now - timedelta(seconds=age)) | Q(start_after__lte=now)
    ).exclude(  # queued behind a running run: it starts when that one ends (advance_queue)
        Exists(Run.objects.filter(thread_id=OuterRef("thread_id"), status=RunStatus.RUNNING))
    )
    ids = [str(pk) for pk in stale.order_by("created_at").values_list("pk", flat=True)[:500]]
    for run_id in ids:
        execute_run.delay(run_id)
    return len(ids) + requeue_decided_runs(older_than=now - timedelta(seconds=age))


def requeue_decided_runs(*, older_than) -> int:
    """Send `resume_run` again for the runs whose approvals were all decided before
    `older_than` but that no worker took up (the resume message lost: broker down at
    the decision's commit, a worker lost before it started): `resolve_approval` left
    them `running` with no executor, so no lease can end them. `resume_run` claims a
    run once, so a late original message does nothing twice."""
    from ..tasks import resume_run as resume

    decided = Approval.objects.filter(run_id=OuterRef("pk"), decided_at__isnull=False).exclude(
        status=ApprovalStatus.PENDING).order_by("-decided_at")
    waiting = (Run.objects.filter(status=RunStatus.RUNNING, executor="", executor_lease__isnull=True)
               .exclude(approvals__status=ApprovalStatus.PENDING)
               .annotate(approval=Subquery(decided.values("pk")[:1]), decided_at=Subquery(decided.values("decided_at")[:1]))
               .filter(approval__isnull=False, decided_at__lte=older_than))
    found = list(waiting.order_by("decided_at").values_list("pk", "approval")[:500])
    for run_id, approval_id in found:
        resume.delay(str(run_id), str(approval_id))
    return len(found)


def resume_run(*, run_id, approval_id) -> Run | None:
    run = Run.objects.filter(pk=run_id, status=RunStatus.RUNNING).first()
    approval = Approval.objects.filter(pk=approval_id, run_id=run_id).first()
    if run is None or approval is None:
        return run
    # The worker continuing the run is its executor now, under its lease (see
    # `recover_lost_runs`): claimed once — a second resume message (the original one
    # arriving after `requeue_decided_runs` sent it again) finds it taken.
    run.executor, run.executor_lease = worker_name(), worker_lease()
    claimed = Run.objects.filter(pk=run.pk, status=RunStatus.RUNNING, executor="", executor_lease__isnull=True).update(
        executor=run.executor, executor_lease=run.executor_lease)
    if not claimed:
        return Run.objects.filter(pk=run.pk).first()
    return continue_run(run=run, approval=approval)


def execute_run(*, run_id) -> Run | None:
    """Start the next queued run of `run_id`'s thread (normally `run_id` itself) and
    run it through its runtime; nothing if a run of the thread is executing.

    Runs of a thread execute one at a time, in order: a queued run starts when the
    one before ends (`advance_queue`); the database's partial unique index on
    `running` guarantees it. The runtime is called outside any transaction (it may
    take long); its result is recorded only if the run is still `running` then (a
    cancel meanwhile wins).
    """
    with transaction.atomic():
        # Lock order thread, then run, as everywhere else (a cancel or an agent
        # deletion interrupting this run holds the thread first).
        thread = Thread.objects.select_for_update(of=("self",), no_key=True).filter(runs__pk=run_id).first()
        if thread is None or Run.objects.filter(thread=thread, status=RunStatus.RUNNING).exists():
            return Run.objects.filter(pk=run_id).first()
        run = next_queued_run(thread)
        if run is None:
            return Run.objects.filter(pk=run_id).first()
        if run.start_after is not None and run.start_after > timezone.now():
            return run  # not due (a requeue, a redelivery): its countdown or the requeue starts it
        base = run_base_checkpoint(run.kwargs or {})
        latest = latest_checkpoint(thread_id=thread.pk, checkpoint_ns=base[0]) if base is not None else None
        if base is not None and (latest is None or latest.checkpoint_id != base[1]):
            # LangGraph's run from an older checkpoint: the state forks there
            try:
                update_state(thread=thread, values=None, checkpoint_ns=base[0], checkpoint_id=base[1],
                             while_busy=True)
            except NotFound:  # gone since the run was created (a prune, a rollback): the run fails
                return end_unstartable_run(run, thread, f"The checkpoint '{base[1]}' it starts from is gone.")
        messages = input_messages(run.input)
        if messages:
            run.start_message_seq = thread.last_message_seq + 1
            append_input_messages(thread, run, messages)
        run.status = RunStatus.RUNNING
        run.started_at = timezone.now()
        run.executor, run.executor_lease = worker_name(), worker_lease()
        run.save(update_fields=["status", "started_at", "start_message_seq", "executor", "executor_lease",
                                "updated_at"])
    return continue_run(run=run)


def recover_lost_runs(*, executor: str | None = None, limit: int = 500) -> int:
    """End the runs lost with their worker: each run still `running`, not paused on an
    approval, whose worker's lease expired (`services.workers`: killed, scaled down,
    its host gone) ends `error` as a runtime failure does (the runs queued behind it
    start, its stream ends, its webhook is sent), through `record_result`, which
    checks again under the run's lock that it is still lost. Beat calls it for every
    worker (`limit` runs per call, the oldest first); a worker starting calls it for
    its own name (`executor`), which also ends that name's runs started before leases
    (by this worker's predecessor). A run under a live lease is never ended: its
    worker executes it, even a second worker under the same name; nor one paused on
    an approval, nor one in-process (no executor). Returns how many ended."""
    from .workers import unrenewed

    if executor == "":
        return 0
    runs = Run.objects.filter(status=RunStatus.RUNNING).exclude(approvals__status=ApprovalStatus.PENDING)
    lost = unrenewed()
    if executor is not None:
        runs, lost = runs.filter(executor=executor), lost | Q(executor_lease__isnull=True)
    found = list(runs.filter(lost).order_by("started_at").values_list("pk", "executor", "executor_lease")[:limit])
    count, workers = 0, set()
    for run_id, name, lease in found:
        reason = "its lease expired" if lease is not None else "it started again"
        error = f"The worker executing it ({name}) stopped before it finished ({reason}); send it again."
        try:
            run = record_result(run_id=run_id, result=RuntimeResult(status="error", error=error), lost=(name, lease))
        except Exception:  # the next call tries it again; the others go on
            logger.exception("Ending run %s, lost with worker %s, failed", run_id, name)
            continue
        if run is not None and run.status == RunStatus.ERROR and run.error == error:
            count += 1
            workers.add(name)
    if count:
        logger.warning("Ended %d run(s) lost with their worker (%s)", count, ", ".join(sorted(workers)))
    return count


def still_lost(run: Run, lost: tuple[str, uuid.UUID | None]) -> bool:
    """Whether a run found lost (under `lost`: its executor and lease then) still is,
    under its lock: not resumed by another worker, not paused, its lease not renewed."""
    from .workers import unrenewed

    if (run.executor, run.executor_lease) != lost:
        return False
    if Approval.objects.filter(run_id=run.pk, status=ApprovalStatus.PENDING).exists():
        return False
    return run.executor_lease is None or Run.objects.filter(unrenewed(), pk=run.pk).exists()


def append_input_messages(thread: Thread, run: Run, messages: list) -> None:
    """A run's input messages, stored with the ids the client gave them when free (a
    message of another thread taking one meanwhile: stored again with new ids)."""
    ids = free_message_ids(input_message_ids(run.input))
    for attempt in (ids, [None] * len(ids)):
        try:
            with transaction.atomic():
                for role, group in groupby(zip(messages, attempt), key=lambda m: m[0][0]):
                    group = list(group)
                    append_messages(thread=thread, role=role, contents=[c for (_, c), _ in group], run=run,
                                    agent=None, ids=[i for _, i in group])
            return
        except IntegrityError:
            if not any(attempt):
                raise
            thread.refresh_from_db(fields=["last_message_seq", "message_tokens"])


def end_unstartable_run(run: Run, thread: Thread, error: str) -> Run:
    """A queued run that cannot start ends `error` (in the caller's transaction,
    holding the thread), and the queue moves on."""
    run.status = RunStatus.ERROR
    run.error = error
    run.completed_at = timezone.now()
    run.save(update_fields=["status", "error", "completed_at", "updated_at"])
    advance_queue(thread)
    transaction.on_commit(partial(finish_run_stream, run, []), robust=True)
    return run


def next_queued_run(thread: Thread) -> Run | None:
    """The thread's first pending run (locked): the one to start next."""
    return Run.objects.select_for_update(no_key=True).filter(thread=thread, status=RunStatus.PENDING).order_by("seq").first()


def advance_queue(thread: Thread) -> None:
    """After a run of a (locked) thread ended: start the next queued run, or the
    thread goes idle."""
    waiting = Run.objects.filter(thread=thread, status=RunStatus.PENDING).order_by("seq").first()
    if waiting is None:
        if not Run.objects.filter(thread=thread, status=RunStatus.RUNNING).exists():
            set_thread_status(thread, ThreadStatus.IDLE)
        return
    set_thread_status(thread, ThreadStatus.RUNNING)
    schedule_execution(waiting)


def continue_run(*, run: Run, approval: Approval | None = None) -> Run:
    """Call the runtime for a running run (or resume it after `approval` was decided)
    and record what it produced. The runtime streams through `run.events`.
    `interrupt_before` / `interrupt_after` pause the run on an approval before / after
    the runtime's node (see `breakpoint_result`)."""
    run.events = RunEvents.of(run)
    try:
        runtime = get_runtime(run.runtime)
        point = (approval.payload or {}).get("interrupt") if approval is not None else None
        if approval is None:
            publish(run.events.started, thread_values(run.thread_id))
        else:
            publish(run.events.resumed)
        if approval is not None and point is None:
            result = runtime.resume(run=run, approval=approval, approved=approval.status == ApprovalStatus.APPROVED)
        elif point == "after":
            result = RuntimeResult(status="success", result=approval.payload.get("result"))
        elif point is None and stops_at(run, "interrupt_before", runtime.name):
            result = breakpoint_result("before", runtime.name)
        else:
            history = list(Message.objects.filter(thread_id=run.thread_id, rolled_back=False)
                           .order_by("-seq")[: settings.RUNTIME_HISTORY])
            result = runtime.execute(run=run, history=history[::-1])
            if result.status == "success" and stops_at(run, "interrupt_after", runtime.name):
                result = replace(result, status="awaiting",
                                 approval=breakpoint_result("after", runtime.name, result=result.result).approval)
    except Exception as exc:  # a runtime failure ends the run, never the worker
        logger.warning("Run %s failed in runtime %s: %s", run.pk, run.runtime, exc)
        result = RuntimeResult(status="error", error=str(exc) or exc.__class__.__name__)
    return record_outcome(run_id=run.pk, result=result)


RECORD_ATTEMPTS = 4


def record_outcome(*, run_id, result: RuntimeResult) -> Run | None:
    """`record_result`, tried again on a fresh connection when the database connection
    was lost (the server restarted, a proxy cut it while the runtime worked): the run's
    outcome must be written, since a run left `running` under its worker's live lease
    has nothing to end it. Safe to repeat: a transaction that did commit left the run
    ended, and a second `record_result` then drops the result."""
    for attempt in range(RECORD_ATTEMPTS):
        try:
            return record_result(run_id=run_id, result=result)
        except (OperationalError, InterfaceError) as exc:
            if attempt == RECORD_ATTEMPTS - 1 or connection.in_atomic_block:
                raise
            logger.warning("Recording run %s failed (%s); trying again on a new connection", run_id, exc)
            connection.close()
            time.sleep(0.2 * 2 ** attempt)


def stops_at(run: Run, option: str, node: str) -> bool:
    nodes = (run.kwargs or {}).get(option)
    return nodes == "*" or (isinstance(nodes, list) and node in nodes)


def breakpoint_result(point: str, node: str, *, result: str | None = None) -> RuntimeResult:
    """A run paused at LangGraph's static breakpoint: an approval named
    `interrupt_<point>:<node>` that `command: {resume}` (or any decision) continues."""
    payload = {"interrupt": point, "node": node}
    if result is not None:
        payload["result"] = result
    return RuntimeResult(status="awaiting", approval={"tool_name": f"interrupt_{point}:{node}", "payload": payload})


def end_runs_paused_at(thread: Thread, *, node: str) -> int:
    """LangGraph's `update_state(..., as_node=<the node a paused run waits on>)`: the
    update is applied as that node's output, so the graph moves past it — to its end,
    the runtime's one node leading to `__end__`. The run paused there (at a breakpoint
    before or after the node, or on a tool approval inside it) ends `success`, as
    LangGraph's run did when it stopped at the interrupt; its pending approvals are
    `cancelled`; the thread goes idle (or its next queued run starts). The caller holds
    the thread's lock and has written the update's checkpoint. Returns how many runs
    ended."""
    waiting = [a for a in Approval.objects.filter(thread=thread, status=ApprovalStatus.PENDING,
                                                   run__status=RunStatus.RUNNING).select_related("run")
               if node in (paused_node(a), a.run.runtime)]
    if not waiting:
        return 0
    Approval.objects.filter(pk__in=[a.pk for a in waiting]).update(status=ApprovalStatus.CANCELLED,
                                                                   decided_at=timezone.now())
    runs = {a.run_id: (a.payload or {}).get("result") if (a.payload or {}).get("interrupt") == "after" else None
            for a in waiting}
    for run_id, answer in runs.items():
        record_result(run_id=run_id, result=RuntimeResult(status="success", result=answer))
    return len(runs)


def paused_node(approval: Approval) -> str:
    """The graph node a pending approval holds its run at: a breakpoint's node, else
    (a tool approval, inside the node) its runtime's one node."""
    node = (approval.payload or {}).get("node")
    if isinstance(node, str) and node:
        return node
    try:
        return get_runtime(approval.run.runtime).name
    except KeyError:  # a runtime no longer configured
        return approval.run.runtime


RESUME_DECISIONS = {True: "approve", "approve": "approve", "approved": "approve", "yes": "approve",
                    False: "deny", "deny": "deny", "denied": "deny", "reject": "deny", "no": "deny"}


def resume_decision(value, *, breakpoint: bool) -> str:
    """A `command.resume` value as an approval decision. A breakpoint continues
    whatever the value; a tool approval takes true/false, approve/deny, or
    `{"approved": bool}` / `{"decision": ...}` (422 otherwise)."""
    if breakpoint:
        return "approve"
    if isinstance(value, dict):
        value = value.get("approved", value.get("decision", value.get("action")))
    decision = RESUME_DECISIONS.get(value.lower() if isinstance(value, str) else value) if isinstance(
        value, (str, bool)) else None
    if decision is None:
        raise Invalid("command.resume must approve or deny: true/false, 'approve'/'deny' or {\"approved\": bool}.",
                      errors={"command": ["resume: approve or deny."]})
    return decision


@transaction.atomic
def resume_with_command(*, thread: Thread, command: dict) -> Run:
    """LangGraph's `command: {resume}` on a thread whose run waits on an approval
    (a breakpoint or a tool call): the approval is decided and that run continues;
    the run is returned. 409 if nothing waits."""
    from .lifecycle import resolve_approval

    locked = lock_thread(thread.pk)
    approval = Approval.objects.filter(
        thread=locked, status=ApprovalStatus.PENDING, run__status=RunStatus.RUNNING
    ).select_related("run").order_by("created_at").first()
    if approval is None:
        raise Conflict("Nothing to resume: no run of this thread waits on an interrupt or approval.")
    decision = resume_decision(command.get("resume"), breakpoint=bool((approval.payload or {}).get("interrupt")))
    resolve_approval(thread=locked, approval_id=approval.pk, decision=decision)
    run = approval.run
    run.kwargs = {**run.kwargs, "command": command}
    run.save(update_fields=["kwargs", "updated_at"])
    run.resumed = True  # not a new run: its stream so far is the part before the interrupt
    return run


@transaction.atomic
def record_result(*, run_id, result: RuntimeResult, lost: tuple[str, uuid.UUID | None] | None = None) -> Run | None:
    """Record what a run produced, if it is still `running`: a run cancelled, timed
    out or ended as lost meanwhile stays as it is, and a late result (a worker whose
    lease lapsed) is dropped. `lost` (`recover_lost_runs`): the run's executor and
    lease when it was found lost; recorded only if `still_lost`."""
    thread = Thread.objects.select_for_update(of=("self",), no_key=True).filter(runs__pk=run_id).first()
    run = Run.objects.select_for_update(no_key=True).filter(pk=run_id).first()
    if thread is None or run is None:
        return None  # the run (or its thread) was deleted while the runtime worked
    if run.status != RunStatus.RUNNING:
        return run  # interrupted, rolled back or ended as lost meanwhile: the output is dropped
    if lost is not None:
        if not still_lost(run, lost):
            return run
        # A worker only slow (its lease lapsed) stops producing for it, as for a cancel.
        transaction.on_commit(partial(publish, get_bus().cancel, run.pk), robust=True)
    now = timezone.now()
    added = []
    if result.messages:
        added = append_messages(thread=thread, role="assistant", contents=result.messages, run=run, agent=run.agent,
                                ids=result.message_ids or None)
    if result.checkpoint is not None:
        # `message_seq`: the stored messages this state includes (a runtime appends
        # the ones after it); `step` as LangGraph counts supersteps.
        parent_id, step = parent_and_step(thread=thread)
        store_checkpoint(
            thread=thread, checkpoint_ns="", checkpoint_id=str(uuid.uuid4()),
            parent_checkpoint_id=parent_id, checkpoint=result.checkpoint,
            metadata={**(run.metadata or {}), **result.checkpoint_metadata, "source": "loop", "run_id": str(run.pk),
                      "graph_id": run.runtime, "step": step, "message_seq": thread.last_message_seq},
            run=run, writes=[],
        )
    run.input_tokens += result.input_tokens
    run.output_tokens += result.output_tokens
    # A run that pauses with runs queued behind it is over, as LangGraph's runs are at
    # an interrupt: it ends `interrupted` and the queue moves on (no queue waits on a person).
    superseded = result.status == "awaiting" and Run.objects.filter(thread=thread, status=RunStatus.PENDING).exists()
    if result.status == "awaiting" and not superseded:
        approval = Approval.objects.create(
            thread=thread, run=run, tool_name=(result.approval or {}).get("tool_name", ""),
            payload=(result.approval or {}).get("payload", {}), expires_at=approval_expiry(now),
        )
        run.save(update_fields=["input_tokens", "output_tokens", "updated_at"])
        set_thread_status(thread, ThreadStatus.AWAITING)
        transaction.on_commit(partial(pause_run_stream, run, added, approval), robust=True)
        return run
    run.status = (RunStatus.INTERRUPTED if superseded
                  else RunStatus.SUCCESS if result.status == "success" else RunStatus.ERROR)
    run.result = result.result
    run.error = result.error
    run.completed_at = now
    run.end_message_seq = thread.last_message_seq
    run.save()
    advance_queue(thread)
    if (run.kwargs or {}).get("webhook"):
        schedule_webhooks([run.pk])  # read before a stateless run's thread goes
    transaction.on_commit(partial(finish_run_stream, run, added), robust=True)
    return run


def finish_run_stream(run: Run, added: list[Message]) -> None:
    """After a run ended: its stream's last events (final values, `end`), then, for a
    stateless run, its temporary thread goes, through the deletion service."""
    values = thread_values(run.thread_id)
    delete_temporary_threads([run])  # before the `end`: a client that saw it finds nothing left
    publish(RunEvents.of(run).finished, values=values, new_messages=[from_stored(m) for m in added],
            error=run.error if run.status == RunStatus.ERROR else None, status=run.status)


def pause_run_stream(run: Run, added: list[Message], approval: Approval) -> None:
    """After a run paused on an approval: its stream's last events until it resumes."""
    from ..serializers import interrupt_json

    RunEvents.of(run).paused(values=thread_values(run.thread_id), interrupts=[interrupt_json(approval)],
                             new_messages=[from_stored(m) for m in added])


def delete_temporary_threads(runs) -> None:
    """A stateless run's thread (`kwargs.temporary`, `on_completion: delete`, the
    default) is deleted once the run ended, through the deletion service like any
    thread: everything under it goes. A failure is logged; the thread is then an
    ordinary thread left to its owner (and the TTL sweeper)."""
    from .deletion import delete_threads

    ids = [run.thread_id for run in runs
           if run.kwargs.get("temporary") and run.kwargs.get("on_completion", "delete") == "delete"]
    if ids:
        try:
            delete_threads(thread_ids=ids)
        except Exception as exc:
            logger.warning("Deleting the temporary threads %s failed: %s", ids, exc)


def approval_expiry(now):
    minutes = getattr(settings, "APPROVAL_TIMEOUT_MINUTES", 60)
    return now + timezone.timedelta(minutes=minutes) if minutes else None


def set_thread_status(thread: Thread, status: str) -> None:
    """Move a locked thread's status; a closed thread stays closed."""
    if thread.status == ThreadStatus.CLOSED:
        return
    thread.status = status
    Thread.objects.filter(pk=thread.pk).update(status=status, **activity(thread))


def interrupt_runs(*, runs: QuerySet, end_status: str = RunStatus.INTERRUPTED) -> int:
    """Set-based: interrupt the active runs among `runs` and cancel their pending
    approvals. Checkpoints are kept. The callers hold the threads' locks and set
    the threads' status. After commit, the runs' webhooks are called, their executors
    are told to stop, their streams end (with `end_status`: `deleted` for a run the
    caller deletes), and stateless runs' threads are deleted."""
    active = runs.filter(status__in=ACTIVE_RUN_STATUSES)
    stopped = list(Run.objects.filter(pk__in=active.values("pk")).only("pk", "thread_id", "kwargs", "runtime"))
    if not stopped:
        return 0
    Approval.objects.filter(run__in=[r.pk for r in stopped], status=ApprovalStatus.PENDING).update(
        status=ApprovalStatus.CANCELLED, decided_at=timezone.now()
    )
    count = Run.objects.filter(pk__in=[r.pk for r in stopped], status__in=ACTIVE_RUN_STATUSES).update(
        status=RunStatus.INTERRUPTED, completed_at=timezone.now(), updated_at=timezone.now())
    schedule_webhooks([r.pk for r in stopped if (r.kwargs or {}).get("webhook")])
    transaction.on_commit(partial(end_interrupted_streams, stopped, end_status), robust=True)
    return count


def end_interrupted_streams(runs: list[Run], status: str = RunStatus.INTERRUPTED) -> None:
    delete_temporary_threads(runs)
    end_streams([(run.pk, run.thread_id) for run in runs], status)


RUN_DELETED = "deleted"  # the status a deleted run's stream ends with (not a run status: the run is gone)


def end_streams(runs: list[tuple], status: str) -> None:
    """Tell the executors of these runs ((run id, thread id)) to stop producing, and
    end their streams (`end` with `status`): their followers end now, not at their
    next heartbeat."""
    bus = get_bus()
    for run_id, thread_id in runs:
        publish(bus.cancel, run_id)
        publish(RunEvents(run_id=run_id, thread_id=thread_id).end, status)


def stop_deleted_runs(runs: list[tuple]) -> None:
    """Of a deletion whose cascade takes these active runs ((run id, thread id)): after
    commit, `end_streams` them with status `deleted` (nothing if it rolls back)."""
    if runs:
        transaction.on_commit(partial(end_streams, runs, RUN_DELETED), robust=True)


def lock_run(*, thread: Thread, run_id) -> tuple[Thread, Run]:
    """Lock the thread, then its run; 404 if the run is not this thread's."""
    locked = lock_thread(thread.pk)
    run = Run.objects.select_for_update().filter(pk=run_id, thread_id=locked.pk).first()
    if run is None:
        raise NotFound("Run not found.")
    return locked, run


@transaction.atomic
def cancel_run(*, thread: Thread, run_id, action: str = "interrupt") -> Run | None:
    """LangGraph's cancel: `interrupt` stops the run and keeps its checkpoints;
    `rollback` deletes the run and its checkpoints (the thread's state returns to
    before the run; its messages stay, detached, as the record: see `roll_back_run`).
    409 if the run is not active."""
    if action not in CANCEL_ACTIONS:
        raise Invalid(f"Unknown action '{action}'.", errors={"action": ["interrupt or rollback."]})
    locked, run = lock_run(thread=thread, run_id=run_id)
    if run.status not in ACTIVE_RUN_STATUSES:
        raise Conflict(f"The run is not active (status '{run.status}').")
    interrupt_runs(runs=Run.objects.filter(pk=run.pk))
    if action == "rollback":
        roll_back_run(run, account_id=locked.account_id)
    advance_queue(locked)
    if action == "rollback":
        return None
    run.refresh_from_db()
    return run


@transaction.atomic
def cancel_runs(*, thread: Thread, status: str = "all") -> int:
    """Interrupt the thread's pending, running or all active runs; returns how many."""
    choices = {"pending": [RunStatus.PENDING], "running": [RunStatus.RUNNING], "all": list(ACTIVE_RUN_STATUSES)}
    if status not in choices:
        raise Invalid(f"Unknown status '{status}'.", errors={"status": ["pending, running or all."]})
    locked = lock_thread(thread.pk)
    count = interrupt_runs(runs=Run.objects.filter(thread=locked, status__in=choices[status]))
    if count:
        advance_queue(locked)
    return count


@transaction.atomic
def cancel_many(*, threads: QuerySet, run_ids=None, status: str = "all", action: str = "interrupt") -> int:
    """LangGraph's global cancel: the active runs among `run_ids` (or all with
    `status`: pending, running or all) on `threads`, set-based; `rollback` deletes
    them as `delete_run` does. The threads are locked in id order (no deadlock with
    another cancel); their queues advance. Returns how many runs were cancelled."""
    if action not in CANCEL_ACTIONS:
        raise Invalid(f"Unknown action '{action}'.", errors={"action": ["interrupt or rollback."]})
    statuses = {"pending": [RunStatus.PENDING], "running": [RunStatus.RUNNING], "all": list(ACTIVE_RUN_STATUSES)}
    if status not in statuses:
        raise Invalid(f"Unknown status '{status}'.", errors={"status": ["pending, running or all."]})
    runs = Run.objects.filter(status__in=statuses[status])
    if run_ids is not None:
        runs = runs.filter(pk__in=list(run_ids))
    locked = list(
        Thread.objects.select_for_update(of=("self",), no_key=True)
        .filter(pk__in=runs.filter(thread__in=threads).values("thread_id")).order_by("pk")
    )
    if not locked:
        return 0
    targets = list(runs.filter(thread__in=[t.pk for t in locked]).values_list("pk", flat=True))
    count = interrupt_runs(runs=Run.objects.filter(pk__in=targets))
    if action == "rollback":
        account_of = {t.pk: t.account_id for t in locked}
        with receipts.operation(DeletionKind.RUN_DELETE):  # one receipt per account for the runs rolled back
            for run in Run.objects.filter(pk__in=targets):
                roll_back_run(run, account_id=account_of[run.thread_id])
    for thread in locked:
        advance_queue(thread)
    return count


@transaction.atomic
def delete_run(*, thread: Thread, run_id, force: bool = False) -> None:
    """Delete a run and, by the database cascade, the checkpoints it wrote (and their
    writes and approvals); the thread's messages stay, detached from the run. An
    active run is a 409 unless `force`, which interrupts it first. On PostgreSQL a
    finished run is locked and deleted in one round trip (`delete_finished_run`)."""
    if connection.vendor == "postgresql":
        deleted = delete_finished_run(thread_id=thread.pk, run_id=run_id)
        if deleted is not None:
            record_run_removal(run_id=deleted.run_id, account_id=deleted.account_id,
                               checkpoints=deleted.checkpoints, inline=deleted.receipt)
            return
    locked, run = lock_run(thread=thread, run_id=run_id)
    if run.status in ACTIVE_RUN_STATUSES:
        if not force:
            raise Conflict(f"The run is {run.status}; cancel it first or pass force=true.")
        interrupt_runs(runs=Run.objects.filter(pk=run.pk), end_status=RUN_DELETED)
        remove_run(run, account_id=locked.account_id)
        advance_queue(locked)
        return
    remove_run(run, account_id=locked.account_id)


class DeletedRun(NamedTuple):
    run_id: uuid.UUID
    account_id: uuid.UUID
    checkpoints: int
    receipt: "receipts.InlineReceipt | None"  # written by the delete statement, or None: to record


def delete_finished_run(*, thread_id, run_id) -> DeletedRun | None:
    """PostgreSQL, one round trip of three statements: `lock_run`'s two locks (the
    thread `FOR NO KEY UPDATE`, then the run `FOR UPDATE`, the same order), then — in a
    fresh snapshot, under those locks — `relink_and_delete_run` for the run if it is
    finished, with its receipt's INSERT as a data-modifying CTE (`inline_receipt`;
    the caller records it inside an open operation). 404 as `lock_run`; None when the
    run is active (nothing is deleted, the locks are held: the caller goes on with
    `lock_run`) or the id is not a UUID (`lock_run` answers it)."""
    try:
        run_id = uuid.UUID(str(run_id))
    except ValueError:
        return None
    q = connection.ops.quote_name
    receipt = receipts.inline_receipt(
        DeletionKind.RUN_DELETE, run_tally(run_id=run_id, checkpoints=0), source="deleted",
        from_sql={"account_id": f"(SELECT account_id FROM {q(Thread._meta.db_table)} WHERE id = %(thread)s)",
                  "checkpoints": "(SELECT COUNT(*) FROM own)"})
    with connection.cursor() as cursor, prepared(*delete_finished_run_sql(receipt.cte if receipt else ""),
                                                   generic=True) as message:
        message.execute(cursor, {"run": run_id, "thread": thread_id, "active": list(ACTIVE_RUN_STATUSES),
                                  **(receipt.params if receipt else {})})
        thread_row = cursor.fetchone()
        cursor.nextset()
        run_row = cursor.fetchone()
        cursor.nextset()
        deleted = cursor.fetchone()
    if thread_row is None:
        raise NotFound("Thread not found.")
    if run_row is None:
        raise NotFound("Run not found.")
    return None if deleted is None else DeletedRun(run_id, thread_row[0], deleted[0], receipt)


@cache
def delete_finished_run_sql(receipt: str) -> tuple[str, str, str]:
    """`delete_finished_run`'s three statements (sent `prepared`)."""
    q = connection.ops.quote_name
    runs = q(Run._meta.db_table)
    finished = (f"SELECT id FROM {runs} WHERE id = %(run)s AND thread_id = %(thread)s"
                f" AND NOT (status = ANY(%(active)s))")
    return (f"SELECT account_id FROM {q(Thread._meta.db_table)} WHERE id = %(thread)s FOR NO KEY UPDATE",
            f"SELECT status FROM {runs} WHERE id = %(run)s AND thread_id = %(thread)s FOR UPDATE",
            relink_and_delete_sql(finished, receipt))


def roll_back_run(run: Run, *, account_id) -> None:
    """LangGraph's rollback of a run (the caller holds its thread's lock): the run goes
    as in `remove_run`, and all the messages it added (its input) leave the thread's
    state — kept, detached, as the record of what was sent, but never again part of
    what a run or `GET state` sees."""
    withdraw_from_state(Message.objects.filter(run_id=run.pk, rolled_back=False), thread_id=run.thread_id)
    remove_run(run, account_id=account_id)


def withdraw_from_state(messages: QuerySet, *, thread_id) -> None:
    """These messages of the thread leave its state (`rolled_back`): kept as its
    record, never again added to what a run or `GET state` sees."""
    tokens = messages.aggregate(n=Sum("token_count"))["n"] or 0
    messages.update(rolled_back=True)
    if tokens:  # the thread's token estimate counts what its state holds
        Thread.objects.filter(pk=thread_id).update(message_tokens=Greatest(F("message_tokens") - tokens, 0))


def remove_run(run: Run, *, account_id) -> None:
    """Delete a run (the caller holds its thread's lock). The database cascade removes
    its checkpoints, their writes and its approvals, and detaches its messages; those
    of its messages that only its checkpoints held — stored after the latest root
    checkpoint that stays — leave the state with them (`withdraw_from_state`), or the
    next run would take them back (`state_and_new_messages`). The receipt counts the
    run and its checkpoints. On PostgreSQL all of it is one statement; elsewhere a few."""
    if connection.vendor == "postgresql":
        checkpoints = relink_and_delete_run(run)
    else:
        kept = Checkpoint.objects.newest_first(thread_id=run.thread_id).exclude(run_id=run.pk)
        withdraw_from_state(Message.objects.filter(run_id=run.pk, rolled_back=False,
                                                   seq__gt=state_message_seq(kept.first())),
                            thread_id=run.thread_id)
        relink_past_run_checkpoints(run)
        checkpoints = Checkpoint.objects.filter(run_id=run.pk).count()
        Run.objects.filter(pk=run.pk).delete()
    record_run_removal(run_id=run.pk, account_id=account_id, checkpoints=checkpoints)


def record_run_removal(*, run_id, account_id, checkpoints: int, inline=None) -> None:
    """The run's receipt (`inline`: the one its delete statement wrote, completed)."""
    receipts.record(DeletionKind.RUN_DELETE, {account_id: run_tally(run_id=run_id, checkpoints=checkpoints)},
                    inline=inline)


def run_tally(*, run_id, checkpoints: int) -> receipts.Tally:
    return receipts.Tally(root_ids=[run_id], runs=1, checkpoints=checkpoints)


def relink_and_delete_run(run: Run) -> int:
    """`relink_past_run_checkpoints` and the delete in one statement (see
    `relink_and_delete_sql`). Returns how many checkpoints went with the run."""
    with connection.cursor() as cursor:
        cursor.execute(relink_and_delete_sql("SELECT %(run)s::uuid AS id"), {"run": run.pk, "thread": run.thread_id})
        row = cursor.fetchone()
    return row[0] if row else 0


@cache
def relink_and_delete_sql(target: str, receipt: str = "") -> str:
    """Delete the run selected by `target` (a query of its id, or of nothing) with
    `relink_past_run_checkpoints` in one statement, in time that follows the run, not
    the thread. A surviving child of one of the run's checkpoints gets the nearest
    ancestor outside the run: walking up from any of the run's checkpoints, one
    leaves the run at an "entry" (a run checkpoint whose parent is not the run's), so
    in a namespace where the run has a single entry — a run's checkpoints are one
    chain, or a tree under its first — every child's ancestor is that entry's parent,
    found with two hash joins over the run's checkpoints. Elsewhere a recursive CTE
    walks each child up past them (one probe of the unique (thread, namespace,
    checkpoint id) index per step). A data-modifying CTE re-links (the children by
    primary key: never a scan of the table, which the planner picked when it misjudged
    how many there are), two more withdraw from the state the run's messages past the
    latest root checkpoint that stays, as `remove_run` does elsewhere (`kept` reads its
    `message_seq` as `state_message_seq` does), and the run is deleted, returning how
    many checkpoints went with it (counted in the statement's snapshot). `receipt`: the
    CTE of an INSERT selecting from `deleted` (the deleted run's id; see
    `receipts.inline_receipt`), appended to the statement's."""
    q = connection.ops.quote_name
    checkpoints, runs = q(Checkpoint._meta.db_table), q(Run._meta.db_table)
    messages, threads = q(Message._meta.db_table), q(Thread._meta.db_table)
    return f"""
        WITH RECURSIVE target AS ({target}),
        kept(seq) AS (
            SELECT CASE WHEN jsonb_typeof(metadata -> 'message_seq') = 'number'
                         AND (metadata ->> 'message_seq') ~ '^-?[0-9]+$'
                        THEN (metadata ->> 'message_seq')::bigint ELSE 0 END
            FROM {checkpoints} WHERE thread_id = %(thread)s AND checkpoint_ns BETWEEN '' AND ''
              AND run_id IS DISTINCT FROM %(run)s
            ORDER BY checkpoint_ns, id DESC LIMIT 1  -- from `checkpoint_latest` (see `newest_first`)
        ),
        withdrawn AS (
            UPDATE {messages} SET rolled_back = true
            WHERE thread_id = %(thread)s AND run_id IN (SELECT id FROM target) AND NOT rolled_back
              AND seq > COALESCE((SELECT seq FROM kept), 0)
            RETURNING token_count
        ),
        untallied AS (
            UPDATE {threads} SET message_tokens = GREATEST(message_tokens - (SELECT SUM(token_count) FROM withdrawn), 0)
            WHERE id = %(thread)s AND EXISTS (SELECT 1 FROM withdrawn WHERE token_count > 0)
        ),
        own AS (
            SELECT checkpoint_ns, checkpoint_id, parent_checkpoint_id FROM {checkpoints}
            WHERE run_id IN (SELECT id FROM target)
        ),
        exits(ns, ancestor) AS (
            SELECT o.checkpoint_ns, (array_agg(o.parent_checkpoint_id))[1] FROM own o
            WHERE NOT EXISTS (SELECT 1 FROM own p WHERE p.checkpoint_ns = o.checkpoint_ns
                              AND p.checkpoint_id = o.parent_checkpoint_id)
            GROUP BY o.checkpoint_ns HAVING COUNT(*) = 1
        ),
        children(id, ns, parent) AS (
            SELECT o.id, o.checkpoint_ns, o.parent_checkpoint_id FROM {checkpoints} o
            WHERE o.thread_id = %(thread)s AND o.parent_checkpoint_id = ANY(ARRAY(SELECT checkpoint_id FROM own))
              AND o.run_id IS DISTINCT FROM %(run)s
              AND EXISTS (SELECT 1 FROM own WHERE own.checkpoint_ns = o.checkpoint_ns
                          AND own.checkpoint_id = o.parent_checkpoint_id)
        ),
        walk(id, ns, ancestor) AS (
            SELECT id, ns, parent FROM children WHERE ns NOT IN (SELECT ns FROM exits)
            UNION
            SELECT walk.id, walk.ns, p.parent_checkpoint_id FROM walk
            CROSS JOIN LATERAL (
                SELECT parent_checkpoint_id FROM {checkpoints} WHERE thread_id = %(thread)s
                AND checkpoint_ns = walk.ns AND checkpoint_id = walk.ancestor AND run_id = %(run)s LIMIT 1
            ) p
        ),
        relinks(id, ancestor) AS (
            SELECT children.id, exits.ancestor FROM children JOIN exits ON exits.ns = children.ns
            UNION ALL
            SELECT walk.id, walk.ancestor FROM walk WHERE NOT EXISTS (
                SELECT 1 FROM own WHERE own.checkpoint_ns = walk.ns AND own.checkpoint_id = walk.ancestor)
        ),
        relinked AS (
            UPDATE {checkpoints} c SET parent_checkpoint_id = relinks.ancestor FROM relinks
            WHERE c.id = ANY(ARRAY(SELECT id FROM relinks)) AND c.id = relinks.id
        ),
        deleted AS (DELETE FROM {runs} WHERE id IN (SELECT id FROM target) RETURNING id){receipt}
        SELECT (SELECT COUNT(*) FROM own) FROM deleted
    """


def relink_past_run_checkpoints(run: Run) -> None:
    """A checkpoint that stays but whose parent is one of `run`'s (about to go) gets
    the nearest ancestor that stays as its parent, so the thread's history chain keeps
    no dangling link. Usually there is none: one query, no update."""
    own = Checkpoint.objects.filter(run=run)
    orphans = Checkpoint.objects.filter(
        thread_id=run.thread_id, parent_checkpoint_id__in=own.values("checkpoint_id")
    ).exclude(run=run)
    links = set(orphans.values_list("checkpoint_ns", "parent_checkpoint_id").order_by().distinct())
    if not links:
        return
    doomed = {(ns, cid): parent for ns, cid, parent in own.values_list(
        "checkpoint_ns", "checkpoint_id", "parent_checkpoint_id")}
    links = [(ns, parent) for ns, parent in links if (ns, parent) in doomed]  # same namespace only
    if not links:
        return
    orphans.update(parent_checkpoint_id=Case(
        *[When(checkpoint_ns=ns, parent_checkpoint_id=parent,
               then=Value(surviving_ancestor(doomed, ns, parent), output_field=CharField()))
          for ns, parent in links],
        default=F("parent_checkpoint_id"),
    ))


def surviving_ancestor(doomed: dict, ns: str, checkpoint_id: str | None) -> str | None:
    """Walk up from `checkpoint_id` past the checkpoints in `doomed` ({(ns, id): parent})."""
    seen = set()
    while checkpoint_id is not None and (ns, checkpoint_id) in doomed and checkpoint_id not in seen:
        seen.add(checkpoint_id)
        checkpoint_id = doomed[(ns, checkpoint_id)]
    return checkpoint_id
