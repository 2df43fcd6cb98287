"""Writes on agents: create, update (new versions), default flag, delete, import,
and the trigger service (schedules and webhooks)."""

import hashlib
import hmac
import logging
import secrets
from datetime import datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import CroniterBadDateError, croniter
from django.conf import settings
from django.db import transaction
from django.db.models import F, Max, Q
from django.utils import timezone

from config.errors import Conflict, Invalid, LimitReached, NotFound, Protected, ServiceError, again_on_conflict
from projects.models import Account, Project
from receipts import services as receipts
from receipts.models import DeletionKind
from threads.models import Thread, ThreadStatus
from threads.tools import validate_tools

from . import caches
from .models import Agent, AgentTrigger, AgentVersion, TriggerKind

logger = logging.getLogger(__name__)

# A change of any of these makes a new version. `graph_id` (the runtime), `config` and
# `context` are what LangGraph's assistants API shows of a version.
CONFIG_FIELDS = ("system_prompt", "model", "tools", "mcps", "graph_id", "config", "context")
INTERNAL_METADATA_KEYS = ("is_system", "is_suna_default")


def _validate_config(config: dict) -> dict:
    if "tools" in config:
        config["tools"] = validate_tools(config["tools"])
    if "mcps" in config and not isinstance(config["mcps"], list):
        raise Invalid("mcps must be a list.", errors={"mcps": ["A list."]})
    if "model" in config and not (isinstance(config["model"], str) and config["model"].strip()):
        raise Invalid("model must be a non-empty string.", errors={"model": ["Required."]})
    if config.get("graph_id") and config["graph_id"] not in settings.THREAD_RUNTIMES:
        raise Invalid(f"Unknown graph '{config['graph_id']}': use one of {', '.join(settings.THREAD_RUNTIMES)}.",
                      errors={"graph_id": ["Unknown graph (runtime)."]})
    for key in ("config", "context"):
        if key in config and not isinstance(config[key], dict):
            raise Invalid(f"{key} must be an object.", errors={key: ["An object."]})
    return config


def _lock_account(account_id) -> Account:
    """The account's row lock serialises agent creations and default switches of one
    account (the same lock thread creation takes): with no agent yet, two "new default"
    writes would otherwise both pass and collide on the one-default index. Lock order:
    account, then the default agents it unsets (`update_agent` holds its own agent
    first, as a deletion does)."""
    account = Account.objects.select_for_update(no_key=True).filter(pk=account_id).first()
    if account is None:
        raise NotFound("Account not found.")
    return account


def _unset_other_defaults(account_id, keep_pk) -> None:
    """One default per account (the account row is locked by the caller)."""
    Agent.objects.filter(account_id=account_id, is_default=True).exclude(pk=keep_pk).update(is_default=False)


def _lock_agent(agent_id) -> Agent:
    """`FOR NO KEY UPDATE`: a run or thread inserted meanwhile only takes a key-share
    lock on the agent (its foreign key), so it never waits on this one — no deadlock
    with a run that holds its thread's lock while it references the agent."""
    agent = Agent.objects.select_for_update(no_key=True).filter(pk=agent_id).first()
    if agent is None:
        raise NotFound("Agent not found.")
    return agent


def hold_agent(agent_id) -> None:
    """Keep the agent from being deleted until this transaction ends (`FOR KEY SHARE`,
    what a row referencing it takes anyway: no wait on a deletion's `FOR NO KEY
    UPDATE`, but the deletion's `DELETE` waits); 404 if it is already gone — not a
    foreign-key violation at commit. SQLite's transactions are serialised whole."""
    _hold(Agent, agent_id, missing="Agent not found.")


def _hold(model, pk, *, missing: str) -> None:
    """`hold_agent` for a row of any table a new row is about to reference."""
    from django.db import connection

    table = connection.ops.quote_name(model._meta.db_table)
    lock = " FOR KEY SHARE" if connection.vendor == "postgresql" else ""
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT 1 FROM {table} WHERE id = %s{lock}", [model._meta.pk.get_db_prep_value(pk, connection)])
        if cursor.fetchone() is None:
            raise NotFound(missing)


