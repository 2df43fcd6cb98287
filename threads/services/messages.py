"""Appending messages to a thread."""

from django.db import transaction

from config.errors import Invalid

from ..models import Message, MessageRole, Thread
from ..runtime import estimate_tokens
from ..vectorstore import schedule_message_indexing
from .threads import activity, ensure_open, lock_thread


def validate_content(content) -> list[dict]:
    if not isinstance(content, list) or not content:
        raise Invalid("content must be a non-empty list of blocks.", errors={"content": ["A non-empty list."]})
    for block in content:
        if not isinstance(block, dict) or not isinstance(block.get("type"), str):
            raise Invalid("Each content block must be an object with a 'type'.", errors={"content": ["Bad block."]})
        if block["type"] == "text" and not isinstance(block.get("text"), str):
            raise Invalid("A text block needs a string 'text'.", errors={"content": ["Text block without text."]})
    return content


@transaction.atomic
def post_message(*, thread: Thread, role: str, content: list, run=None, agent=None) -> Message:
    """Append a message; `seq` is the thread's next, assigned under its row lock."""
    if role not in MessageRole.values:
        raise Invalid(f"Unknown role '{role}'.", errors={"role": [f"One of {', '.join(MessageRole.values)}."]})
    validate_content(content)
    locked = lock_thread(thread.pk)
    ensure_open(locked)
    if run is not None and run.thread_id != locked.pk:
        raise Invalid("The run belongs to another thread.", errors={"run_id": ["Not a run of this thread."]})
    message = append_messages(thread=locked, role=role, contents=[content], run=run, agent=agent)[0]
    return message


def append_messages(
    *, thread: Thread, role: str, contents: list[list], run=None, agent=None, ids: list | None = None,
) -> list[Message]:
    """Append messages to a thread whose row the caller holds locked (no checks).
    `ids`: the messages' ids when they were announced before (streamed tokens)."""
    first = thread.last_message_seq + 1
    messages = [
        Message(
            **({"id": ids[i]} if ids and i < len(ids) else {}),
            thread=thread, seq=first + i, role=role, content=content, run=run, agent=agent,
            token_count=estimate_tokens(" ".join(b.get("text", "") for b in content if isinstance(b, dict))),
        )
        for i, content in enumerate(contents)
    ]
    Message.objects.bulk_create(messages)
    thread.last_message_seq = first + len(messages) - 1
    Thread.objects.filter(pk=thread.pk).update(last_message_seq=thread.last_message_seq, **activity(thread))
    schedule_message_indexing(message_ids=[m.pk for m in messages])
    return messages
