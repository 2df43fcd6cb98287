"""The agent-thread detail (camelCase, the Cerca shape), built in a constant number
of queries and in time independent of the thread's history: the thread (with its
agent's current system prompt and its latest turns' facts annotated), one page of
messages, one page of turns (newest first, with a cursor), and the sub-threads with
their counts annotated. Token estimates are counters on the thread row (kept by the
services), and rows are read as the columns the response needs, no JSON decoded
that is not sent."""

import uuid

from django.conf import settings
from django.db import connections
from django.db.models import Count, IntegerField, OuterRef, Subquery

from agents.models import AgentVersion

from .models import ACTIVE_RUN_STATUSES, Message, Run, RunStatus, Thread

MAX_MESSAGES = 500
DEFAULT_MESSAGES = 100
# A turn that did not complete: it failed, timed out, or was cancelled (interrupted).
FAILED = (RunStatus.ERROR, RunStatus.TIMEOUT, RunStatus.INTERRUPTED)


class Prepared:
    """A read query compiled once per database and shape, then run with new values.

    Building and compiling a queryset (cloning, resolving the subqueries, aliasing)
    costs more than running these small index reads; the detail's queries only change
    by their values. `build(**placeholders)` makes the queryset with placeholder values
    (distinct from any real one: fixed UUIDs, an int near the top of the range); its SQL, the positions of
    the placeholders among its parameters and Django's converters (JSON, UUIDs, dates on
    each backend) are kept, and each call substitutes the real values, runs the SQL on a
    cursor and converts the rows as the ORM would. The query is exactly the ORM's."""

    PLACEHOLDERS = {"thread": uuid.UUID("5e7d1ace-0000-4000-8000-000000000001"),
                    "agent": uuid.UUID("5e7d1ace-0000-4000-8000-000000000002"),
                    "seq": 2_147_480_001}

    def __init__(self, build, names: tuple, using: str = "default"):
        placeholders = {name: self.PLACEHOLDERS[name] for name in names}
        queryset = build(**placeholders).using(using)
        self.compiler = queryset.query.get_compiler(using)
        self.sql, params = self.compiler.as_sql()
        self.params = list(params)
        connection = connections[using]
        prepared = {name: self.prep(connection, value) for name, value in placeholders.items()}
        self.slots = {name: [i for i, p in enumerate(self.params) if p == value] for name, value in prepared.items()}
        assert all(self.slots.values()), "every placeholder is a parameter"
        select = self.compiler.select
        self.converters = self.compiler.get_converters([column for column, _, _ in select])
        self.using = using

    @staticmethod
    def prep(connection, value):
        if isinstance(value, uuid.UUID):
            return value if connection.features.has_native_uuid_field else value.hex
        return value

    def rows(self, **values) -> list[tuple]:
        connection = connections[self.using]
        params = list(self.params)
        for name, value in values.items():
            for i in self.slots[name]:
                params[i] = self.prep(connection, value)
        with connection.cursor() as cursor:
            cursor.execute(self.sql, params)
            rows = cursor.fetchall()
        if self.converters:  # as the compiler's apply_converters, with this thread's connection
            converted = []
            for row in rows:
                row = list(row)
                for position, (converters, expression) in self.converters.items():
                    value = row[position]
                    for converter in converters:
                        value = converter(value, expression, connection)
                    row[position] = value
                converted.append(tuple(row))
            rows = converted
        return rows

    def dicts(self, **values) -> list[dict]:
        """For a `.values()` queryset: rows as dicts, as `.values()` gives them."""
        query = self.compiler.query
        names = list(query.selected) if query.selected else [
            *query.extra_select, *query.values_select, *query.annotation_select]
        return [dict(zip(names, row)) for row in self.rows(**values)]

    def instances(self, **values) -> list:
        """For a model queryset: instances with their annotations, as the ORM builds them."""
        compiler = self.compiler
        klass_info = compiler.klass_info
        start, end = klass_info["select_fields"][0], klass_info["select_fields"][-1] + 1
        attnames = [column[0].target.attname for column in compiler.select[start:end]]
        made = []
        for row in self.rows(**values):
            obj = klass_info["model"].from_db(self.using, attnames, row[start:end])
            for name, position in compiler.annotation_col_map.items():
                setattr(obj, name, row[position])
            made.append(obj)
        return made