def _internal_flags(metadata: dict | None) -> dict:
    return {k: v for k, v in (metadata or {}).items() if k in INTERNAL_METADATA_KEYS}


def public_metadata(metadata: dict | None) -> dict:
    """The metadata without the internal flags (what export shows and the API may set)."""
    return {k: v for k, v in (metadata or {}).items() if k not in INTERNAL_METADATA_KEYS}


@transaction.atomic
def create_agent(
    *, account: Account, name: str, system_prompt: str = "", model: str, tools=None, mcps=None,
    description: str = "", is_default: bool = False, metadata: dict | None = None, created_by=None,
    versions: list[dict] | None = None, graph_id: str = "", config: dict | None = None, context: dict | None = None,
    agent_id=None, if_exists: str = "raise",
) -> Agent:
    """Create an agent with version 1 (or with `versions`, as an import does). 402 at
    the account's agent limit (served from the agent-count cache, checked under the
    account's row lock; the count key is dropped before the lock is released, so the
    next creation counts this agent).

    `agent_id`: the caller's id (LangGraph's `assistant_id`); if an agent has it,
    `if_exists` says what happens: `raise` (409) or `do_nothing` (that agent is
    returned, with `existed` set)."""
    account = _lock_account(account.pk)
    if agent_id is not None:
        existing = Agent.objects.filter(pk=agent_id).first()
        if existing is not None:
            if if_exists == "do_nothing":
                existing.existed = True
                return existing
            raise Conflict(f"Assistant {agent_id} already exists.")
    if caches.agent_count(account.pk) >= account.effective_agent_limit:
        raise LimitReached("The account's agent limit is reached.")
    versions = versions or [{"system_prompt": system_prompt, "model": model, "tools": tools or [], "mcps": mcps or [],
                             "graph_id": graph_id, "config": config or {}, "context": context or {}}]
    versions = [_validate_config(dict(v)) for v in versions]
    agent = Agent.objects.create(
        **({"id": agent_id} if agent_id is not None else {}),
        account=account, name=name, description=description, metadata=metadata or {},
        current_version=len(versions), created_by=created_by,
    )
    AgentVersion.objects.bulk_create(
        AgentVersion(agent=agent, number=i + 1, system_prompt=v.get("system_prompt", ""), model=v["model"],
                     tools=v.get("tools", []), mcps=v.get("mcps", []), graph_id=v.get("graph_id", ""),
                     config=v.get("config", {}), context=v.get("context", {}), metadata=agent.metadata)
        for i, v in enumerate(versions)
    )
    agent.existed = False
    if is_default:
        _unset_other_defaults(account.pk, agent.pk)
        Agent.objects.filter(pk=agent.pk).update(is_default=True)
        agent.is_default = True
    caches.drop_agent_count(account.pk)
    caches.on_commit_invalidate(account_id=account.pk)
    return agent


