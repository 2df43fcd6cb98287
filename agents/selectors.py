"""Reads on agents."""

from django.db.models import JSONField, OuterRef, QuerySet, Subquery

from projects.selectors import visible_to

from .models import Agent, AgentVersion


def agents_for(user) -> QuerySet:
    """The user's agents with their current configuration annotated (one query)."""
    current = AgentVersion.objects.filter(agent=OuterRef("pk"), number=OuterRef("current_version"))
    return visible_to(Agent.objects.all(), user).annotate(
        system_prompt=Subquery(current.values("system_prompt")[:1]),
        model=Subquery(current.values("model")[:1]),
        tools=Subquery(current.values("tools")[:1], output_field=JSONField()),
        mcps=Subquery(current.values("mcps")[:1], output_field=JSONField()),
    )