_prepared: dict = {}


def prepared(key, build, names) -> Prepared:
    """The `Prepared` query of this shape (`key`), compiled on first use."""
    query = _prepared.get(key)
    if query is None:
        query = _prepared[key] = Prepared(build, names)
    return query


def load_thread(thread_id, *, agent_id=None) -> Thread | None:
    """The thread as the detail reads it (`with_agent_prompt`), optionally only if it
    belongs to this agent; None if there is no such thread. One query."""
    if agent_id is None:
        query = prepared(("thread",), lambda thread: with_agent_prompt(Thread.objects.filter(pk=thread)),
                         ("thread",))
        found = query.instances(thread=thread_id)
    else:
        query = prepared(("thread", "agent"), lambda thread, agent: with_agent_prompt(
            Thread.objects.filter(pk=thread, agent_id=agent)), ("thread", "agent"))
        found = query.instances(thread=thread_id, agent=agent_id)
    return found[0] if found else None


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
    if limit == 0:
        return [], None, Run.objects.filter(thread=thread).exists()
    if before_seq is None:
        query = prepared(("turns", limit), lambda thread: Run.objects.filter(thread_id=thread).order_by("-seq")
                         .values(*TURN_FIELDS)[: limit + 1], ("thread",))
        rows = query.dicts(thread=thread.pk)
    else:
        query = prepared(("turns-before", limit), lambda thread, seq: Run.objects.filter(
            thread_id=thread, seq__lt=seq).order_by("-seq").values(*TURN_FIELDS)[: limit + 1], ("thread", "seq"))
        rows = query.dicts(thread=thread.pk, seq=before_seq)
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

    def page(**filters):
        return Message.objects.filter(**filters).values("seq", "content", "created_at")

    if after_seq is not None:
        query = prepared(("messages-after", limit), lambda thread, seq: page(thread_id=thread, seq__gt=seq)
                         .order_by("seq")[: limit + 1], ("thread", "seq"))
        rows = query.dicts(thread=thread.pk, seq=after_seq)
        has_more = len(rows) > limit
        rows = rows[:limit]
        return rows, (rows[-1]["seq"] if rows else None), has_more
    if before_seq is not None:
        query = prepared(("messages-before", limit), lambda thread, seq: page(thread_id=thread, seq__lt=seq)
                         .order_by("-seq")[: limit + 1], ("thread", "seq"))
        rows = query.dicts(thread=thread.pk, seq=before_seq)
    else:
        query = prepared(("messages", limit), lambda thread: page(thread_id=thread).order_by("-seq")[: limit + 1],
                         ("thread",))
        rows = query.dicts(thread=thread.pk)
    has_more = len(rows) > limit
    rows = rows[:limit][::-1]
    return rows, (rows[0]["seq"] if rows else None), has_more


def sub_threads(thread: Thread) -> list[dict]:
    """The direct sub-threads, with their message and step counts (an index-only
    count each), as the columns the response needs."""
    def count(model):
        rows = model.objects.filter(thread=OuterRef("pk")).order_by().values("thread").annotate(n=Count("pk"))
        return Subquery(rows.values("n"), output_field=IntegerField())

    query = prepared(("sub-threads",), lambda thread: (
        Thread.objects.filter(parent_thread_id=thread).order_by("created_at")
        .annotate(message_count=count(Message), step_count=count(Run))
        .values("id", "parent_thread_id", "tool_use_id", "message_count", "step_count", "model", "result",
                "schedule_id", "schedule_seq", "created_at", "completed_at")
    ), ("thread",))
    return query.dicts(thread=thread.pk)


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
