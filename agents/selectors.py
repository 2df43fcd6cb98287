"""Reads on agents."""

import uuid

from django.conf import settings
from django.db.models import JSONField, OuterRef, Q, QuerySet, Subquery

from config.errors import Invalid, NotFound
from projects.selectors import parse_uuid, visible_to
from threads.selectors import filter_json_containment

from .models import Agent, AgentTrigger, AgentVersion, TriggerKind


def agents_for(user) -> QuerySet:
    """The user's agents with their current configuration annotated (one query)."""
    current = AgentVersion.objects.filter(agent=OuterRef("pk"), number=OuterRef("current_version"))
    return visible_to(Agent.objects.all(), user).annotate(
        system_prompt=Subquery(current.values("system_prompt")[:1]),
        model=Subquery(current.values("model")[:1]),
        tools=Subquery(current.values("tools")[:1], output_field=JSONField()),
        mcps=Subquery(current.values("mcps")[:1], output_field=JSONField()),
        graph_id=Subquery(current.values("graph_id")[:1]),
        config=Subquery(current.values("config")[:1], output_field=JSONField()),
        context=Subquery(current.values("context")[:1], output_field=JSONField()),
    )


# LangGraph names a graph's default assistant uuid5(this namespace, graph id).
NAMESPACE_GRAPH = uuid.UUID("6ba7b821-9dad-11d1-80b4-00c04fd430c8")


def graph_assistant_id(graph_id: str) -> uuid.UUID:
    """The id of a graph's default assistant, as LangGraph derives it."""
    return uuid.uuid5(NAMESPACE_GRAPH, graph_id)


def graph_named(assistant_id) -> str | None:
    """The graph (runtime) an `assistant_id` stands for: a runtime name such as
    `echo`, or the id of that runtime's default assistant; None for anything else."""
    assistant_id = str(assistant_id)
    if assistant_id in settings.THREAD_RUNTIMES:
        return assistant_id
    return next((name for name in settings.THREAD_RUNTIMES if str(graph_assistant_id(name)) == assistant_id.lower()),
                None)


def resolve_assistant(user, assistant_id: str, *, account_id) -> tuple[Agent | None, str | None]:
    """What LangGraph's `assistant_id` names for a run in `account_id`: an agent (a
    UUID: one the user can see in that account, else 404) or a graph, as LangGraph
    lets a graph id (or its default assistant's id) stand for its default assistant —
    a runtime name such as `echo` runs that runtime; another name (`agent` in
    LangGraph's examples) the default runtime. Returns (agent, None) or (None,
    runtime or None)."""
    graph = graph_named(assistant_id)
    if graph is not None:
        return None, graph
    try:
        pk = parse_uuid(assistant_id, name="assistant_id")
    except Invalid:
        return None, None
    agent = visible_to(Agent.objects.filter(account_id=account_id), user).filter(pk=pk).first()
    if agent is None:
        raise NotFound("Assistant not found.")
    return agent, None


CRON_SORT_FIELDS = {
    "cron_id": "id", "assistant_id": "agent_id", "thread_id": "thread_id", "created_at": "created_at",
    "updated_at": "updated_at", "next_run_date": "next_fire_at", "end_time": "end_time",
}


def crons_for(user, *, assistant_id=None, thread_id=None, enabled=None, metadata: dict | None = None) -> QuerySet:
    """The user's crons (schedule triggers) matching LangGraph's search filters;
    `metadata` by containment, as the thread and assistant searches."""
    qs = visible_to(AgentTrigger.objects.filter(kind=TriggerKind.SCHEDULE), user, account_field="agent__account")
    if assistant_id is not None:
        qs = qs.filter(agent_id=assistant_id)
    if thread_id is not None:
        qs = qs.filter(thread_id=thread_id)
    if enabled is not None:
        qs = qs.filter(is_active=enabled)
    return filter_json_containment(qs, "metadata", metadata)


def deletion_refusal(agent: Agent) -> str | None:
    """Why the deletion service refuses this agent (default or system), or None."""
    from config.errors import ServiceError

    from .services import ensure_deletable

    try:
        ensure_deletable(agent)
    except ServiceError as exc:
        return exc.detail
    return None


def agent_deletion_impact(*, agents: QuerySet) -> dict:
    """What deleting these agents does, in aggregate: the protected ones are refused
    (with their reasons); the others go with their versions and triggers, their open
    threads are closed, and their threads, runs and messages stay (history)."""
    from threads.models import Message, Run, Thread, ThreadStatus

    refused = {}
    deletable = []
    for agent in agents.select_related(None).order_by("name").only("pk", "name", "is_default", "metadata").iterator():
        reason = deletion_refusal(agent)
        if reason:
            refused[agent] = reason
        else:
            deletable.append(agent.pk)
    threads = Thread.objects.filter(agent_id__in=deletable)
    return {
        "agents": len(deletable),
        "refused": refused,
        "versions": AgentVersion.objects.filter(agent_id__in=deletable).count(),
        "triggers": AgentTrigger.objects.filter(agent_id__in=deletable).count(),
        "threads_closed": threads.exclude(status=ThreadStatus.CLOSED).count(),
        "threads_kept": threads.count(),
        "runs_kept": Run.objects.filter(agent_id__in=deletable).count(),
        # the messages of the threads kept, and those the agents wrote elsewhere
        "messages_kept": Message.objects.filter(Q(thread_id__in=threads.values("pk")) | Q(agent_id__in=deletable)).count(),
    }