@transaction.atomic
def update_agent(*, agent: Agent, **fields) -> Agent:
    """Change an agent. A change of system_prompt, model, tools or mcps creates the
    next numbered version and moves current_version; other fields change in place.
    The internal flags (`is_system`, `is_suna_default`) stay as they are: a new
    `metadata` can neither add nor remove them."""
    locked = _lock_agent(agent.pk)
    if fields.get("is_default") is True and not locked.is_default:
        # The agent first, as its deletion locks it (then its triggers, then the
        # account): the account first here deadlocked with a deletion of the same
        # agent. Only an agent becoming the default takes the account's lock, and no
        # default switch waits on it (`_unset_other_defaults` skips non-defaults).
        _lock_account(locked.account_id)
    previous, metadata_before = locked.current_version, locked.metadata
    if "metadata" in fields:
        locked.metadata = public_metadata(fields["metadata"]) | _internal_flags(locked.metadata)
    if "metadata_merge" in fields:  # LangGraph's PATCH: the keys given replace theirs, the others stay
        locked.metadata = (locked.metadata or {}) | public_metadata(fields["metadata_merge"])
    config_changes = _validate_config({k: fields[k] for k in CONFIG_FIELDS if k in fields})
    if config_changes:
        current = AgentVersion.objects.get(agent=locked, number=locked.current_version)
        new = {k: getattr(current, k) for k in CONFIG_FIELDS} | config_changes
        if new != {k: getattr(current, k) for k in CONFIG_FIELDS}:
            # After `set_current_version` moved back, the next number is past the newest one.
            newest = AgentVersion.objects.filter(agent=locked).aggregate(n=Max("number"))["n"] or 0
            locked.current_version = newest + 1
            AgentVersion.objects.create(agent=locked, number=locked.current_version, metadata=locked.metadata, **new)
    if locked.current_version == previous and locked.metadata != metadata_before:  # the current version's too
        AgentVersion.objects.filter(agent=locked, number=previous).update(metadata=locked.metadata)
    for key in ("name", "description"):
        if key in fields:
            setattr(locked, key, fields[key])
    if fields.get("is_default") is True and not locked.is_default:
        _unset_other_defaults(locked.account_id, locked.pk)
        locked.is_default = True
    elif fields.get("is_default") is False:
        locked.is_default = False
    locked.save()
    caches.on_commit_invalidate(account_id=locked.account_id, agent_id=locked.pk, versions=[previous])
    return locked


@transaction.atomic
def set_current_version(*, agent: Agent, version: int) -> Agent:
    """Make an existing version the current one (LangGraph's `set_latest`), with the
    metadata it kept (the internal flags stay as they are); no new version is made.
    404 for a version the agent does not have."""
    locked = _lock_agent(agent.pk)
    chosen = AgentVersion.objects.filter(agent=locked, number=version).only("metadata").first()
    if chosen is None:
        raise NotFound(f"Version {version} not found.")
    previous = locked.current_version
    locked.current_version = version
    locked.metadata = public_metadata(chosen.metadata) | _internal_flags(locked.metadata)
    locked.save(update_fields=["current_version", "metadata", "updated_at"])
    caches.on_commit_invalidate(account_id=locked.account_id, agent_id=locked.pk, versions=[previous])
    return locked


def ensure_deletable(agent: Agent) -> None:
    if agent.is_default:
        raise Protected("Cannot delete default agent. Unset it as default first.")
    if agent.is_system:
        raise Protected("Cannot delete a system agent.")


@again_on_conflict  # its cascade locks threads a concurrent run or turn may hold first
@transaction.atomic
def delete_agent(*, agent: Agent, delete_threads: bool = False, close_threads: bool = True) -> None:
    """Delete an agent with its versions and triggers, keeping its history.

    Triggers go through the trigger service (schedules stopped, webhook secrets
    revoked); versions by the database cascade; the agent's threads that are not
    closed are cancelled and closed; runs, threads and messages stay with their agent
    reference set to null by the database. Caches are invalidated after commit.

    `delete_threads` (LangGraph's `?delete_threads=true`): the agent's threads (bound
    to it, or with `metadata.assistant_id` naming it) are deleted instead, with
    everything under them, through the set-based `delete_threads` — a bounded number
    of queries whatever their number. `close_threads=False` (LangGraph's assistant
    deletion, after which a thread takes runs of any other assistant): the threads are
    only unbound, and the busy ones cancelled (their active runs interrupted).
    """
    from threads.services.deletion import delete_threads as delete_thread_set
    from threads.services.lifecycle import cancel_threads, force_close_threads

    locked = _lock_agent(agent.pk)
    ensure_deletable(locked)
    with receipts.operation(DeletionKind.AGENT_DELETE, root_ids=[locked.pk]):
        # The triggers first: a webhook call holds its trigger's row, then takes the
        # account's (as every thread creation) — so the account is locked after them.
        delete_triggers(triggers=AgentTrigger.objects.filter(agent=locked))
        # Then the account, `FOR NO KEY UPDATE`: thread creation holds the account's
        # row lock while it checks the agent and inserts (`create_thread`), so a thread
        # bound to the agent is either committed before its threads are read here (and
        # closed or deleted with the rest) or created after, to find the agent gone
        # (404). Not `FOR UPDATE`: a turn's foreign-key recheck takes `FOR KEY SHARE`.
        _lock_account(locked.account_id)
        if delete_threads:
            owned = Thread.objects.filter(Q(agent=locked) | Q(account_id=locked.account_id,
                                                              metadata__assistant_id=str(locked.pk)))
            delete_thread_set(thread_ids=owned.values_list("pk", flat=True))
        if close_threads:
            force_close_threads(
                thread_ids=Thread.objects.filter(agent=locked).exclude(status=ThreadStatus.CLOSED)
                .values_list("pk", flat=True)
            )
        else:
            cancel_threads(thread_ids=Thread.objects.filter(agent=locked).values_list("pk", flat=True))
        versions = list(locked.versions.values_list("number", flat=True))
        Agent.objects.filter(pk=locked.pk).delete()
        receipts.record(DeletionKind.AGENT_DELETE, {locked.account_id: receipts.Tally(agents=1)})
    caches.on_commit_invalidate(account_id=locked.account_id, agent_id=locked.pk, versions=versions)


