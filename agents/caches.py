"""Agent caches: the resolved configuration of an agent's current version, and the
account's agent count (for the agent limit). The database is the truth; a cache that
is down is logged and skipped, never fails a request.

The config key carries the version number, so a reader that raced an update can only
ever fill the old version's key — which nobody reads once the agent moved on.
"""

import logging

from django.core.cache import cache
from django.db import transaction

logger = logging.getLogger(__name__)
TIMEOUT = 3600


def config_key(agent_id, version: int) -> str:
    return f"agents:config:{agent_id}:v{version}"


def count_key(account_id) -> str:
    return f"agents:count:{account_id}"


def _get(key):
    try:
        return cache.get(key)
    except Exception as exc:
        logger.error("Agent cache read of %s failed: %s", key, exc)
        return None


def _set(key, value) -> None:
    try:
        cache.set(key, value, TIMEOUT)
    except Exception as exc:
        logger.error("Agent cache write of %s failed: %s", key, exc)


def _delete(keys: list[str]) -> None:
    try:
        cache.delete_many(keys)
    except Exception as exc:
        logger.error("Agent cache invalidation of %s failed: %s", keys, exc)


def agent_config(agent) -> dict | None:
    """The current version's configuration, read through the cache."""
    from .models import AgentVersion

    key = config_key(agent.pk, agent.current_version)
    value = _get(key)
    if value is None:
        version = AgentVersion.objects.filter(agent_id=agent.pk, number=agent.current_version).first()
        if version is None:
            return None
        value = {
            "agent_id": str(agent.pk), "version": version.number, "system_prompt": version.system_prompt,
            "model": version.model, "tools": version.tools, "mcps": version.mcps,
            "graph_id": version.graph_id, "config": version.config, "context": version.context,
        }
        _set(key, value)
    return value


def agent_count(account_id) -> int:
    from .models import Agent

    value = _get(count_key(account_id))
    if value is None:
        value = Agent.objects.filter(account_id=account_id).count()
        _set(count_key(account_id), value)
    return value


def drop_agent_count(account_id) -> None:
    """Drop the count now, under the account's row lock: the next creation, which
    waits for that lock, recounts from the database instead of reading the count this
    one started from (the after-commit invalidation may run a moment too late)."""
    _delete([count_key(account_id)])


def on_commit_invalidate(*, account_id, agent_id=None, versions=()) -> None:
    """After commit: drop the agent-count key and (if given) the agent's config keys,
    and the account-state (usage) cache, which counts agents."""
    from projects import caches as account_caches

    keys = [count_key(account_id)] + [config_key(agent_id, v) for v in versions if agent_id]
    transaction.on_commit(lambda: _delete(keys))
    account_caches.on_commit_invalidate_accounts([account_id])


def on_commit_forget_agents(*, account_id, agents: list) -> None:
    """A deleted account: after commit, drop its agent count and the config keys of
    its agents' current versions (`agents`: (agent id, current version) pairs; an
    earlier version's key was dropped when the agent moved on)."""
    keys = [count_key(account_id)] + [config_key(agent_id, version) for agent_id, version in agents]
    transaction.on_commit(lambda: _delete(keys))
