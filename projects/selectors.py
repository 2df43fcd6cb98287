"""Reads for tenancy: which accounts a user belongs to, and with which role.

Every object an API returns is looked up through `visible_to`/`get_visible` so that
another account's objects answer 404, never 403.
"""

import uuid

from django.db import connection
from django.db.models import QuerySet

from config.errors import Forbidden, Invalid, NotFound

from .models import WRITE_ROLES, Account, Membership, Project, Role


def parse_uuid(value, *, name: str = "id") -> uuid.UUID:
    """A malformed id is a 422, not a 404 or a 500."""
    if isinstance(value, uuid.UUID):
        return value
    try:
        return uuid.UUID(str(value))
    except (ValueError, TypeError, AttributeError):
        shown = str(value) if len(str(value)) <= 80 else f"{str(value)[:77]}..."  # never echo a huge value back
        raise Invalid(f"'{shown}' is not a valid UUID for {name}.", errors={name: ["Must be a valid UUID."]})


def account_ids_for(user) -> QuerySet:
    """Ids of the accounts the user is a member of (a subquery, not a list)."""
    return Membership.objects.filter(user_id=user.pk).values("account_id")


def writable_account_ids_for(user) -> QuerySet:
    return Membership.objects.filter(user_id=user.pk, role__in=WRITE_ROLES).values("account_id")


def accounts_for(user) -> QuerySet:
    return Account.objects.filter(id__in=account_ids_for(user))


def role_in(user, account_id) -> str | None:
    return Membership.objects.filter(user_id=user.pk, account_id=account_id).values_list("role", flat=True).first()


def visible_to(queryset: QuerySet, user, *, account_field: str = "account") -> QuerySet:
    """Restrict any account-owned queryset to the accounts the user belongs to."""
    return queryset.filter(**{f"{account_field}__in": account_ids_for(user)})


def get_visible(queryset: QuerySet, user, pk, *, name: str = "id", account_field: str = "account"):
    pk = parse_uuid(pk, name=name)
    obj = visible_to(queryset, user, account_field=account_field).filter(pk=pk).first()
    if obj is None:
        raise NotFound(f"{queryset.model._meta.verbose_name.capitalize()} not found.")
    return obj


def can_write(user, obj, *, role: str | None = None) -> bool:
    """Write access: a write role (owner, admin, member) in the owning account; and a
    thread's own creator, whatever their role now (a creator turned viewer keeps
    writing their threads). The exception is for threads only: an agent's or any
    other object's creator needs a write role like everyone."""
    if (obj._meta.label_lower == "threads.thread" and obj.created_by_id is not None
            and obj.created_by_id == user.pk):
        return True
    role = role if role is not None else role_in(user, obj.account_id)
    return role in WRITE_ROLES


def ensure_can_write(user, obj) -> None:
    if not can_write(user, obj):
        raise Forbidden("You have read-only access to this account.")


def ensure_account_writable(user, account_id) -> Account:
    """For creating objects in an account: 404 if not a member, 403 if read-only."""
    account_id = parse_uuid(account_id, name="account_id")
    role = role_in(user, account_id)
    if role is None:
        raise NotFound("Account not found.")
    if role not in WRITE_ROLES:
        raise Forbidden("You have read-only access to this account.")
    return Account.objects.get(pk=account_id)


ACCOUNT_HEADER = "X-Account-Id"


def account_for_new_object(user, account_id=None) -> Account:
    """The account a thread created without a project (or an assistant) goes to.

    The rule: the account named by the `X-Account-Id` header (`account_id`) when
    given — 404 if the caller is not a member, 403 if read-only; otherwise the
    caller's only account with write access. With none, a 403; with several, a 422
    asking for the header.
    """
    if account_id:
        return ensure_account_writable(user, account_id)
    writable = list(Membership.objects.filter(user_id=user.pk, role__in=WRITE_ROLES)
                    .values_list("account_id", flat=True)[:2])
    if not writable:
        raise Forbidden("You have no account with write access to create this in.")
    if len(writable) > 1:
        raise Invalid(
            f"You can write to several accounts: name one with the {ACCOUNT_HEADER} header.",
            errors={"account_id": [f"Ambiguous: send the {ACCOUNT_HEADER} header."]},
        )
    return Account.objects.get(pk=writable[0])


# --- An account keeps at least one owner ------------------------------------------