@transaction.atomic
def release_agent_threads(*, agent: Agent, limit: int) -> tuple[int, int]:
    """One batch of an agent's deletion run in the background: up to `limit` of its
    threads are cancelled and closed (the open ones) and detached from it with their
    runs and messages — what `delete_agent` does to them, in one transaction per batch
    instead of one for all (closing, then the database's `SET NULL`). The agent stays,
    under its lock and still refused if protected, until `delete_agent` takes it with
    whatever is left. Returns (threads released, threads closed); the closes are in a
    receipt of the agent's deletion."""
    from threads.models import Message, Run
    from threads.services.lifecycle import force_close_threads

    locked = _lock_agent(agent.pk)
    ensure_deletable(locked)
    ids = list(Thread.objects.filter(agent=locked).order_by().values_list("pk", flat=True)[:limit])
    if not ids:
        return 0, 0
    with receipts.operation(DeletionKind.AGENT_DELETE, root_ids=[locked.pk]):
        closed = force_close_threads(thread_ids=ids)
        Run.objects.filter(thread_id__in=ids, agent=locked).update(agent=None)
        Message.objects.filter(thread_id__in=ids, agent=locked).update(agent=None)
        Thread.objects.filter(pk__in=ids).update(agent=None)
    return len(ids), closed


def export_agent(agent: Agent) -> dict:
    """Everything needed to recreate the agent; no secrets, no internal flags."""
    config = caches.agent_config(agent) or {}
    return {
        "name": agent.name,
        "description": agent.description,
        "system_prompt": config.get("system_prompt", ""),
        "model": config.get("model", ""),
        "tools": config.get("tools", []),
        "mcps": config.get("mcps", []),
        "metadata": public_metadata(agent.metadata),
        "current_version": agent.current_version,
        "versions": [
            {"number": v.number, "system_prompt": v.system_prompt, "model": v.model, "tools": v.tools,
             "mcps": v.mcps, "created_at": v.created_at.isoformat()}
            for v in agent.versions.order_by("number")
        ],
        "triggers": [
            {"kind": t.kind, "cron": t.cron, "timezone": t.timezone, "input": t.input, "is_active": t.is_active}
            for t in agent.triggers.order_by("created_at")
        ],
        "exported_at": timezone.now().isoformat(),
    }


