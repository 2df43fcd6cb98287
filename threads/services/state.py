"""A thread's state as LangGraph sees it: the channel values of its latest
checkpoint. Updating the state writes a new checkpoint on top of the latest (or of a
given one: a fork), as LangGraph's `update_state` does; copying a thread copies its
messages, checkpoints and metadata."""

import uuid
from functools import partial

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from config.errors import Conflict, Invalid, NotFound

from ..message_format import add_messages, normalise
from ..models import (
    Approval, ApprovalStatus, Checkpoint, CheckpointWrite, Message, Run, RunStatus, Thread, ThreadStatus,
)
from ..selectors import channel_values, thread_values
from ..vectorstore import schedule_message_indexing
from .checkpoints import store_checkpoint
from .threads import activity, create_thread, ensure_open, lock_thread


def checkpoint_config(checkpoint: Checkpoint | None, *, thread_id) -> dict:
    """LangGraph's checkpoint reference `{thread_id, checkpoint_ns, checkpoint_id, checkpoint_map}`."""
    return {"thread_id": str(thread_id), "checkpoint_ns": checkpoint.checkpoint_ns if checkpoint else "",
            "checkpoint_id": checkpoint.checkpoint_id if checkpoint else None, "checkpoint_map": {}}


def merge_values(values: dict, update) -> dict:
    """Apply a state update: `messages` through LangGraph's add_messages reducer
    (appended; an id already there is replaced), every other key overwritten."""
    updates = update if isinstance(update, list) else [update]
    merged = dict(values)
    for one in updates:
        if one is None:
            continue
        if not isinstance(one, dict):
            raise Invalid("values must be an object (or a list of objects).", errors={"values": ["An object."]})
        for key, value in one.items():
            if key == "messages":
                incoming = value if isinstance(value, list) else [value]
                try:
                    incoming = [removal(m) if isinstance(m, dict) and m.get("type") == "remove"
                                else normalise(m, new_id=lambda: str(uuid.uuid4())) for m in incoming]
                    merged["messages"] = add_messages(merged.get("messages") or [], incoming)
                except ValueError as exc:
                    raise Invalid(str(exc), errors={"values": [str(exc)]})
            else:
                merged[key] = value
    return merged


def removal(message: dict) -> dict:
    """LangGraph's RemoveMessage, `{"type": "remove", "id"}` (the id is required)."""
    if not isinstance(message.get("id"), str) or not message["id"]:
        raise ValueError("A remove message needs the id of the message to remove.")
    return {"type": "remove", "id": message["id"]}


