"""Writes for tenancy: accounts, members, projects."""

from django.contrib.auth import get_user_model, password_validation
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import connection, transaction

from config.errors import Conflict, Invalid, NotFound, again_on_conflict

from .models import Account, Membership, Project, Role


def validate_new_password(*, username: str, password: str) -> None:
    """The password of a user about to be created: a 409 if the user exists (a command
    never changes an existing user's password as a side effect; `changepassword` does),
    else Django's password validators (AUTH_PASSWORD_VALIDATORS): a 422 listing every
    reason the password is refused."""
    User = get_user_model()
    if User.objects.filter(username=username).exists():
        raise Conflict(f"User '{username}' already exists and keeps their password: leave out --password, "
                       f"or change it with `manage.py changepassword {username}`.")
    user = User(username=username)
    try:
        password_validation.validate_password(password, user=user)
    except DjangoValidationError as exc:
        raise Invalid("The password is refused: " + " ".join(exc.messages), errors={"password": exc.messages})


LIMIT_MAX = 2_147_483_647  # an account's thread or agent limit: a PostgreSQL integer


def _invalid(exc: DjangoValidationError, what: str) -> Invalid:
    messages = exc.message_dict if hasattr(exc, "error_dict") else {what: exc.messages}
    return Invalid(" ".join(f"{field}: {' '.join(msgs)}" for field, msgs in messages.items()), errors=messages)


@transaction.atomic
def ensure_user(*, username: str, password: str | None = None):
    """Return the user with that name, creating it (with the password) if missing. A
    name the user model refuses (empty, too long, characters outside letters, digits
    and @.+-_) is a 422 before anything is written."""
    User = get_user_model()
    if not User.objects.filter(username=username).exists():
        try:
            User._meta.get_field(User.USERNAME_FIELD).clean(username, None)
        except DjangoValidationError as exc:
            raise _invalid(exc, "username")
    user, created = User.objects.get_or_create(username=username)
    if created or password:
        if password:
            user.set_password(password)
        else:
            user.set_unusable_password()
        user.save()
    return user


@transaction.atomic
def create_account(*, name: str, owner, thread_limit: int | None = None, agent_limit: int | None = None) -> Account:
    """A 422 for what the table would refuse (a blank or too long name, a limit below 0
    or beyond the column's range), before anything is written."""
    account = Account(name=name, thread_limit=thread_limit, agent_limit=agent_limit)
    if not name.strip():
        raise Invalid("name: The account name is empty.", errors={"name": ["The account name is empty."]})
    for field, limit in (("thread_limit", thread_limit), ("agent_limit", agent_limit)):
        if limit is not None and not 0 <= limit <= LIMIT_MAX:  # the same range on every database
            message = f"Must be between 0 and {LIMIT_MAX}; got {limit}."
            raise Invalid(f"{field}: {message}", errors={field: [message]})
    try:
        account.full_clean()
    except DjangoValidationError as exc:
        raise _invalid(exc, "name")
    account.save(force_insert=True)
    Membership.objects.create(account=account, user=owner, role=Role.OWNER)
    return account


@transaction.atomic
def add_member(*, account: Account, user, role: str) -> Membership:
    """Add the user to the account with `role`, or change their role; a change that
    would leave the account without an owner is refused (409)."""
    from .selectors import last_owner_refusals

    if role not in Role.values:
        raise Invalid(f"Unknown role '{role}'. Choose one of: {', '.join(Role.values)}.")
    if role != Role.OWNER:
        refusals = last_owner_refusals(leaving=Membership.objects.filter(account=account, user=user, role=Role.OWNER))
        if refusals:
            raise Conflict(" ".join(refusals))
    membership, _ = Membership.objects.update_or_create(account=account, user=user, defaults={"role": role})
    return membership


@transaction.atomic
def create_project(*, account: Account, name: str, description: str = "") -> Project:
    return Project.objects.create(account=account, name=name, description=description)


DEFAULT_PROJECT_NAME = "Default"


def default_project(*, account: Account) -> Project:
    """The account's default project, created if it has none. The caller holds the
    account's row lock (as thread creation does), so two creations never make two;
    the partial unique index backs it."""
    project = Project.objects.select_for_update(no_key=True).filter(account=account, is_default=True).first()
    if project is None:
        project = Project.objects.create(account=account, name=DEFAULT_PROJECT_NAME, is_default=True)
    return project


@transaction.atomic
def update_project(*, project: Project, **fields) -> Project:
    """Change a project's name or description; 404 if it was deleted meanwhile (an
    update never brings a deleted project back)."""
    locked = Project.objects.select_for_update(no_key=True).filter(pk=project.pk).first()
    if locked is None:
        raise NotFound("Project not found.")
    changed = [key for key in ("name", "description") if key in fields]
    for key in changed:
        setattr(locked, key, fields[key])
    if changed:
        locked.save(update_fields=[*changed, "updated_at"])
    return locked


