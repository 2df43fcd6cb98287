"""The account caches: slot counter, thread count, account state (usage).

Every key is the owning account's, never the caller's. The database is the truth:
a missing key is rebuilt from it, and a cache that is down never fails a request —
the error is logged, the caller gets the number from the database, and the keys of
accounts whose update was lost are dropped at the next successful cache call in
this process (every key also expires after `ACCOUNT_CACHE_TIMEOUT`), so the numbers
heal once the cache is back.

Writes call these after commit (`on_commit`): a rolled-back transaction changes no
counter — except the slot a thread creation reserves at once (so the next creator,
waiting on the account's lock, sees it): one whose transaction rolls back later keeps
its slot until the key expires, so a refusal at the limit recounts from the database
first (`recount_slots`).
"""

import logging
import threading
from collections.abc import Callable, Iterable

from django.conf import settings
from django.core.cache import cache
from django.db import transaction

logger = logging.getLogger(__name__)

_lost = set()  # accounts whose cache update failed; their keys are dropped later
_lost_lock = threading.Lock()


def slots_key(account_id) -> str:
    return f"threads:slots:{account_id}"


def thread_count_key(account_id) -> str:
    return f"threads:count:{account_id}"


def account_state_key(account_id) -> str:
    return f"accounts:state:{account_id}"


def _keys(account_id) -> list[str]:
    return [slots_key(account_id), thread_count_key(account_id), account_state_key(account_id)]


def _timeout() -> int:
    return getattr(settings, "ACCOUNT_CACHE_TIMEOUT", 3600)


def _guarded(account_ids: Iterable, action: str, call: Callable, default=None):
    """Run a cache call; on error log it, remember the accounts, return `default`."""
    try:
        _forget_lost()
        return call()
    except Exception as exc:  # a cache outage must never fail the request
        account_ids = [str(a) for a in account_ids]
        logger.error("Cache %s failed for account(s) %s: %s", action, ", ".join(account_ids), exc)
        with _lost_lock:
            _lost.update(account_ids)
        return default


def _forget_lost() -> None:
    """Drop the keys of accounts whose earlier update was lost (they rebuild)."""
    if not _lost:
        return
    with _lost_lock:
        accounts = list(_lost)
    cache.delete_many([key for account_id in accounts for key in _keys(account_id)])
    with _lost_lock:
        _lost.difference_update(accounts)


def _count_threads(account_id) -> int:
    from threads.models import Thread

    return Thread.objects.filter(account_id=account_id).count()


# --- The slot counter ------------------------------------------------------------


def thread_slots_used(account_id) -> int:
    """The account's thread count from the slot counter, rebuilt when missing."""

    def read():
        value = cache.get(slots_key(account_id))
        if value is None:
            value = _count_threads(account_id)
            cache.add(slots_key(account_id), value, _timeout())
        return value

    value = _guarded([account_id], "read of the slot counter", read)
    return _count_threads(account_id) if value is None else value


def _add_slots(account_id, delta: int) -> None:
    """Move the counter by delta; a missing key stays missing (it rebuilds from the
    database), a counter that would go below zero is dropped (it rebuilds too)."""
    key = slots_key(account_id)

    def change():
        try:
            value = cache.incr(key, delta)
        except ValueError:  # missing: the next read counts
            return
        if value < 0:
            cache.delete(key)

    _guarded([account_id], "update of the slot counter", change)


def recount_slots(account_id) -> int:
    """The slot counter rebuilt from the database, and its value. For a refusal at
    the limit: a slot reserved by a creation whose transaction rolled back later
    (outside `create_thread`, which releases its own failures) is never released,
    so the counter alone would refuse threads the account does not have."""
    _guarded([account_id], "reset of the slot counter", lambda: cache.delete(slots_key(account_id)))
    return thread_slots_used(account_id)


def reserve_slot(account_id) -> None:
    """Count a thread being created, at once (inside its transaction, under the
    account's row lock), so the next creator in the account sees it; the caller
    releases it if the creation fails."""
    _add_slots(account_id, 1)


def release_slot(account_id) -> None:
    _add_slots(account_id, -1)


# --- Invalidation, after commit --------------------------------------------------


def threads_added(account_id, count: int = 1) -> None:
    _add_slots(account_id, count)
    invalidate_account(account_id)


def threads_removed(counts: dict) -> None:
    """`counts`: {account_id: how many threads it lost}."""
    for account_id, count in counts.items():
        _add_slots(account_id, -count)
    invalidate_accounts(counts.keys())


def invalidate_account(account_id) -> None:
    invalidate_accounts([account_id])


def invalidate_accounts(account_ids: Iterable) -> None:
    """Drop the thread-count and account-state caches of these accounts."""
    account_ids = list(account_ids)
    keys = [k for a in account_ids for k in (thread_count_key(a), account_state_key(a))]
    if keys:
        _guarded(account_ids, "invalidation", lambda: cache.delete_many(keys))


def on_commit_threads_added(account_id, count: int = 1) -> None:
    transaction.on_commit(lambda: threads_added(account_id, count))


def on_commit_threads_removed(counts: dict) -> None:
    counts = {a: n for a, n in counts.items() if n}
    if counts:
        transaction.on_commit(lambda: threads_removed(counts))


def on_commit_forget_account(account_id) -> None:
    """A deleted account: all its keys go (the slot counter too), after commit."""
    transaction.on_commit(lambda: _guarded([account_id], "removal", lambda: cache.delete_many(_keys(account_id))))


def on_commit_invalidate_accounts(account_ids: Iterable) -> None:
    account_ids = list(account_ids)
    if account_ids:
        transaction.on_commit(lambda: invalidate_accounts(account_ids))


# --- Reads -----------------------------------------------------------------------


def thread_count(account_id) -> int:
    """The runtime thread-count cache."""

    def read():
        value = cache.get(thread_count_key(account_id))
        if value is None:
            value = _count_threads(account_id)
            cache.set(thread_count_key(account_id), value, _timeout())
        return value

    value = _guarded([account_id], "read of the thread count", read)
    return _count_threads(account_id) if value is None else value


def account_state(account) -> dict:
    """What `GET /api/accounts/{id}/usage` serves: counts and limits."""

    def build() -> dict:
        from agents.models import Agent

        return {
            "thread_count": thread_count(account.pk),
            "project_count": account.projects.count(),
            "agent_count": Agent.objects.filter(account_id=account.pk).count(),
            "limits": {"threads": account.effective_thread_limit, "agents": account.effective_agent_limit},
        }

    def read():
        value = cache.get(account_state_key(account.pk))
        if value is None:
            value = build()
            cache.set(account_state_key(account.pk), value, _timeout())
        return value

    value = _guarded([account.pk], "read of the account state", read)
    return build() if value is None else value
