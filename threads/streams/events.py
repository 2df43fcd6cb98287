"""What a run publishes on the bus, in LangGraph's event shapes.

A run's stream starts with `metadata` and ends with `end` (after `error` if it
failed); in between, the events of the stream modes the run was created with:

- `values`: the thread's state (`{"messages": [...]}`) when the run starts and ends;
- `updates`: `{node: update}` for what the runtime added;
- `messages-tuple` (SSE event `messages`): `[chunk, metadata]` per token;
- `messages`: `messages/metadata`, then `messages/partial` (the message so far) per
  token, `messages/complete` at the end;
- `events`: `on_chain_start`, `on_chat_model_stream` per token, `on_chain_end`;
- `debug`: `task` and `task_result`; `custom`: whatever the runtime sends.

Every event goes to the run's log and to its thread's log (the thread stream).
"""

import logging

from django.conf import settings
from django.utils import timezone

from .bus import BUS_ERRORS, get_bus, run_log, thread_log

logger = logging.getLogger(__name__)

STREAM_MODES = ("values", "updates", "messages", "messages-tuple", "events", "custom", "debug", "tasks")
DEFAULT_STREAM_MODES = ["values"]
# `paused` / `resumed`: a run waits on an interrupt or approval / continues after it.
# `reset`: a thread's log starts again, for a new thread with the id of a deleted one.
# Always published, never sent to a client: they tell a follower where a wait ends.
INTERNAL_EVENTS = ("paused", "resumed", "reset")
CONTROL_EVENTS = ("metadata", "error", "end", *INTERNAL_EVENTS)


def normalize_modes(stream_mode) -> list[str]:
    if not stream_mode:
        return list(DEFAULT_STREAM_MODES)
    modes = [stream_mode] if isinstance(stream_mode, str) else list(stream_mode)
    return list(dict.fromkeys(modes))


def mode_of(event: str) -> str | None:
    """The stream mode an SSE event belongs to (None: always sent)."""
    if event in CONTROL_EVENTS:
        return None
    if event == "messages":
        return "messages-tuple"
    return event.split("/", 1)[0].split("|", 1)[0]


def wanted(event: str, modes) -> bool:
    mode = mode_of(event)
    return mode is None or mode in modes


def reset_thread_log(thread) -> None:
    """A thread created with a caller's id starts a log of its own: the events of a
    deleted thread that had the id go (a client joining the new thread's stream with
    `Last-Event-ID` read them), and a follower of that deleted thread still connected
    reads the `reset` first and ends there, before anything of the new thread."""
    try:
        get_bus().reset(thread_log(thread.pk), "reset", {"created_at": thread.created_at.isoformat()})
    except BUS_ERRORS as exc:  # never fails the creation; the log then expires on its own
        logger.warning("Starting the stream of thread %s failed: %s", thread.pk, exc)


class RunEvents:
    """The publisher of one run's events (in the executing process)."""

    def __init__(self, *, run_id, thread_id, kwargs: dict | None = None, node: str | None = None):
        self.run_id = str(run_id)
        self.thread_id = str(thread_id)
        # The graph's one node, as `get_graph` and `interrupt_before` name it: the runtime's.
        self.node = node or settings.DEFAULT_RUNTIME
        self.modes = set(normalize_modes((kwargs or {}).get("stream_mode")))
        self.bus = get_bus()
        self._partial: dict[str, str] = {}

    @classmethod
    def of(cls, run) -> "RunEvents":
        return cls(run_id=run.pk, thread_id=run.thread_id, kwargs=run.kwargs, node=run.runtime or None)

    def emit(self, event: str, data) -> None:
        if wanted(event, self.modes):
            self.bus.publish([run_log(self.run_id), thread_log(self.thread_id)], event, data)

    def cancelled(self) -> bool:
        """True once the run was cancelled: a runtime stops producing then."""
        return self.bus.is_cancelled(self.run_id)

    # --- the run's frame -----------------------------------------------------------

    def metadata(self) -> None:
        self.emit("metadata", {"run_id": self.run_id, "thread_id": self.thread_id})

    def started(self, values: dict) -> None:
        self.emit("values", values)
        self.emit("events", self._event("on_chain_start", {"input": values}))
        task = {"id": self.run_id, "name": self.node, "input": values, "triggers": ["start"]}
        self.emit("tasks", task)
        self.emit("debug", {"type": "task", "timestamp": timezone.now().isoformat(), "step": 1, "payload": task})

    def produced(self, new_messages: list[dict]) -> None:
        """The messages a run stored: each answer complete, and the node's update."""
        for message in new_messages:
            if message.get("type") == "ai":
                self.emit("messages/complete", [message])
        if new_messages:
            self.emit("updates", {self.node: {"messages": new_messages}})

    def finished(self, *, values: dict, new_messages: list[dict], error: str | None = None,
                 status: str = "success") -> None:
        self.produced(new_messages)
        result = {"id": self.run_id, "name": self.node, "error": error, "interrupts": [],
                  "result": [["messages", new_messages]] if new_messages else []}
        self.emit("tasks", result)
        self.emit("debug", {"type": "task_result", "timestamp": timezone.now().isoformat(), "step": 1,
                            "payload": result})
        self.emit("values", values)
        self.emit("events", self._event("on_chain_end", {"output": values}))
        if error is not None:
            self.error(error)
        self.end(status)

    def paused(self, *, values: dict, interrupts: list[dict], new_messages: list[dict]) -> None:
        """The run waits on an interrupt or approval (`interrupt_before`/`after`, a tool
        approval): what it produced so far, then the state with `__interrupt__`, as
        LangGraph reports a paused graph. A stream, wait or join following the run ends
        here; `command: {resume}` continues the same run, and a join after that follows
        it to its end."""
        self.produced(new_messages)
        self.emit("tasks", {"id": self.run_id, "name": self.node, "error": None, "interrupts": interrupts,
                            "result": [["messages", new_messages]] if new_messages else []})
        self.emit("updates", {"__interrupt__": interrupts})
        self.emit("values", {**values, "__interrupt__": interrupts})
        self.emit("paused", {"run_id": self.run_id, "status": "interrupted"})

    def resumed(self) -> None:
        self.emit("resumed", {"run_id": self.run_id, "thread_id": self.thread_id})

    def error(self, message: str) -> None:
        self.emit("error", {"error": "RunError", "message": message})

    def end(self, status: str) -> None:
        self.emit("end", {"run_id": self.run_id, "status": status})

    # --- what a runtime produces while it works ---------------------------------------

    def token(self, message_id: str, text: str) -> None:
        """One token of the assistant message `message_id`."""
        chunk = {"type": "AIMessageChunk", "content": text, "id": message_id, "tool_calls": [],
                 "additional_kwargs": {}, "response_metadata": {}}
        meta = {"run_id": self.run_id, "thread_id": self.thread_id, "langgraph_node": self.node,
                "langgraph_step": 1}
        self.emit("messages", [chunk, meta])
        if "messages" in self.modes:
            if message_id not in self._partial:
                self.emit("messages/metadata", {message_id: {"metadata": meta}})
            self._partial[message_id] = self._partial.get(message_id, "") + text
            self.emit("messages/partial", [{**chunk, "type": "ai", "content": self._partial[message_id]}])
        self.emit("events", self._event("on_chat_model_stream", {"chunk": chunk}))

    def custom(self, data) -> None:
        self.emit("custom", data)

    def _event(self, name: str, data: dict) -> dict:
        return {"event": name, "name": self.node, "run_id": self.run_id, "data": data, "tags": [], "metadata": {}}