@again_on_conflict  # its cascade locks threads a concurrent run or turn may hold first
@transaction.atomic
def delete_project(*, project: Project) -> None:
    """Delete a project; the database removes its threads and everything under them.
    Locked first, so of concurrent deletes one deletes it (and writes the receipt)
    and the others get a 404.

    The project's `post_delete` handlers schedule its sandbox's deletion and the
    embedding cleanup of its threads.
    """
    from threads.services.runs import stop_deleted_runs

    lock_triggers_of(project_id=project.pk)
    locked = Project.objects.select_for_update(no_key=True).filter(pk=project.pk).first()
    if locked is None:
        raise NotFound("Project not found.")
    stop_deleted_runs(lock_threads_of(project_id=locked.pk))
    locked.delete()


def lock_triggers_of(**owner) -> None:
    """Lock the agent triggers that go with a project or an account (`project_id=` /
    `account_id=`) before the owner itself. A webhook or a schedule firing holds its
    trigger's row, then takes the account's and project's locks to start its run: a
    deletion that locked the owner first and then reached the trigger through the
    database cascade would wait for it while it waits for the owner — a deadlock. So
    the triggers come first. PostgreSQL only."""
    from agents.models import Agent, AgentTrigger

    (column, value), = owner.items()
    agents = connection.ops.quote_name(Agent._meta.db_table)
    where = {"project_id": "project_id = %s",
             "account_id": f"agent_id IN (SELECT id FROM {agents} WHERE account_id = %s)"}[column]
    _lock_in_id_order(AgentTrigger, where, value)


def lock_threads_of(**owner) -> list[tuple]:
    """Lock the threads of a project or an account (`project_id=` / `account_id=`)
    before it goes. A turn holds its thread and, updating it a second time, takes `FOR
    KEY SHARE` on the thread's project and account for its foreign-key checks: deleting
    the owner first would wait for the thread while the turn waits for the owner — a
    deadlock. So the owner is locked `FOR NO KEY UPDATE` (which that check does not
    wait on), then its threads, then it is deleted.

    Returns the pending and running runs of those threads, (run id, thread id), which
    the cascade is about to take (for `stop_deleted_runs`): on PostgreSQL read by the
    locking statement itself (one query, as before), elsewhere by one query (nothing is
    locked there: a write locks the whole database)."""
    from threads.models import ACTIVE_RUN_STATUSES, ACTIVE_RUN_STATUSES_SQL, Run, Thread

    (column, value), = owner.items()
    assert column in ("project_id", "account_id")
    if connection.vendor != "postgresql":
        return list(Run.objects.filter(**{f"thread__{column}": value}, status__in=ACTIVE_RUN_STATUSES)
                    .values_list("pk", "thread_id"))
    q = connection.ops.quote_name
    with connection.cursor() as cursor:  # the first column takes every lock, in id order; the second reads
        cursor.execute(
            f"WITH locked AS MATERIALIZED (SELECT id FROM {q(Thread._meta.db_table)} WHERE {column} = %s "
            f"ORDER BY id FOR UPDATE) "
            f"SELECT (SELECT COUNT(*) FROM locked), (SELECT array_agg(ARRAY[r.id, r.thread_id]) "
            f"FROM {q(Run._meta.db_table)} r WHERE r.thread_id IN (SELECT id FROM locked) "
            f"AND r.status IN ({ACTIVE_RUN_STATUSES_SQL}))",
            [value])
        return [tuple(pair) for pair in cursor.fetchone()[1] or []]


def _lock_in_id_order(model, where: str, value) -> None:
    """`SELECT ... FOR UPDATE` of `model`'s rows matching `where`, in id order, in one
    statement (no row sent back). A no-op off PostgreSQL, where a write locks the
    whole database."""
    if connection.vendor != "postgresql":
        return
    table = connection.ops.quote_name(model._meta.db_table)
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT COUNT(*) FROM (SELECT 1 FROM {table} WHERE {where} ORDER BY id FOR UPDATE) t",
                       [value])


@transaction.atomic
def delete_account(*, account: Account) -> None:
    """Delete an account with everything it owns, in one transaction.

    The account's row lock (which thread and agent creations take too) keeps new
    work out; one `DELETE` of the account lets the database remove its projects,
    threads and everything under them, agents, memberships (`ON DELETE CASCADE`).
    The account's `pre_delete`/`post_delete` handlers put its sandboxes in the
    deletion outbox in this transaction and remove its embeddings after commit.
    Django's collector loads no child row: every relation to an account is
    database-level. Accounts with many threads are deleted by a background job that
    first deletes the threads in batches (`jobs`), then calls this.
    """
    from threads.services.runs import stop_deleted_runs

    lock_triggers_of(account_id=account.pk)
    locked = Account.objects.select_for_update(no_key=True).filter(pk=account.pk).first()
    if locked is None:
        raise NotFound("Account not found.")
    stop_deleted_runs(lock_threads_of(account_id=locked.pk))
    locked.delete()