@transaction.atomic
def import_agent(*, account: Account, document: dict, created_by=None, project: Project | None = None) -> Agent:
    """Create a new agent from an export document (shape checked by
    `AgentDocumentSerializer`). Versions are recreated in order, numbered from 1; the
    triggers are recreated when a project is given for them to start threads in
    (webhooks with a new secret). Internal flags are never imported."""
    versions = sorted(document["versions"], key=lambda v: v.get("number") or 0)
    agent = create_agent(
        account=account, name=document["name"], description=document.get("description", ""),
        metadata=public_metadata(document.get("metadata")), model=versions[-1]["model"], created_by=created_by,
        versions=[{k: v[k] for k in CONFIG_FIELDS if k in v} for v in versions],
    )
    if project is not None:
        for t in document.get("triggers", []):
            create_trigger(agent=agent, kind=t["kind"], cron=t.get("cron", ""), timezone_name=t.get("timezone", "UTC"),
                           input=t.get("input", {}), project=project, enabled=t.get("is_active", True))
    return agent


# --- Triggers ---------------------------------------------------------------------


def _hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def next_fire_time(cron: str, tz_name: str, after: datetime) -> datetime:
    """The first time after `after` the cron expression matches, read in `tz_name`."""
    tz = ZoneInfo(tz_name)
    return croniter(cron, after.astimezone(tz)).get_next(datetime).astimezone(ZoneInfo("UTC"))


def _first_fire_time(cron: str, tz_name: str, *, field: str = "cron") -> datetime:
    """Validate a schedule (422 on a bad cron or timezone) and return its first due time.
    Five fields (minute precision: beat ticks every minute) or an @-macro such as
    `@daily`; an expression that never matches (`0 0 31 2 *`) is refused too. `field`:
    what the caller named the expression (a trigger's `cron`, a LangGraph cron's
    `schedule`), for the 422's `errors`."""
    try:
        ZoneInfo(tz_name)
    except (ZoneInfoNotFoundError, ValueError):
        raise Invalid(f"Unknown timezone '{tz_name}'.", errors={"timezone": ["Unknown timezone."]})
    fields = cron.split()
    well_formed = len(fields) == 5 or (len(fields) == 1 and cron.strip().startswith("@"))
    if not well_formed or not croniter.is_valid(cron):
        raise Invalid(f"Invalid cron expression '{cron}'.", errors={field: ["Not a valid cron expression."]})
    try:
        return next_fire_time(cron, tz_name, timezone.now())
    except CroniterBadDateError:
        raise Invalid(f"The cron expression '{cron}' never matches.", errors={field: ["Never matches."]})


@transaction.atomic
def create_trigger(
    *, agent: Agent, kind: str, cron: str = "", timezone_name: str = "UTC", input: dict | None = None,
    thread: Thread | None = None, project: Project | None = None, payload: dict | None = None,
    metadata: dict | None = None, end_time: datetime | None = None, enabled: bool = True,
    on_run_completed: str = "", created_by=None,
) -> tuple[AgentTrigger, str | None]:
    """Create a schedule or webhook trigger. Returns (trigger, webhook secret) — the
    secret is shown once; only its hash is stored. `payload` (the options of the runs
    it starts), `metadata`, `end_time`, `enabled` and `on_run_completed` are what a
    LangGraph cron adds (see `create_cron`)."""
    if kind not in TriggerKind.values:
        raise Invalid(f"Unknown trigger kind '{kind}'.", errors={"kind": ["schedule or webhook."]})
    if thread is None and project is None:
        raise Invalid("A trigger needs a thread_id or a project_id to run in.", errors={"project_id": ["Required."]})
    for obj in (thread, project):
        if obj is not None and obj.account_id != agent.account_id:
            raise NotFound("Project or thread not found.")
    if thread is not None and thread.status == ThreadStatus.CLOSED:  # it could never start a run there
        raise Conflict("The thread is closed: it takes no new run, so a trigger on it would never fire.")
    project_id = project.pk if project is not None else thread.project_id
    next_fire_at, secret = None, None
    if kind == TriggerKind.SCHEDULE:
        next_fire_at = _first_fire_time(cron, timezone_name)
        next_fire_at = next_fire_at if enabled and not _past_end(next_fire_at, end_time) else None
    else:
        secret = secrets.token_urlsafe(32)
    # The rows the trigger references, held until it is committed: one deleted
    # meanwhile is a 404 here, not a foreign-key violation at the insert; a deletion
    # that comes later waits, then takes the new trigger with it (the cascade). The
    # project is locked as a thread creation locks it (`FOR NO KEY UPDATE`), since the
    # trigger keeps it from going with its last thread: a thread deletion that found
    # it empty under that lock deletes it before this trigger can refer to it (then a
    # 404), never after. Then the thread and the agent (an assistant deleted with its
    # threads deletes them before the agent row).
    if not Project.objects.select_for_update(no_key=True).filter(pk=project_id).values_list("pk", flat=True):
        raise NotFound("Project not found.")
    if thread is not None:
        _hold(Thread, thread.pk, missing="Thread not found.")
    hold_agent(agent.pk)
    trigger = AgentTrigger.objects.create(
        agent=agent, kind=kind, cron=cron if kind == TriggerKind.SCHEDULE else "", timezone=timezone_name,
        input=input or {}, thread=thread, project_id=project_id,
        secret_hash=_hash_secret(secret) if secret else "", next_fire_at=next_fire_at, payload=payload or {},
        metadata=metadata or {}, end_time=end_time, is_active=enabled, on_run_completed=on_run_completed,
        created_by=created_by,
    )
    return trigger, secret