@transaction.atomic
def update_state(*, thread: Thread, values, as_node: str | None = None, checkpoint_id: str | None = None,
                 checkpoint_ns: str = "", while_busy: bool = False) -> Checkpoint:
    """Write a checkpoint whose values are the base state's with `values` applied.
    The base is the latest checkpoint of the namespace, or `checkpoint_id` (404 if the
    thread has no such checkpoint). A closed thread refuses (409).

    On the current state the base is what a reader sees (the latest checkpoint's values
    and the messages stored since); on an older checkpoint this is a fork: the messages
    stored since the base belong to the branch left behind. Either way the new
    checkpoint counts every stored message as seen (its `message_seq`). `messages`
    follow LangGraph's `add_messages`, removals (`{"type": "remove", "id"}`) included;
    a stored message stays in the thread's messages, only the state leaves it out.

    A thread with a run in progress or queued (`running`) refuses (409), as LangGraph's
    busy thread does: the run writes its result over the state it started from, so an
    update now would be lost. A thread paused on an interrupt takes updates (that is
    how its state is edited before it continues). As LangGraph's `as_node`, an update
    as the node the paused run waits on is that node's output: the graph is past it,
    at its end, so the run ends (`runs.end_runs_paused_at`); as `__start__`/`__input__`
    (or none) the run still waits before it. `while_busy`: for the run itself,
    forking the state where it starts."""
    if as_node is not None and as_node not in set(settings.THREAD_RUNTIMES) | {"__start__", "__input__"}:
        raise Invalid(f"Node '{as_node}' does not exist in the graph.",
                      errors={"as_node": [f"One of the graph's nodes: {', '.join(sorted(settings.THREAD_RUNTIMES))}."]})
    locked = lock_thread(thread.pk)
    ensure_open(locked)
    if locked.status == ThreadStatus.RUNNING and not while_busy:
        raise Conflict("The thread has a run in progress or queued; update its state once the run has ended "
                       "(or cancel it).")
    in_ns = Checkpoint.objects.newest_first(thread=locked, checkpoint_ns=checkpoint_ns)
    latest = in_ns.first()
    base = in_ns.filter(checkpoint_id=checkpoint_id).first() if checkpoint_id else latest
    if checkpoint_id and base is None:
        raise NotFound(f"Checkpoint '{checkpoint_id}' not found in this thread.")
    # On the current state: the state a reader sees (the checkpoint's channel and the
    # messages stored since), so an update can replace or remove any of its messages.
    current = base == latest and not checkpoint_ns
    new_values = merge_values(thread_values(locked.pk) if current else channel_values(base), values)
    base_meta = base.metadata if base is not None and isinstance(base.metadata, dict) else {}
    seen = base_meta.get("message_seq", 0) if base == latest and not current else locked.last_message_seq
    step = base_meta.get("step")
    new_id = str(uuid.uuid4())
    Thread.objects.filter(pk=locked.pk).update(**activity(locked))
    checkpoint = store_checkpoint(
        thread=locked, checkpoint_ns=checkpoint_ns, checkpoint_id=new_id,
        parent_checkpoint_id=base.checkpoint_id if base is not None else None,
        checkpoint={"v": 1, "id": new_id, "ts": timezone.now().isoformat(), "channel_values": new_values},
        metadata={"source": "update", "step": step + 1 if isinstance(step, int) else 0,
                  "writes": {as_node or "__input__": values}, "parents": {},
                  "message_seq": seen},
        run=None, writes=[],
    )
    if as_node in settings.THREAD_RUNTIMES and locked.status == ThreadStatus.AWAITING:
        from .runs import end_runs_paused_at

        end_runs_paused_at(locked, node=as_node)  # the update stands for the node the run waits on
    return checkpoint


def apply_supersteps(*, thread: Thread, supersteps: list) -> None:
    """LangGraph's `supersteps` on thread creation: each update of each superstep
    applied in order, one checkpoint each."""
    for superstep in supersteps:
        updates = superstep.get("updates") if isinstance(superstep, dict) else None
        if not isinstance(updates, list):
            raise Invalid("Each superstep needs a list of updates.", errors={"supersteps": ["{updates: [...]}."]})
        for update in updates:
            if not isinstance(update, dict):
                raise Invalid("Each update is an object.", errors={"supersteps": ["{values, as_node}."]})
            command = update.get("command")
            values = update.get("values")
            if isinstance(command, dict) and command.get("update") is not None:
                values = command["update"]
            update_state(thread=thread, values=values, as_node=update.get("as_node"))


