"""The agent-thread detail (camelCase, the Cerca shape), built in a constant number
of queries and in time independent of the thread's history: the thread (with its
agent's current system prompt and its latest turns' facts annotated), one page of
messages, one page of turns (newest first, with a cursor), and the sub-threads with
their counts annotated. Token estimates are counters on the thread row (kept by the
services), and rows are read as the columns the response needs, no JSON decoded
that is not sent."""

from django.conf import settings
from django.db.models import Count, IntegerField, OuterRef, Subquery

from agents.models import AgentVersion

from .models import ACTIVE_RUN_STATUSES, Message, Run, RunStatus, Thread

MAX_MESSAGES = 500
DEFAULT_MESSAGES = 100
# A turn that did not complete: it failed, timed out, or was cancelled (interrupted).
FAILED = (RunStatus.ERROR, RunStatus.TIMEOUT, RunStatus.INTERRUPTED)


def iso(value):
    return value.isoformat().replace("+00:00", "Z") if value else None


MAX_TURNS = 500
DEFAULT_TURNS = 50
TURN_FIELDS = ("id", "thread_id", "seq", "start_message_seq", "end_message_seq", "started_at", "completed_at",
               "result", "error", "message", "input_tokens", "output_tokens")


def with_agent_prompt(queryset):
    """Threads annotated with what the detail needs beyond their row, each an index
    probe: the agent's current system prompt, and the latest turn (id, what it was
    asked), the latest finished turn's status and the active turn's model."""
    current = AgentVersion.objects.filter(agent=OuterRef("agent_id"), number=OuterRef("agent__current_version"))
    runs = Run.objects.filter(thread=OuterRef("pk"))
    latest = runs.order_by("-seq")
    finished = runs.exclude(status__in=ACTIVE_RUN_STATUSES).order_by("-seq")
    active = runs.filter(status__in=ACTIVE_RUN_STATUSES).order_by("seq")
    return queryset.defer("metadata").annotate(
        agent_system_prompt=Subquery(current.values("system_prompt")[:1]),
        latest_turn_id=Subquery(latest.values("id")[:1]),
        latest_turn_message=Subquery(latest.values("message")[:1]),
        latest_finished_status=Subquery(finished.values("status")[:1]),
        active_turn_model=Subquery(active.values("model")[:1]),
        active_turn_seq=Subquery(active.values("seq")[:1]),
    )


def turn_shape(run: dict) -> dict:
    return {
        "id": str(run["id"]), "threadId": str(run["thread_id"]), "seq": run["seq"],
        "startMessageSeq": run["start_message_seq"], "endMessageSeq": run["end_message_seq"],
        "startedAt": iso(run["started_at"]), "completedAt": iso(run["completed_at"]),
        "result": run["result"], "error": run["error"], "message": run["message"],
        "tokenUsage": {"inputTokens": run["input_tokens"], "outputTokens": run["output_tokens"]},
    }


def turn_page(thread: Thread, *, before_seq=None, limit=DEFAULT_TURNS):
    """(turns oldest first, cursor, has_more): the newest `limit` turns, or those
    before `before_seq`; the cursor is the seq to pass as beforeTurnSeq."""
    qs = Run.objects.filter(thread=thread)
    if limit == 0:
        return [], None, qs.exists()
    if before_seq is not None:
        qs = qs.filter(seq__lt=before_seq)
    rows = list(qs.order_by("-seq").values(*TURN_FIELDS)[: limit + 1])
    has_more = len(rows) > limit
    rows = rows[:limit][::-1]
    return rows, (rows[0]["seq"] if rows else None), has_more