def _past_end(when: datetime | None, end_time: datetime | None) -> bool:
    return when is not None and end_time is not None and when > end_time


@transaction.atomic
def delete_triggers(*, triggers) -> int:
    """Stop schedules and revoke webhook secrets first (so nothing fires or accepts a
    call while the delete is in flight), then delete."""
    ids = list(triggers.values_list("pk", flat=True))
    AgentTrigger.objects.filter(pk__in=ids).update(is_active=False, next_fire_at=None, secret_hash="")
    deleted, _ = AgentTrigger.objects.filter(pk__in=ids).delete()
    return deleted


def _start_triggered_run(trigger: AgentTrigger, *, input, schedule_seq: int | None = None):
    """A run on the trigger's thread, or on a new thread of its project. An `input`
    with a `message` string posts it as the user message the run answers; LangGraph
    `input.messages` are appended when the run starts. A cron's `payload` gives the
    run its options (config, context, webhook, multitask_strategy — by default a busy
    thread skips the due time) and its metadata; the new thread of a thread-less cron
    with `on_run_completed: delete` is deleted after the run."""
    from threads.services.messages import post_message
    from threads.services.runs import create_run
    from threads.services.threads import create_thread

    thread = trigger.thread
    if thread is None:
        if trigger.project is None:
            raise Conflict("The trigger's thread and project no longer exist.")
        thread = create_thread(
            project=trigger.project, agent=trigger.agent, title=f"{trigger.agent.name} ({trigger.kind})",
            metadata={"trigger_id": str(trigger.pk)},
        )
        if trigger.kind == TriggerKind.SCHEDULE:
            Thread.objects.filter(pk=thread.pk).update(schedule=trigger, schedule_seq=schedule_seq)
    text = input.get("message") if isinstance(input, dict) else None
    text = text if isinstance(text, str) and text else None
    if text:
        post_message(thread=thread, role="user", content=[{"type": "text", "text": text}], agent=None)
    kwargs = dict(trigger.payload or {})
    if trigger.thread_id is None and trigger.on_run_completed:
        kwargs.update(temporary=True, on_completion=trigger.on_run_completed)
    return create_run(thread=thread, agent=trigger.agent, input=input, message=text, kwargs=kwargs,
                      multitask_strategy=kwargs.get("multitask_strategy") or "reject",
                      metadata={**(trigger.metadata or {}), "trigger_id": str(trigger.pk), "cron_id": str(trigger.pk)})