def accounts_left_without_owner(*, leaving) -> list[tuple[Account, list[str]]]:
    """The rule that no account is left with no owner (no one who can reach it).

    `leaving`: memberships (a queryset, or their ids) about to stop being owners —
    deleted, demoted, moved to another account, or going with their user. Returns the
    accounts that would then have no owner, by name, each with the usernames of its
    owners among `leaving`; an empty list when the change is allowed. An account that
    has no owner already is not reported (the change does not cause it).

    Called inside a transaction on PostgreSQL, it first locks the accounts' rows
    (`FOR NO KEY UPDATE`, in id order, as their deletion does) and reads the owners
    after: of two requests each removing one of an account's two owners, the second
    waits for the first to commit, then sees one owner left and is refused.
    """
    ids = set(leaving.values_list("pk", flat=True) if isinstance(leaving, QuerySet) else leaving)
    if not ids:
        return []
    account_ids = sorted(set(Membership.objects.filter(pk__in=ids).values_list("account_id", flat=True)))
    if connection.in_atomic_block:  # a no-op on SQLite, where a write locks the database
        list(Account.objects.select_for_update(no_key=True).filter(pk__in=account_ids).order_by("pk")
             .values_list("pk", flat=True))
    going, staying = {}, set()
    for account_id, pk, username in (Membership.objects.filter(account_id__in=account_ids, role=Role.OWNER)
                                     .order_by("user__username").values_list("account_id", "pk", "user__username")):
        if pk in ids:
            going.setdefault(account_id, []).append(username)
        else:
            staying.add(account_id)
    accounts = Account.objects.in_bulk([account_id for account_id in going if account_id not in staying])
    return sorted(((account, going[account.pk]) for account in accounts.values()), key=lambda pair: pair[0].name)


def last_owner_reason(account: Account, usernames: list[str]) -> str:
    """Why a change is refused, naming every owner it would remove."""
    names = usernames[0] if len(usernames) == 1 else f"{', '.join(usernames[:-1])} and {usernames[-1]}"
    state = "is its last owner" if len(usernames) == 1 else "are its only owners"
    return f"Account “{account}”: {names} {state} — add another owner, or delete the account first."


def last_owner_refusals(*, leaving) -> list[str]:
    """`accounts_left_without_owner` as reasons, one per account (none: allowed)."""
    return [last_owner_reason(account, names) for account, names in accounts_left_without_owner(leaving=leaving)]


def projects_for(user) -> QuerySet:
    return visible_to(Project.objects.all(), user)


# --- What deleting projects or accounts would remove (the admin's confirmation) ---


def _threads_impact(threads: QuerySet) -> dict:
    from threads.selectors import deletion_impact

    impact = deletion_impact(thread_ids_queryset=threads)
    return {key: impact[key] for key in ("threads", "messages", "runs", "checkpoints")}


def project_deletion_impact(*, projects: QuerySet) -> dict:
    """Aggregate counts, no row listed: the projects, their threads (with
    sub-threads), messages, runs, checkpoints, live sandboxes and embeddings (None
    when the vector store cannot count)."""
    from sandboxes.models import Sandbox
    from sandboxes.services import LIVE_STATES
    from threads.models import Thread
    from threads.vectorstore import get_vector_store

    ids = projects.order_by().values("pk")
    return {
        "projects": projects.count(),
        **_threads_impact(Thread.objects.filter(project_id__in=ids)),
        "sandboxes": Sandbox.objects.filter(project_id__in=ids, state__in=LIVE_STATES).count(),
        "embeddings": get_vector_store().count(project_ids=ids),
    }


def account_deletion_impact(*, accounts: QuerySet) -> dict:
    """As `project_deletion_impact`, for accounts: plus their projects, agents (with
    versions and triggers) and memberships."""
    from agents.models import Agent
    from sandboxes.models import Sandbox
    from sandboxes.services import LIVE_STATES
    from threads.models import Thread
    from threads.vectorstore import get_vector_store

    ids = accounts.order_by().values("pk")
    return {
        "accounts": accounts.count(),
        "projects": Project.objects.filter(account_id__in=ids).count(),
        **_threads_impact(Thread.objects.filter(account_id__in=ids)),
        "agents": Agent.objects.filter(account_id__in=ids).count(),
        "members": Membership.objects.filter(account_id__in=ids).count(),
        "sandboxes": Sandbox.objects.filter(project__account_id__in=ids, state__in=LIVE_STATES).count(),
        "embeddings": get_vector_store().count(account_ids=ids),
    }
