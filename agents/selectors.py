"""Reads on agents."""

from django.db.models import JSONField, OuterRef, QuerySet, Subquery
from django.db.models.fields.json import KeyTransform

from projects.selectors import visible_to

from .models import Agent, AgentTrigger, AgentVersion, TriggerKind


def agents_for(user) -> QuerySet:
    """The user's agents with their current configuration annotated (one query)."""
    current = AgentVersion.objects.filter(agent=OuterRef("pk"), number=OuterRef("current_version"))
    return visible_to(Agent.objects.all(), user).annotate(
        system_prompt=Subquery(current.values("system_prompt")[:1]),
        model=Subquery(current.values("model")[:1]),
        tools=Subquery(current.values("tools")[:1], output_field=JSONField()),
        mcps=Subquery(current.values("mcps")[:1], output_field=JSONField()),
    )


CRON_SORT_FIELDS = {
    "cron_id": "id", "assistant_id": "agent_id", "thread_id": "thread_id", "created_at": "created_at",
    "updated_at": "updated_at", "next_run_date": "next_fire_at", "end_time": "end_time",
}


def crons_for(user, *, assistant_id=None, thread_id=None, enabled=None, metadata: dict | None = None) -> QuerySet:
    """The user's crons (schedule triggers) matching LangGraph's search filters;
    `metadata` matches each key exactly."""
    qs = visible_to(AgentTrigger.objects.filter(kind=TriggerKind.SCHEDULE), user, account_field="agent__account")
    if assistant_id is not None:
        qs = qs.filter(agent_id=assistant_id)
    if thread_id is not None:
        qs = qs.filter(thread_id=thread_id)
    if enabled is not None:
        qs = qs.filter(is_active=enabled)
    for i, (key, value) in enumerate((metadata or {}).items()):
        # A key transform (not `metadata__<key>`): a key is data, never a lookup.
        qs = qs.alias(**{f"_meta{i}": KeyTransform(key, "metadata")}).filter(**{f"_meta{i}": value})
    return qs


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
        "messages_kept": Message.objects.filter(agent_id__in=deletable).count(),
    }