@transaction.atomic
def fire_webhook(*, trigger_id, secret: str, input: dict | None = None):
    """Start a run for a webhook call. A wrong secret, a revoked or deleted trigger
    is a 404 (no hint that the trigger exists). The trigger row stays locked until the
    run is committed, so an agent deletion (which revokes the trigger first) waits for
    it and then also closes the thread it ran on."""
    trigger = AgentTrigger.objects.select_for_update(of=("self",)).select_related("agent", "thread", "project").filter(
        pk=trigger_id, kind=TriggerKind.WEBHOOK, is_active=True
    ).first()
    if trigger is None or not trigger.secret_hash or not hmac.compare_digest(trigger.secret_hash, _hash_secret(secret)):
        raise NotFound("Not found.")
    AgentTrigger.objects.filter(pk=trigger.pk).update(last_fired_at=timezone.now(), fire_count=F("fire_count") + 1)
    return _start_triggered_run(trigger, input=input if input is not None else trigger.input)


def fire_due_triggers(*, now: datetime | None = None) -> int:
    """Start one run per due schedule trigger; returns how many started.

    Each due time is claimed with a conditional update (`next_fire_at` still equal to
    the due time, which moves to the next match after `now`: missed times are not
    replayed). Two beat processes ticking at once: the second update waits on the
    row and then matches nothing, so each due time starts at most one run. The claim
    and the run commit together, so an agent deletion that revokes the trigger waits
    for both; a run that cannot start (thread busy or closed) is rolled back to a
    savepoint and the due time is skipped with a warning.
    """
    now = now or timezone.now()
    started = 0
    due = AgentTrigger.objects.filter(kind=TriggerKind.SCHEDULE, is_active=True, next_fire_at__lte=now)
    for trigger in due.select_related("agent", "thread", "project").order_by("next_fire_at")[:500]:
        try:
            with transaction.atomic():
                if _claim_due_time(trigger, now=now) and _start_scheduled_run(trigger, now=now):
                    started += 1
        except Exception:  # one broken trigger never stops the others
            logger.exception("Schedule trigger %s failed at %s", trigger.pk, now.isoformat())
    return started


def _claim_due_time(trigger: AgentTrigger, *, now: datetime) -> bool:
    """Claim the due time (see `fire_due_triggers`); a cron past its `end_time`
    claims nothing and stops (its next time is cleared)."""
    if _past_end(trigger.next_fire_at, trigger.end_time):
        AgentTrigger.objects.filter(pk=trigger.pk, next_fire_at=trigger.next_fire_at).update(next_fire_at=None)
        return False
    following = next_fire_time(trigger.cron, trigger.timezone, now)
    following = None if _past_end(following, trigger.end_time) else following
    return bool(
        AgentTrigger.objects.filter(pk=trigger.pk, is_active=True, next_fire_at=trigger.next_fire_at).update(
            next_fire_at=following, last_fired_at=now, fire_count=F("fire_count") + 1
        )
    )


def _start_scheduled_run(trigger: AgentTrigger, *, now: datetime) -> bool:
    try:
        with transaction.atomic():
            _start_triggered_run(trigger, input=trigger.input, schedule_seq=trigger.fire_count + 1)
        return True
    except ServiceError as exc:  # e.g. the thread is busy or closed: this due time is skipped
        logger.warning("Schedule trigger %s skipped at %s: %s", trigger.pk, now.isoformat(), exc.detail)
        return False


# --- LangGraph crons: schedule triggers created through `/runs/crons` -----------------

CRON_RUN_OPTIONS = (
    "config", "context", "webhook", "interrupt_before", "interrupt_after", "multitask_strategy", "stream_mode",
    "stream_subgraphs", "stream_resumable", "durability", "checkpoint_during",
)
ON_RUN_COMPLETED = ("delete", "keep")


def _cron_payload(options: dict, *, agent: Agent) -> dict:
    """The run options a cron stores, checked as a run's would be (422 otherwise)."""
    from django.conf import settings

    from threads.services.runs import validate_run_kwargs

    payload = {k: v for k, v in options.items() if k in CRON_RUN_OPTIONS and v is not None}
    runtime = (caches.agent_config(agent) or {}).get("graph_id") or settings.DEFAULT_RUNTIME
    return validate_run_kwargs(payload, runtime=runtime)