def last_turn_status(status: str | None) -> str | None:
    if status is None or status in ACTIVE_RUN_STATUSES:
        return None
    return "failed" if status in FAILED else "completed"


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
    qs = Message.objects.filter(thread=thread).values("seq", "content", "created_at")
    if after_seq is not None:
        rows = list(qs.filter(seq__gt=after_seq).order_by("seq")[: limit + 1])
        has_more = len(rows) > limit
        rows = rows[:limit]
        return rows, (rows[-1]["seq"] if rows else None), has_more
    if before_seq is not None:
        qs = qs.filter(seq__lt=before_seq)
    rows = list(qs.order_by("-seq")[: limit + 1])
    has_more = len(rows) > limit
    rows = rows[:limit][::-1]
    return rows, (rows[0]["seq"] if rows else None), has_more


def sub_threads(thread: Thread) -> list[dict]:
    """The direct sub-threads, with their message and step counts (an index-only
    count each), as the columns the response needs."""
    def count(model):
        rows = model.objects.filter(thread=OuterRef("pk")).order_by().values("thread").annotate(n=Count("pk"))
        return Subquery(rows.values("n"), output_field=IntegerField())

    return list(
        Thread.objects.filter(parent_thread=thread).order_by("created_at")
        .annotate(message_count=count(Message), step_count=count(Run))
        .values("id", "parent_thread_id", "tool_use_id", "message_count", "step_count", "model", "result",
                "schedule_id", "schedule_seq", "created_at", "completed_at")
    )


def build_detail(thread: Thread, *, after_seq=None, before_seq=None, limit=DEFAULT_MESSAGES,
                 before_turn_seq=None, turns_limit=DEFAULT_TURNS, debug=False) -> dict:
    """`thread` comes from `with_agent_prompt` (its annotations are read here)."""
    messages, cursor, has_more = message_page(thread, after_seq=after_seq, before_seq=before_seq, limit=limit)
    # Maintained by the services with each message and compaction: never re-summed here.
    tokens = {"raw": thread.message_tokens, "live": thread.message_tokens - thread.compacted_tokens}
    turns, turn_cursor, more_turns = turn_page(thread, before_seq=before_turn_seq, limit=turns_limit)
    latest_turn_id = getattr(thread, "latest_turn_id", None)
    summary_tokens = len((thread.compaction_summary or "").split())
    system_prompt = composed_system_prompt(thread)
    detail = summary(thread) | {
        "message": getattr(thread, "latest_turn_message", None),  # what the latest turn was asked
        "lastTurnStatus": last_turn_status(getattr(thread, "latest_finished_status", None)),
        "activeTurnModel": (thread.active_turn_model or thread.model)
        if getattr(thread, "active_turn_seq", None) is not None else None,
        "tools": list(thread.tools or []),
        "externalToolNamespaces": list(thread.external_tool_namespaces or []),
        "compactionSummary": thread.compaction_summary,
        "compactionThroughSeq": thread.compaction_through_seq,
        "composedSystemPrompt": system_prompt if debug else None,
        "compiledContext": {
            "enabledTools": list(thread.tools or []),
            "systemPrompt": system_prompt,
            "turnId": str(latest_turn_id) if latest_turn_id else None,
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
        "messages": [{"seq": m["seq"], "content": m["content"], "createdAt": iso(m["created_at"])} for m in messages],
        "messageCursor": cursor,
        "hasMoreMessages": has_more,
        "turns": [turn_shape(t) for t in turns],
        "turnCursor": turn_cursor,
        "hasMoreTurns": more_turns,
        "subThreads": [
            {
                "id": str(c["id"]), "parentThreadId": str(c["parent_thread_id"]), "toolUseId": c["tool_use_id"] or None,
                "messageCount": c["message_count"] or 0, "stepCount": c["step_count"] or 0,
                "model": c["model"] or None, "result": c["result"],
                "scheduleId": str(c["schedule_id"]) if c["schedule_id"] else None, "scheduleSeq": c["schedule_seq"],
                "createdAt": iso(c["created_at"]), "completedAt": iso(c["completed_at"]),
            }
            for c in sub_threads(thread)
        ],
    }
    return detail
