"""Threads and everything that lives under them.

Every foreign key here uses a database-level `on_delete`: deleting a thread removes
its sub-threads, messages, runs, checkpoints (and their writes) and approvals in the
database itself, in the same statement, whoever issues the delete.
"""

import uuid

from django.db import models
from django.db.models.functions import Now


class ThreadStatus(models.TextChoices):
    IDLE = "idle"
    RUNNING = "running"
    AWAITING = "awaiting"
    CLOSED = "closed"


class Thread(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    # No single-column index on account, project, agent: the composite indexes below
    # lead with them and serve every lookup (and the cascades) by those keys.
    account = models.ForeignKey(
        "projects.Account", on_delete=models.DB_CASCADE, related_name="threads", db_index=False
    )
    project = models.ForeignKey(
        "projects.Project", on_delete=models.DB_CASCADE, related_name="threads", db_index=False
    )
    agent = models.ForeignKey(
        "agents.Agent", null=True, blank=True, on_delete=models.DB_SET_NULL, related_name="threads", db_index=False
    )
    parent_thread = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.DB_CASCADE, related_name="sub_threads"
    )
    # A soft reference to auth.User (no database constraint): auth.User is referenced
    # by Django's Python-level foreign keys, and a chain may not mix the two kinds.
    # threads.signals nulls it when the user is deleted.
    created_by = models.ForeignKey(
        "auth.User", null=True, blank=True, on_delete=models.DO_NOTHING, db_constraint=False, related_name="+"
    )
    title = models.CharField(max_length=300, blank=True, default="")
    status = models.CharField(max_length=16, choices=ThreadStatus.choices, default=ThreadStatus.IDLE)
    depth = models.PositiveIntegerField(default=0)
    tool_use_id = models.CharField(max_length=200, blank=True, default="")
    schedule = models.ForeignKey(
        "agents.AgentTrigger", null=True, blank=True, on_delete=models.DB_SET_NULL, related_name="threads"
    )
    schedule_seq = models.PositiveIntegerField(null=True, blank=True)
    instructions = models.TextField(null=True, blank=True)
    model = models.CharField(max_length=200, blank=True, default="")
    result = models.TextField(null=True, blank=True)
    error = models.TextField(null=True, blank=True)
    tools = models.JSONField(default=list, blank=True)
    external_tool_namespaces = models.JSONField(default=list, blank=True)
    compaction_summary = models.TextField(null=True, blank=True)
    compaction_through_seq = models.PositiveIntegerField(null=True, blank=True)
    metadata = models.JSONField(default=dict, blank=True)
    # Per-thread counters, advanced under the thread's row lock (see services).
    # Messages are only appended, numbered 1, 2, ... (`append_messages`; a copy keeps
    # the numbers), and are removed only with their thread: `last_message_seq` is also
    # how many messages the thread holds, which the deletion receipts and previews read
    # instead of counting them.
    last_message_seq = models.PositiveIntegerField(default=0)
    last_run_seq = models.PositiveIntegerField(default=0)
    # Token totals kept up to date by the services (messages, compaction), so the
    # thread detail never sums a thread's history: the estimated tokens of all its
    # messages, and of those folded into the compaction summary (seq <= through).
    message_tokens = models.PositiveBigIntegerField(default=0)
    compacted_tokens = models.PositiveBigIntegerField(default=0)
    # Time-to-live: minutes of inactivity after which the TTL sweeper prunes it.
    ttl_minutes = models.PositiveIntegerField(null=True, blank=True)
    # What the TTL sweeper does when it expires: `delete` or `keep_latest`; blank
    # means the site default (`THREAD_TTL["strategy"]`).
    ttl_strategy = models.CharField(max_length=16, blank=True, default="")
    expires_at = models.DateTimeField(null=True, blank=True)
    last_activity_at = models.DateTimeField(auto_now_add=True)
    completed_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            models.Index(fields=["account", "-created_at"], name="thread_account_created"),
            models.Index(fields=["project", "-created_at"], name="thread_project_created"),
            models.Index(fields=["agent", "status", "-created_at"], name="thread_agent_status"),
            models.Index(fields=["last_activity_at"], name="thread_last_activity"),
            models.Index(fields=["expires_at"], name="thread_expires_at"),
        ]

    def __str__(self):
        return self.title or str(self.id)


class MessageRole(models.TextChoices):
    USER = "user"
    ASSISTANT = "assistant"
    TOOL = "tool"
    SYSTEM = "system"