@transaction.atomic
def copy_thread(*, thread: Thread, created_by=None) -> Thread:
    """A new thread in the same project with the same metadata, messages (same seq)
    and checkpoints (with their pending writes). Takes a thread slot like any creation.

    Runs and sub-threads are not copied, and the copied checkpoints belong to no run,
    except for a run paused on an interrupt (a breakpoint or a tool approval): as
    LangGraph copies a paused graph's checkpoints, the copy is paused the same way —
    the run is copied (a new id; `running`, its messages and checkpoints its own, no
    `webhook`) with its pending approvals, and the copy is `awaiting`. Either thread
    can then be resumed, or given new input, without touching the other."""
    copy = create_thread(
        project=thread.project, created_by=created_by, agent=thread.agent, title=thread.title,
        metadata=thread.metadata, instructions=thread.instructions, model=thread.model, tools=thread.tools,
        ttl_minutes=thread.ttl_minutes, ttl_strategy=thread.ttl_strategy,
    )
    source = lock_thread(thread.pk)  # after the project's lock, as every creation orders them
    runs = copy_paused_runs(source=source, copy=copy)
    messages = Message.objects.bulk_create(
        [Message(thread=copy, seq=m.seq, role=m.role, content=m.content, agent_id=m.agent_id,
                 token_count=m.token_count, rolled_back=m.rolled_back, run_id=runs.get(m.run_id))
         for m in source.messages.order_by("seq").iterator(chunk_size=2000)],
        batch_size=1000,
    )
    schedule_message_indexing(message_ids=[m.pk for m in messages])  # the copy is searchable too
    old = list(Checkpoint.objects.filter(thread=source).order_by("id"))
    new = Checkpoint.objects.bulk_create(
        [Checkpoint(thread=copy, checkpoint_ns=c.checkpoint_ns, checkpoint_id=c.checkpoint_id,
                    parent_checkpoint_id=c.parent_checkpoint_id, checkpoint=c.checkpoint, metadata=c.metadata,
                    run_id=runs.get(c.run_id))
         for c in old],
        batch_size=1000,
    )
    new_pk = {o.pk: n.pk for o, n in zip(old, new)}
    CheckpointWrite.objects.bulk_create(
        [CheckpointWrite(checkpoint_id=new_pk[w.checkpoint_id], thread_id=copy.pk, run_id=runs.get(w.run_id),
                         task_id=w.task_id, idx=w.idx, channel=w.channel, type=w.type, value=w.value,
                         task_path=w.task_path)
         for w in CheckpointWrite.objects.filter(thread_id=source.pk).iterator(chunk_size=2000)
         if w.checkpoint_id in new_pk],
        batch_size=1000,
    )
    paused = {"status": ThreadStatus.AWAITING, "last_run_seq": 1} if runs else {}
    Thread.objects.filter(pk=copy.pk).update(last_message_seq=source.last_message_seq,
                                             message_tokens=source.message_tokens, **paused)
    copy.refresh_from_db()
    return copy


def copy_paused_runs(*, source: Thread, copy: Thread) -> dict:
    """The run of `source` paused on an interrupt (at most one: one `running` run per
    thread), copied to `copy` as its run 1 with its pending approvals; {old id: new id}.
    The copy's run sends no webhook: its creator asked for one about their own run."""
    paused = Run.objects.filter(thread=source, status=RunStatus.RUNNING,
                                approvals__status=ApprovalStatus.PENDING).distinct().first()
    if paused is None:
        return {}
    run = Run.objects.create(
        thread=copy, agent_id=paused.agent_id, seq=1, status=RunStatus.RUNNING, runtime=paused.runtime,
        model=paused.model, input=paused.input, metadata=paused.metadata, message=paused.message,
        multitask_strategy=paused.multitask_strategy,
        kwargs={k: v for k, v in (paused.kwargs or {}).items() if k not in ("webhook", "temporary")},
        start_message_seq=paused.start_message_seq, input_tokens=paused.input_tokens,
        output_tokens=paused.output_tokens, started_at=paused.started_at,
    )
    approvals = Approval.objects.bulk_create([
        Approval(thread=copy, run=run, tool_name=a.tool_name, payload=a.payload, expires_at=a.expires_at)
        for a in paused.approvals.filter(status=ApprovalStatus.PENDING).order_by("created_at")
    ])
    # The copy's run stream says it is paused, as the original's does: a join (or a
    # stream joined) on it ends at the interrupt instead of waiting for ever.
    from .runs import pause_run_stream

    transaction.on_commit(partial(pause_run_stream, run, [], approvals[0]), robust=True)
    return {paused.pk: run.pk}
