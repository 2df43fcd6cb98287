"""Runtimes execute runs. A runtime gets the run and the thread's recent messages
and returns what the run produced; the service (`threads.services.runs`) records it.

Runtimes are looked up by name in `settings.THREAD_RUNTIMES` ({name: dotted path}),
so a real runtime (an LLM client, a LangGraph graph) plugs in without touching the
services. A runtime name is what LangGraph calls a graph id (an assistant's
`graph_id`). The built-in `echo` runtime answers the last user message and keeps
the conversation in a `messages` channel of its checkpoints, in LangGraph's
message format, like any LangGraph chat graph.
"""

import re
import time
import uuid
from dataclasses import dataclass, field
from functools import cache

from django.conf import settings
from django.utils.module_loading import import_string


class RuntimeFailure(Exception):
    """A runtime may raise this (or anything): the run ends in `error` with the text."""


@dataclass
class RuntimeResult:
    """What a run produced.

    status: `success`, `error`, or `awaiting` (paused until an approval is decided:
    `approval` then says what is waiting for a decision).
    """

    status: str = "success"
    messages: list[list[dict]] = field(default_factory=list)  # content blocks per assistant message
    result: str | None = None
    error: str | None = None
    input_tokens: int = 0
    output_tokens: int = 0
    checkpoint: dict | None = None
    approval: dict | None = None  # {"tool_name": ..., "payload": {...}}
    message_ids: list[str] = field(default_factory=list)  # ids announced while streaming, per message
    checkpoint_metadata: dict = field(default_factory=dict)  # merged into the run's checkpoint's metadata


class Runtime:
    """`execute` may stream while it works through `run.events` (a
    `threads.streams.events.RunEvents`: `token`, `custom`, `cancelled`)."""

    name = "base"
    # What `GET /api/assistants/{id}/graph` and `/schemas` show (LangGraph's shapes).
    input_schema: dict | None = None
    state_schema: dict | None = None

    def describe_graph(self) -> dict:
        """The runtime as a one-node graph: __start__ -> <name> -> __end__."""
        nodes = [{"id": "__start__", "type": "schema", "data": "__start__"},
                 {"id": self.name, "type": "runnable", "data": {"id": ["threadkeeper", "runtime", self.name],
                                                                   "name": self.name}},
                 {"id": "__end__", "type": "schema", "data": "__end__"}]
        edges = [{"source": "__start__", "target": self.name}, {"source": self.name, "target": "__end__"}]
        return {"nodes": nodes, "edges": edges}

    def execute(self, *, run, history: list) -> RuntimeResult:
        """`history`: the thread's recent messages, oldest first."""
        raise NotImplementedError

    def resume(self, *, run, approval, approved: bool) -> RuntimeResult:
        """Continue a run that paused on `approval`, once it was decided."""
        if not approved:
            return RuntimeResult(status="success", result=f"Tool call {approval.tool_name} was denied.")
        answer = f"Tool call {approval.tool_name} was approved."
        return RuntimeResult(status="success", messages=[[{"type": "text", "text": answer}]], result=answer,
                             output_tokens=estimate_tokens(answer))


def estimate_tokens(text: str) -> int:
    """A rough token estimate (words and punctuation), the same everywhere."""
    return len(text.split())


MESSAGES_SCHEMA = {
    "type": "object",
    "properties": {"messages": {"type": "array", "items": {
        "type": "object", "required": ["type", "content"],
        "properties": {"type": {"type": "string", "enum": ["human", "ai", "tool", "system"]},
                       "content": {"anyOf": [{"type": "string"}, {"type": "array"}]},
                       "id": {"type": "string"}}}}},
}


class EchoRuntime(Runtime):
    """Answers the last user message with its own text.

    State: the `messages` channel of the thread's latest checkpoint, in LangGraph's
    message format. A run appends to it the thread's messages stored since that
    checkpoint (its metadata's `message_seq`) and the answer, and writes the result
    as the run's checkpoint. The answer's id is the stored assistant message's id.

    Test hooks, so every path of the run lifecycle can be exercised without an LLM:
    a last message starting with `fail:` makes the run fail; one starting with
    `approve:` pauses it on an approval for the tool named after the colon.
    """

    name = "echo"
    input_schema = MESSAGES_SCHEMA
    state_schema = MESSAGES_SCHEMA

    def execute(self, *, run, history: list) -> RuntimeResult:
        from .message_format import make_message, message_text
        from .selectors import state_and_new_messages

        # The run's input messages were stored when it started: they are in the state.
        values, _ = state_and_new_messages(run.thread_id)
        channel = list(values.get("messages") or [])
        last = next((m for m in reversed(channel) if isinstance(m, dict) and m.get("type") == "human"), None)
        text = message_text(last) if last is not None else ""
        if run.input and isinstance(run.input, dict) and not text:
            text = str(run.input.get("message") or run.input.get("text") or "")
        if text.startswith("fail:"):
            raise RuntimeFailure(text[5:].strip() or "the echo runtime was asked to fail")
        if text.startswith("approve:"):
            tool = text[8:].strip() or "tool.call"
            return RuntimeResult(status="awaiting", approval={"tool_name": tool, "payload": {"request": text}},
                                 input_tokens=estimate_tokens(text))
        answer = f"Echo: {text}" if text else "Echo: (nothing to answer)"
        answer_id = stream_tokens(run, answer) or str(uuid.uuid4())
        ai = make_message(type="ai", content=answer, id=answer_id)
        return RuntimeResult(
            status="success",
            messages=[[{"type": "text", "text": answer}]],
            message_ids=[answer_id],
            result=answer,
            input_tokens=sum(estimate_tokens(m.text) for m in history),
            output_tokens=estimate_tokens(answer),
            checkpoint={"v": 1, "channel_values": {**values, "messages": channel + [ai]}},
            checkpoint_metadata={"writes": {self.name: {"messages": [ai]}}},
        )


TOKEN = re.compile(r"\s*\S+")


def stream_tokens(run, text: str) -> str | None:
    """Stream `text` token by token (words with their leading space) on the run's
    events, `ECHO_TOKEN_DELAY` seconds apart; stops early if the run was cancelled;
    then one `custom` event (what a graph's stream writer sends), `{"tokens": n}`.
    Returns the streamed message's id (None without a stream)."""
    events = getattr(run, "events", None)
    if events is None:
        return None
    message_id = str(uuid.uuid4())
    delay, sent = settings.ECHO_TOKEN_DELAY, 0
    for i, token in enumerate(TOKEN.findall(text)):
        if i and delay:
            time.sleep(delay)
            if events.cancelled():
                break
        events.token(message_id, token)
        sent = i + 1
    events.custom({"tokens": sent})
    return message_id


@cache
def get_runtime(name: str) -> Runtime:
    registry = getattr(settings, "THREAD_RUNTIMES", {"echo": "threads.runtime.EchoRuntime"})
    if name not in registry:
        raise KeyError(name)
    return import_string(registry[name])()
