"""The agent-thread detail (camelCase, the Cerca shape), built with a constant number
of queries whatever the size of the thread: the thread (with its agent's current
system prompt annotated), one page of messages, one aggregate for the token
estimates, the turns, and the sub-threads with their counts annotated."""

from django.conf import settings
from django.db.models import Count, IntegerField, OuterRef, Subquery

from agents.models import AgentVersion

from .models import Message, Run, RunStatus, Thread

MAX_MESSAGES = 500
DEFAULT_MESSAGES = 100
# A turn that did not complete: it failed, timed out, or was cancelled (interrupted).
FAILED = (RunStatus.ERROR, RunStatus.TIMEOUT, RunStatus.INTERRUPTED)


def iso(value):
    return value.isoformat().replace("+00:00", "Z") if value else None


def with_agent_prompt(queryset):
    current = AgentVersion.objects.filter(agent=OuterRef("agent_id"), number=OuterRef("agent__current_version"))
    return queryset.select_related("agent").annotate(agent_system_prompt=Subquery(current.values("system_prompt")[:1]))


def turn_shape(run: Run) -> dict:
    return {
        "id": str(run.pk), "threadId": str(run.thread_id), "seq": run.seq,
        "startMessageSeq": run.start_message_seq, "endMessageSeq": run.end_message_seq,
        "startedAt": iso(run.started_at), "completedAt": iso(run.completed_at),
        "result": run.result, "error": run.error, "message": run.message,
        "tokenUsage": {"inputTokens": run.input_tokens, "outputTokens": run.output_tokens},
    }


def last_turn_status(run: Run | None) -> str | None:
    if run is None or run.status in (RunStatus.PENDING, RunStatus.RUNNING):
        return None
    return "failed" if run.status in FAILED else "completed"


def composed_system_prompt(thread: Thread) -> str | None:
    parts = [p for p in (getattr(thread, "agent_system_prompt", None), thread.instructions) if p]
    return "\n\n".join(parts) if parts else None


def summary(thread: Thread) -> dict:
    """The list shape: the detail's scalar fields."""
    return {
        "id": str(thread.pk), "agentId": str(thread.agent_id) if thread.agent_id else None, "status": thread.status,
        "depth": thread.depth, "parentThreadId": str(thread.parent_thread_id) if thread.parent_thread_id else None,
        "scheduleId": str(thread.schedule_id) if thread.schedule_id else None, "scheduleSeq": thread.schedule_seq,
        "instructions": thread.instructions, "model": thread.model, "result": thread.result, "error": thread.error,
        "createdAt": iso(thread.created_at), "updatedAt": iso(thread.updated_at), "completedAt": iso(thread.completed_at),
    }


def message_page(thread: Thread, *, after_seq=None, before_seq=None, limit=DEFAULT_MESSAGES):
    """(messages oldest first, cursor, has_more). Default: the newest page; the cursor
    is the seq to pass as beforeSeq (or, paging forward, as afterSeq)."""
    if limit == 0:
        return [], None, Message.objects.filter(thread=thread).exists()
    qs = Message.objects.filter(thread=thread).only("seq", "content", "created_at")
    if after_seq is not None:
        rows = list(qs.filter(seq__gt=after_seq).order_by("seq")[: limit + 1])
        has_more = len(rows) > limit
        rows = rows[:limit]
        return rows, (rows[-1].seq if rows else None), has_more
    if before_seq is not None:
        qs = qs.filter(seq__lt=before_seq)
    rows = list(qs.order_by("-seq")[: limit + 1])
    has_more = len(rows) > limit
    rows = rows[:limit][::-1]
    return rows, (rows[0].seq if rows else None), has_more


def build_detail(thread: Thread, *, after_seq=None, before_seq=None, limit=DEFAULT_MESSAGES, debug=False) -> dict:
    messages, cursor, has_more = message_page(thread, after_seq=after_seq, before_seq=before_seq, limit=limit)
    # Maintained by the services with each message and compaction: never re-summed here.
    tokens = {"raw": thread.message_tokens, "live": thread.message_tokens - thread.compacted_tokens}
    turns = list(Run.objects.filter(thread=thread).order_by("seq"))
    active = next((t for t in turns if t.status in (RunStatus.PENDING, RunStatus.RUNNING)), None)
    finished = [t for t in turns if t.status not in (RunStatus.PENDING, RunStatus.RUNNING)]
    children = Thread.objects.filter(parent_thread=thread).order_by("created_at").annotate(
        message_count=Subquery(
            Message.objects.filter(thread=OuterRef("pk")).order_by().values("thread").annotate(n=Count("pk")).values("n"),
            output_field=IntegerField(),
        ),
        step_count=Subquery(
            Run.objects.filter(thread=OuterRef("pk")).order_by().values("thread").annotate(n=Count("pk")).values("n"),
            output_field=IntegerField(),
        ),
    )
    summary_tokens = len((thread.compaction_summary or "").split())
    system_prompt = composed_system_prompt(thread)
    detail = summary(thread) | {
        "message": turns[-1].message if turns else None,  # what the latest turn was asked
        "lastTurnStatus": last_turn_status(finished[-1] if finished else None),
        "activeTurnModel": (active.model or thread.model) if active else None,
        "tools": list(thread.tools or []),
        "externalToolNamespaces": list(thread.external_tool_namespaces or []),
        "compactionSummary": thread.compaction_summary,
        "compactionThroughSeq": thread.compaction_through_seq,
        "composedSystemPrompt": system_prompt if debug else None,
        "compiledContext": {
            "enabledTools": list(thread.tools or []),
            "systemPrompt": system_prompt,
            "turnId": str(turns[-1].pk) if turns else None,
        } if debug else None,
        "contextWindow": {
            "compacted": thread.compaction_through_seq is not None,
            "compactionThroughSeq": thread.compaction_through_seq,
            "contextWindowTokens": settings.MODEL_REGISTRY.get(thread.model, {}).get(
                "context_window", settings.DEFAULT_CONTEXT_WINDOW),
            "llmEstimatedTokens": tokens["live"] + summary_tokens,
            "model": thread.model or None,
            "rawEstimatedTokens": tokens["raw"],
        },
        "messages": [{"seq": m.seq, "content": m.content, "createdAt": iso(m.created_at)} for m in messages],
        "messageCursor": cursor,
        "hasMoreMessages": has_more,
        "turns": [turn_shape(t) for t in turns],
        "subThreads": [
            {
                "id": str(c.pk), "parentThreadId": str(c.parent_thread_id), "toolUseId": c.tool_use_id or None,
                "messageCount": c.message_count or 0, "stepCount": c.step_count or 0, "model": c.model or None,
                "result": c.result, "scheduleId": str(c.schedule_id) if c.schedule_id else None,
                "scheduleSeq": c.schedule_seq, "createdAt": iso(c.created_at), "completedAt": iso(c.completed_at),
            }
            for c in children
        ],
    }
    return detail