class Message(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    # Indexed by the (thread, seq) unique constraint.
    thread = models.ForeignKey(Thread, on_delete=models.DB_CASCADE, related_name="messages", db_index=False)
    seq = models.PositiveIntegerField()
    role = models.CharField(max_length=16, choices=MessageRole.choices)
    content = models.JSONField(default=list)
    run = models.ForeignKey("Run", null=True, blank=True, on_delete=models.DB_SET_NULL, related_name="messages")
    agent = models.ForeignKey(
        "agents.Agent", null=True, blank=True, on_delete=models.DB_SET_NULL, related_name="messages"
    )
    token_count = models.PositiveIntegerField(default=0)
    # Its run was rolled back (LangGraph's `rollback`): kept as the record, out of the
    # thread's state, as if the run had never been.
    rolled_back = models.BooleanField(default=False, db_default=False)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["thread", "seq"]
        constraints = [models.UniqueConstraint(fields=["thread", "seq"], name="unique_message_seq_per_thread")]

    def __str__(self):
        return f"{self.thread_id}#{self.seq}"

    @property
    def text(self) -> str:
        return "\n".join(b.get("text", "") for b in self.content or [] if isinstance(b, dict))


class RunStatus(models.TextChoices):
    PENDING = "pending"
    RUNNING = "running"
    SUCCESS = "success"
    ERROR = "error"
    INTERRUPTED = "interrupted"
    TIMEOUT = "timeout"


ACTIVE_RUN_STATUSES = (RunStatus.PENDING, RunStatus.RUNNING)
ACTIVE_RUN_STATUSES_SQL = ", ".join(f"'{status}'" for status in ACTIVE_RUN_STATUSES)  # for raw SQL's `IN (...)`
MAX_AFTER_SECONDS = 366 * 24 * 3600  # a run's delayed start (`after_seconds`): at most a (leap) year


class MultitaskStrategy(models.TextChoices):
    """What a new run does when its thread already has an active run (LangGraph's names)."""

    REJECT = "reject"  # 409
    INTERRUPT = "interrupt"  # the active runs are interrupted, the new one starts
    ROLLBACK = "rollback"  # the active runs are deleted with their checkpoints, the new one starts
    ENQUEUE = "enqueue"  # the new run waits as `pending` and starts when the active ones end, in order


class Run(models.Model):
    """A run of an agent on a thread; seen from the agent-thread API, a turn."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    # Indexed by the (thread, seq) unique constraint.
    thread = models.ForeignKey(Thread, on_delete=models.DB_CASCADE, related_name="runs", db_index=False)
    agent = models.ForeignKey(
        "agents.Agent", null=True, blank=True, on_delete=models.DB_SET_NULL, related_name="runs"
    )
    seq = models.PositiveIntegerField()
    status = models.CharField(max_length=16, choices=RunStatus.choices, default=RunStatus.PENDING)
    runtime = models.CharField(max_length=64, default="echo")
    model = models.CharField(max_length=200, blank=True, default="")
    input = models.JSONField(null=True, blank=True)
    metadata = models.JSONField(default=dict, blank=True)
    multitask_strategy = models.CharField(
        max_length=16, choices=MultitaskStrategy.choices, default=MultitaskStrategy.REJECT
    )
    # The run's LangGraph options as posted (config, context, stream_mode, webhook, ...).
    kwargs = models.JSONField(default=dict, blank=True)
    message = models.TextField(null=True, blank=True)
    # A delayed start (`after_seconds`): the run stays `pending` until then; the
    # worker's countdown starts it on time and the periodic requeue picks up any that
    # a lost worker or broker dropped.
    start_after = models.DateTimeField(null=True, blank=True)
    start_message_seq = models.PositiveIntegerField(null=True, blank=True)
    end_message_seq = models.PositiveIntegerField(null=True, blank=True)
    input_tokens = models.PositiveIntegerField(default=0)
    output_tokens = models.PositiveIntegerField(default=0)
    result = models.TextField(null=True, blank=True)
    error = models.TextField(null=True, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    completed_at = models.DateTimeField(null=True, blank=True)
    # The Celery worker (its node name) that started it ("" in-process), and the lease
    # of that worker process (`WorkerLease`; null in-process, while the run waits for a
    # worker to resume it, and for runs started before leases): a run whose worker's
    # lease expired is ended (`recover_lost_runs`).
    executor = models.CharField(max_length=255, blank=True, default="", db_default="")
    executor_lease = models.UUIDField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["thread", "seq"]
        constraints = [
            models.UniqueConstraint(fields=["thread", "seq"], name="unique_run_seq_per_thread"),
            # At most one executing run per thread; queued runs wait as `pending`.
            models.UniqueConstraint(
                fields=["thread"], condition=models.Q(status="running"), name="one_running_run_per_thread",
            ),
        ]
        indexes = [models.Index(fields=["thread", "status"], name="run_thread_status")]

    def __str__(self):
        return f"run {self.seq} of {self.thread_id} ({self.status})"


class WorkerLease(models.Model):
    """One start of a Celery worker process, alive while its heartbeat thread renews
    `renewed_at` (every quarter of `WORKER_LEASE_SECONDS`, by the database's clock).
    Two workers under one node name hold two leases, so neither is taken for the
    other. No foreign key from the runs: a lease outlives nothing, and old ones are
    pruned once no running run names them."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    name = models.CharField(max_length=255)  # the worker's node name (`-n`)
    started_at = models.DateTimeField(db_default=Now())
    renewed_at = models.DateTimeField(db_default=Now())

    class Meta:
        indexes = [models.Index(fields=["name", "renewed_at"], name="worker_lease_name_renewed")]

    def __str__(self):
        return f"{self.name} ({self.pk})"


class CheckpointQuerySet(models.QuerySet):
    def newest_first(self, *, checkpoint_ns: str = "", **thread) -> "CheckpointQuerySet":
        """A thread's checkpoints of one namespace, newest first (`thread` or
        `thread_id`, a value or an `OuterRef`), read from the `checkpoint_latest`
        index whatever the planner's statistics. The namespace is a one-value range
        and the order names it: with `checkpoint_ns = x` PostgreSQL drops the namespace
        from the order (it is a constant), and for a thread holding much of the table
        it walked the primary key backwards instead, through every newer checkpoint of
        other threads until it met this thread's (8 ms for one behind 30,000; 0.04 ms
        from the index)."""
        return self.filter(checkpoint_ns__range=(checkpoint_ns, checkpoint_ns), **thread).order_by("checkpoint_ns", "-id")


class Checkpoint(models.Model):
    """Laid out like LangGraph's checkpoints table; `id` orders them in time."""

    objects = CheckpointQuerySet.as_manager()

    id = models.BigAutoField(primary_key=True)
    # Indexed by the composite indexes below, which lead with it.
    thread = models.ForeignKey(Thread, on_delete=models.DB_CASCADE, related_name="checkpoints", db_index=False)
    checkpoint_ns = models.CharField(max_length=255, blank=True, default="")
    checkpoint_id = models.CharField(max_length=255)
    parent_checkpoint_id = models.CharField(max_length=255, null=True, blank=True)
    checkpoint = models.JSONField(default=dict)
    metadata = models.JSONField(default=dict, blank=True)
    run = models.ForeignKey(Run, null=True, blank=True, on_delete=models.DB_CASCADE, related_name="checkpoints")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["thread", "checkpoint_ns", "id"]
        constraints = [
            models.UniqueConstraint(
                fields=["thread", "checkpoint_ns", "checkpoint_id"], name="unique_checkpoint_per_thread_ns"
            ),
        ]
        indexes = [
            models.Index(fields=["thread", "checkpoint_ns", "-id"], name="checkpoint_latest"),
            # The children of a checkpoint: re-linking them when a run goes costs
            # what the run holds, not what the thread holds.
            models.Index(fields=["thread", "parent_checkpoint_id"], name="checkpoint_parent"),
        ]

    def __str__(self):
        return f"{self.thread_id}/{self.checkpoint_ns}/{self.checkpoint_id}"


class CheckpointWrite(models.Model):
    """A pending write of a checkpoint, keyed like LangGraph's by (task_id, idx).

    It carries its thread and its checkpoint's run, and the database cascades come
    from them, as in LangGraph's Postgres checkpointer (which keys every table by
    thread): deleting a thread or a run removes their writes in one set-based
    cascade, and even a raw `DELETE` of a thread or a run leaves no orphan. The link
    to the checkpoint has no database constraint on purpose: a cascade from the
    checkpoint would fire once per deleted checkpoint (a trigger call per row, most of
    the cost of pruning). Whoever deletes checkpoints without their thread or run
    deletes their writes in the same statement or transaction:
    `threads.services.checkpoints.delete_checkpoints` (keep_latest) and, for the ORM
    (`checkpoint.delete()`, Django's admin), a `pre_delete` signal.
    """

    id = models.BigAutoField(primary_key=True)
    thread = models.ForeignKey(Thread, on_delete=models.DB_CASCADE, related_name="+")
    # The checkpoint's run (null when it has none), so that deleting the run takes them.
    run = models.ForeignKey("Run", null=True, blank=True, on_delete=models.DB_CASCADE, related_name="+")
    # Indexed by the (checkpoint, task_id, idx) unique constraint.
    checkpoint = models.ForeignKey(
        Checkpoint, on_delete=models.DO_NOTHING, db_constraint=False, db_index=False, related_name="writes"
    )
    task_id = models.CharField(max_length=255)
    idx = models.IntegerField()
    channel = models.CharField(max_length=255)
    type = models.CharField(max_length=64, blank=True, default="")
    value = models.JSONField(null=True, blank=True)
    task_path = models.CharField(max_length=255, blank=True, default="")

    @classmethod
    def for_checkpoint(cls, checkpoint: Checkpoint, **fields) -> "CheckpointWrite":
        """A write of `checkpoint`, keyed by its thread and run as the cascades need."""
        return cls(checkpoint=checkpoint, thread_id=checkpoint.thread_id, run_id=checkpoint.run_id, **fields)

    class Meta:
        ordering = ["checkpoint", "task_id", "idx"]
        constraints = [
            models.UniqueConstraint(fields=["checkpoint", "task_id", "idx"], name="unique_checkpoint_write"),
        ]


class ApprovalStatus(models.TextChoices):
    PENDING = "pending"
    APPROVED = "approved"
    DENIED = "denied"
    CANCELLED = "cancelled"
    TIMED_OUT = "timed_out"


class Approval(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    # Indexed by approval_thread_status, which leads with it.
    thread = models.ForeignKey(Thread, on_delete=models.DB_CASCADE, related_name="approvals", db_index=False)
    run = models.ForeignKey(Run, null=True, blank=True, on_delete=models.DB_CASCADE, related_name="approvals")
    tool_name = models.CharField(max_length=200, blank=True, default="")
    payload = models.JSONField(default=dict, blank=True)
    status = models.CharField(max_length=16, choices=ApprovalStatus.choices, default=ApprovalStatus.PENDING)
    expires_at = models.DateTimeField(null=True, blank=True)
    decided_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["created_at"]
        indexes = [
            models.Index(fields=["thread", "status"], name="approval_thread_status"),
            models.Index(fields=["status", "expires_at"], name="approval_status_expiry"),
        ]


class PendingIndex(models.Model):
    """The indexing outbox: a message waiting to be embedded. Written in the
    transaction that creates the message, removed by the transaction that indexes it;
    the task after commit drains it, and `reindex_pending_messages` (beat) catches what
    a broker outage or a lost worker left.

    Keyed by thread, as the checkpoint writes are: the database cascade comes from the
    thread, so deleting a thread (even with a raw `DELETE`) takes its rows in one
    set-based cascade. The link to the message has no database constraint on purpose:
    a cascade from the message would fire a trigger once per deleted message, most of
    the cost of deleting a large thread. A message deleted on its own through the ORM
    (Django's admin) takes its row through a `pre_delete` signal; a row left by any
    other path is harmless (indexing a message that is gone removes its row)."""

    message = models.OneToOneField(
        Message, primary_key=True, on_delete=models.DO_NOTHING, db_constraint=False, related_name="+"
    )
    thread = models.ForeignKey(Thread, on_delete=models.DB_CASCADE, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)


class Embedding(models.Model):
    """A vector per message chunk: the default vector-store backend.

    No foreign keys on purpose: in production the vector store is an external
    system, so its cleanup is an after-commit task, exactly as it would be there.
    """

    id = models.BigAutoField(primary_key=True)
    account_id = models.UUIDField()
    project_id = models.UUIDField()
    thread_id = models.UUIDField()
    message_id = models.UUIDField(null=True, blank=True)
    chunk = models.PositiveIntegerField(default=0)
    text = models.TextField()
    vector = models.JSONField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        indexes = [
            models.Index(fields=["thread_id"], name="embedding_thread"),
            models.Index(fields=["account_id", "project_id"], name="embedding_account_project"),
        ]
        constraints = [
            models.UniqueConstraint(fields=["message_id", "chunk"], name="unique_embedding_chunk"),
        ]