def _cron_input(input):
    from threads.services.runs import input_messages

    if input is not None and not isinstance(input, dict):
        raise Invalid("input must be an object.", errors={"input": ["An object."]})
    input_messages(input)
    return input or {}


@transaction.atomic
def create_cron(
    *, agent: Agent, schedule: str, thread: Thread | None = None, project: Project | None = None, input=None,
    metadata: dict | None = None, options: dict | None = None, end_time: datetime | None = None,
    enabled: bool = True, timezone_name: str | None = None, on_run_completed: str | None = None, created_by=None,
) -> AgentTrigger:
    """A LangGraph cron: a schedule trigger of `agent` that starts a run on `thread`
    at each time of `schedule`, or, without a thread, on a new thread of `project`
    each time (deleted after the run unless `on_run_completed` is `keep`). `options`:
    the runs' options (`CRON_RUN_OPTIONS`). Without a thread or project: the
    account's default project."""
    if thread is None and (on_run_completed or "delete") not in ON_RUN_COMPLETED:
        raise Invalid("on_run_completed must be 'delete' or 'keep'.", errors={"on_run_completed": ["delete or keep."]})
    _first_fire_time(schedule, timezone_name or "UTC", field="schedule")  # its 422 names LangGraph's field
    if thread is not None:
        from threads.services.threads import ensure_open, lock_thread

        ensure_open(lock_thread(thread.pk))
    elif project is None:
        from projects.services import default_project

        project = default_project(account=_lock_account(agent.account_id))
    trigger, _ = create_trigger(
        agent=agent, kind=TriggerKind.SCHEDULE, cron=schedule, timezone_name=timezone_name or "UTC",
        input=_cron_input(input), thread=thread, project=project, payload=_cron_payload(options or {}, agent=agent),
        metadata=metadata, end_time=end_time, enabled=enabled, created_by=created_by,
        on_run_completed="" if thread is not None else (on_run_completed or "delete"),
    )
    return trigger


@transaction.atomic
def update_cron(*, cron: AgentTrigger, **fields) -> AgentTrigger:
    """Change a cron (only the given fields; `end_time=None` clears it). A new
    schedule, timezone, end time or `enabled` recomputes the next run time from now."""
    locked = AgentTrigger.objects.select_for_update().select_related("agent").filter(
        pk=cron.pk, kind=TriggerKind.SCHEDULE).first()
    if locked is None:
        raise NotFound("Cron not found.")
    if "schedule" in fields:
        locked.cron = fields["schedule"]
    if fields.get("timezone"):
        locked.timezone = fields["timezone"]
    if "end_time" in fields:
        locked.end_time = fields["end_time"]
    if "enabled" in fields:
        locked.is_active = bool(fields["enabled"])
    if "input" in fields:
        locked.input = _cron_input(fields["input"])
    if "metadata" in fields:
        locked.metadata = fields["metadata"] or {}
    if fields.get("on_run_completed") is not None:
        if locked.thread_id is not None or fields["on_run_completed"] not in ON_RUN_COMPLETED:
            raise Invalid("on_run_completed is 'delete' or 'keep', for a cron without a thread.",
                          errors={"on_run_completed": ["delete or keep, thread-less crons only."]})
        locked.on_run_completed = fields["on_run_completed"]
    options = {k: fields[k] for k in CRON_RUN_OPTIONS if k in fields}
    if options:
        locked.payload = _cron_payload({**locked.payload, **options}, agent=locked.agent)
    if {"schedule", "timezone", "end_time", "enabled"} & set(fields):
        first = _first_fire_time(locked.cron, locked.timezone, field="schedule")
        locked.next_fire_at = first if locked.is_active and not _past_end(first, locked.end_time) else None
    locked.save()
    return locked


@transaction.atomic
def delete_cron(*, cron: AgentTrigger) -> None:
    """Stop the schedule and delete it, through the trigger service."""
    if not delete_triggers(triggers=AgentTrigger.objects.filter(pk=cron.pk, kind=TriggerKind.SCHEDULE)):
        raise NotFound("Cron not found.")
