"""Appending messages to a thread."""

from django.db import transaction
from django.db.models import F, Sum

from config.errors import Invalid

from ..models import Message, MessageRole, Thread
from ..runtime import estimate_tokens
from ..vectorstore import schedule_message_indexing
from .threads import activity, ensure_open, ensure_run_of, lock_thread


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
    ensure_run_of(locked, run)
    message = append_messages(thread=locked, role=role, contents=[content], run=run, agent=agent)[0]
    return message


def append_messages(
    *, thread: Thread, role: str, contents: list[list], run=None, agent=None, ids: list | None = None,
) -> list[Message]:
    """Append messages to a thread whose row the caller holds locked (no checks).
    `ids`: the messages' ids when they were announced before (streamed tokens) or
    given by the client (None: a new one)."""
    first = thread.last_message_seq + 1
    messages = [
        Message(
            **({"id": ids[i]} if ids and i < len(ids) and ids[i] else {}),
            thread=thread, seq=first + i, role=role, content=content, run=run, agent=agent,
            token_count=estimate_tokens(" ".join(b.get("text", "") for b in content if isinstance(b, dict))),
        )
        for i, content in enumerate(contents)
    ]
    Message.objects.bulk_create(messages)
    thread.last_message_seq = first + len(messages) - 1
    # The token total moves with the messages (in the same UPDATE), so nobody re-sums it.
    added = sum(m.token_count for m in messages)
    Thread.objects.filter(pk=thread.pk).update(
        last_message_seq=thread.last_message_seq, message_tokens=F("message_tokens") + added, **activity(thread)
    )
    thread.message_tokens += added
    schedule_message_indexing(message_ids=[m.pk for m in messages])
    return messages


@transaction.atomic
def compact_thread(*, thread: Thread, through_seq: int, summary: str) -> Thread:
    """Record that messages up to `through_seq` are folded into `summary`. Their
    token total is summed once here (an index range on (thread, seq)), so the thread
    detail reads the live estimate from the thread row."""
    locked = lock_thread(thread.pk)
    if not isinstance(through_seq, int) or not 0 <= through_seq <= locked.last_message_seq:
        raise Invalid("through_seq must be a message seq of this thread.", errors={"through_seq": ["Out of range."]})
    compacted = (Message.objects.filter(thread=locked, seq__lte=through_seq, rolled_back=False)
                 .aggregate(n=Sum("token_count"))["n"] or 0)
    Thread.objects.filter(pk=locked.pk).update(
        compaction_summary=summary, compaction_through_seq=through_seq, compacted_tokens=compacted
    )
    locked.compaction_summary, locked.compaction_through_seq, locked.compacted_tokens = summary, through_seq, compacted
    return locked
