"""Runtimes execute runs. A runtime gets the run and the thread's recent messages
and returns what the run produced; the service (`threads.services.runs`) records it.

Runtimes are looked up by name in `settings.THREAD_RUNTIMES` ({name: dotted path}),
so a real runtime (an LLM client, a LangGraph graph) plugs in without touching the
services. The built-in `echo` runtime answers the last user message.
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


class Runtime:
    """`execute` may stream while it works through `run.events` (a
    `threads.streams.events.RunEvents`: `token`, `custom`, `cancelled`)."""

    name = "base"

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


class EchoRuntime(Runtime):
    """Answers the last user message with its own text.

    Test hooks, so every path of the run lifecycle can be exercised without an LLM:
    a last message starting with `fail:` makes the run fail; one starting with
    `approve:` pauses it on an approval for the tool named after the colon.
    """

    name = "echo"

    def execute(self, *, run, history: list) -> RuntimeResult:
        last = next((m for m in reversed(history) if m.role == "user"), None)
        text = input_message_text(run.input) or (last.text if last is not None else "")
        if run.input and isinstance(run.input, dict) and not text:
            text = str(run.input.get("message") or run.input.get("text") or "")
        if text.startswith("fail:"):
            raise RuntimeFailure(text[5:].strip() or "the echo runtime was asked to fail")
        if text.startswith("approve:"):
            tool = text[8:].strip() or "tool.call"
            return RuntimeResult(status="awaiting", approval={"tool_name": tool, "payload": {"request": text}},
                                 input_tokens=estimate_tokens(text))
        answer = f"Echo: {text}" if text else "Echo: (nothing to answer)"
        message_id = stream_tokens(run, answer)
        return RuntimeResult(
            status="success",
            messages=[[{"type": "text", "text": answer}]],
            message_ids=[message_id] if message_id else [],
            result=answer,
            input_tokens=sum(estimate_tokens(m.text) for m in history),
            output_tokens=estimate_tokens(answer),
            checkpoint={"v": 1, "channel_values": {"last_answer": answer}},
        )


def input_message_text(input) -> str:
    """The text of the last message of a LangGraph input (`{"messages": [...]}`)."""
    messages = input.get("messages") if isinstance(input, dict) else None
    if not isinstance(messages, list) or not messages or not isinstance(messages[-1], dict):
        return ""
    content = messages[-1].get("content")
    if isinstance(content, list):
        return "\n".join(b.get("text", "") for b in content if isinstance(b, dict))
    return content if isinstance(content, str) else ""


TOKEN = re.compile(r"\s*\S+")


def stream_tokens(run, text: str) -> str | None:
    """Stream `text` token by token (words with their leading space) on the run's
    events, `ECHO_TOKEN_DELAY` seconds apart; stops early if the run was cancelled.
    Returns the streamed message's id (None without a stream)."""
    events = getattr(run, "events", None)
    if events is None:
        return None
    message_id = str(uuid.uuid4())
    delay = settings.ECHO_TOKEN_DELAY
    for i, token in enumerate(TOKEN.findall(text)):
        if i and delay:
            time.sleep(delay)
            if events.cancelled():
                break
        events.token(message_id, token)
    return message_id


@cache
def get_runtime(name: str) -> Runtime:
    registry = getattr(settings, "THREAD_RUNTIMES", {"echo": "threads.runtime.EchoRuntime"})
    if name not in registry:
        raise KeyError(name)
    return import_string(registry[name])()
