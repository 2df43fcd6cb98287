"""Thread shapes as LangGraph's SDK names them (`thread_id`, snake_case)."""

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from .models import Thread, ThreadStatus
from .selectors import LANGGRAPH_STATUSES, langgraph_status


class InterruptSerializer(serializers.Serializer):
    """LangGraph's interrupt: a pending approval (`id` is the approval's id)."""

    value = serializers.JSONField()
    id = serializers.CharField()

MAX_INT32 = 2**31 - 1


class ThreadSerializer(serializers.ModelSerializer):
    """A thread in LangGraph's shape (`thread_id, created_at, updated_at,
    state_updated_at, metadata, status, values, interrupts, config, ttl`) plus this
    service's own fields. `status` is LangGraph's (idle, busy, interrupted, error);
    `lifecycle` the richer one (idle, running, awaiting, closed). Built from a
    `selectors.langgraph_threads` queryset (no query per thread)."""

    thread_id = serializers.UUIDField(source="id", read_only=True)
    status = serializers.SerializerMethodField()
    lifecycle = serializers.ChoiceField(source="status", choices=ThreadStatus.choices, read_only=True)
    values = serializers.SerializerMethodField()
    interrupts = serializers.SerializerMethodField()
    config = serializers.SerializerMethodField()
    state_updated_at = serializers.SerializerMethodField()
    account_id = serializers.UUIDField(read_only=True)
    project_id = serializers.UUIDField(read_only=True)
    agent_id = serializers.UUIDField(read_only=True, allow_null=True)
    parent_thread_id = serializers.UUIDField(read_only=True, allow_null=True)
    created_by = serializers.IntegerField(source="created_by_id", read_only=True, allow_null=True)
    ttl = serializers.IntegerField(source="ttl_minutes", read_only=True, allow_null=True,
                                   help_text="Minutes of inactivity before the TTL sweeper prunes it.")
    ttl_strategy = serializers.CharField(read_only=True, help_text="delete, keep_latest, or blank: the default.")

    class Meta:
        model = Thread
        fields = [
            "thread_id", "created_at", "updated_at", "state_updated_at", "metadata", "status", "values", "interrupts",
            "config", "ttl", "ttl_strategy", "expires_at",
            "lifecycle", "account_id", "project_id", "agent_id", "parent_thread_id", "created_by",
            "title", "depth", "instructions", "model", "tools", "result", "error",
            "last_activity_at", "completed_at",
        ]
        read_only_fields = fields

    @extend_schema_field(serializers.ChoiceField(choices=LANGGRAPH_STATUSES))
    def get_status(self, thread) -> str:
        return langgraph_status(thread.status, getattr(thread, "last_run_status", None))

    @extend_schema_field(serializers.DictField())
    def get_values(self, thread) -> dict:
        values = (getattr(thread, "lg_checkpoint", None) or {}).get("channel_values")
        return values if isinstance(values, dict) else {}

    @extend_schema_field(serializers.DictField(child=InterruptSerializer(many=True)))
    def get_interrupts(self, thread) -> dict:
        interrupts = {}
        for approval in getattr(thread, "pending_approvals", []):
            interrupts.setdefault(str(approval.run_id), []).append(interrupt_json(approval))
        return interrupts

    @extend_schema_field(serializers.DictField())
    def get_config(self, thread) -> dict:
        return {"configurable": {"thread_id": str(thread.pk)}}

    @extend_schema_field(serializers.DateTimeField())
    def get_state_updated_at(self, thread):
        return serializers.DateTimeField().to_representation(getattr(thread, "state_updated_at", None) or thread.updated_at)


def interrupt_json(approval) -> dict:
    return {"value": {"tool_name": approval.tool_name, **(approval.payload or {})}, "id": str(approval.pk)}


TTL_STRATEGIES = ("delete", "keep_latest")


class TTLField(serializers.Field):
    """LangGraph's `ttl`: minutes, or `{"ttl": minutes, "strategy": "delete"|"keep_latest"}`;
    null removes it. Becomes `(minutes, strategy)`."""

    default_error_messages = {"invalid": f"ttl must be minutes (1 to {MAX_INT32:,}) or an object with ttl (minutes) "
                                         "and strategy."}

    def to_internal_value(self, data):
        strategy = ""
        if isinstance(data, dict):
            unknown = set(data) - {"ttl", "strategy"}
            strategy = data.get("strategy")
            if unknown or (strategy is not None and (not isinstance(strategy, str) or strategy not in TTL_STRATEGIES)):
                self.fail("invalid")
            strategy = strategy or ""
            data = data.get("ttl")
        if isinstance(data, bool) or not isinstance(data, (int, float)) or not 1 <= data <= MAX_INT32 \
                or data != int(data):
            self.fail("invalid")
        return int(data), strategy

    def to_representation(self, value):
        return value


@extend_schema_field({"oneOf": [{"type": "integer", "minimum": 1, "maximum": MAX_INT32},
                                {"type": "object", "properties": {
                                    "ttl": {"type": "integer", "minimum": 1, "maximum": MAX_INT32},
                                    "strategy": {"type": "string", "enum": [*TTL_STRATEGIES, None], "nullable": True}},
                                 "required": ["ttl"], "additionalProperties": False}], "nullable": True})
class DocumentedTTLField(TTLField):
    pass


class ThreadCreateSerializer(serializers.Serializer):
    """LangGraph's body (`thread_id, metadata, if_exists, supersteps, ttl`) plus this
    service's fields. Without `project_id` the thread goes to the account's default
    project (the account: `X-Account-Id`, else the caller's only writable account)."""

    thread_id = serializers.UUIDField(required=False, allow_null=True)
    if_exists = serializers.ChoiceField(choices=["raise", "do_nothing"], required=False, default="raise")
    project_id = serializers.UUIDField(required=False, allow_null=True)
    agent_id = serializers.UUIDField(required=False, allow_null=True)
    parent_thread_id = serializers.UUIDField(required=False, allow_null=True)
    title = serializers.CharField(required=False, allow_blank=True, max_length=300, default="")
    metadata = serializers.DictField(required=False, default=dict, allow_null=True)
    graph_id = serializers.CharField(required=False, allow_blank=True, max_length=64)
    instructions = serializers.CharField(required=False, allow_null=True, allow_blank=True)
    model = serializers.CharField(required=False, allow_blank=True, max_length=200, default="")
    ttl = DocumentedTTLField(required=False, allow_null=True)
    supersteps = serializers.ListField(child=serializers.DictField(), required=False, allow_null=True, max_length=100)


class ThreadUpdateSerializer(serializers.Serializer):
    """`metadata` is merged into the thread's (LangGraph's PATCH): the keys given
    replace theirs, the others stay."""

    title = serializers.CharField(required=False, allow_blank=True, max_length=300)
    metadata = serializers.DictField(required=False)
    instructions = serializers.CharField(required=False, allow_null=True, allow_blank=True)
    model = serializers.CharField(required=False, allow_blank=True, max_length=200)
    ttl = DocumentedTTLField(required=False, allow_null=True)


class ThreadFilterSerializer(serializers.Serializer):
    project_id = serializers.UUIDField(required=False)
    agent_id = serializers.UUIDField(required=False)
    status = serializers.ChoiceField(choices=ThreadStatus.choices, required=False)


# --- messages, checkpoints, runs -------------------------------------------------

from drf_spectacular.utils import extend_schema_field  # noqa: E402

from .models import MAX_AFTER_SECONDS, Checkpoint, Message, MessageRole, MultitaskStrategy, Run, RunStatus  # noqa: E402
from .streams.events import STREAM_MODES  # noqa: E402


class ContentBlockSerializer(serializers.Serializer):
    type = serializers.CharField()
    text = serializers.CharField(required=False, allow_blank=True)


class MessageSerializer(serializers.ModelSerializer):
    message_id = serializers.UUIDField(source="id", read_only=True)
    thread_id = serializers.UUIDField(read_only=True)
    run_id = serializers.UUIDField(read_only=True, allow_null=True)
    agent_id = serializers.UUIDField(read_only=True, allow_null=True)

    class Meta:
        model = Message
        fields = ["message_id", "thread_id", "seq", "role", "content", "run_id", "agent_id", "token_count", "created_at"]
        read_only_fields = fields


class MessageCreateSerializer(serializers.Serializer):
    role = serializers.ChoiceField(choices=MessageRole.choices)
    content = serializers.ListField(child=serializers.DictField(), allow_empty=False, min_length=1)
    run_id = serializers.UUIDField(required=False, allow_null=True)


class MessageListQuerySerializer(serializers.Serializer):
    after_seq = serializers.IntegerField(required=False, min_value=0, default=0)
    limit = serializers.IntegerField(required=False, min_value=1, max_value=500, default=100)

    def validate(self, attrs):
        if "offset" in self.initial_data:  # the other lists' paging: refused rather than ignored
            raise serializers.ValidationError(
                {"offset": ["Messages are paged by after_seq: pass a page's next_after_seq back as after_seq."]})
        return attrs


class CheckpointWriteSerializer(serializers.Serializer):
    task_id = serializers.CharField(max_length=255)
    idx = serializers.IntegerField(min_value=-MAX_INT32 - 1, max_value=MAX_INT32)
    channel = serializers.CharField(max_length=255)
    type = serializers.CharField(max_length=64, required=False, allow_blank=True, default="")
    value = serializers.JSONField(required=False, allow_null=True)
    task_path = serializers.CharField(max_length=255, required=False, allow_blank=True, default="")


class CheckpointSerializer(serializers.ModelSerializer):
    thread_id = serializers.UUIDField(read_only=True)
    run_id = serializers.UUIDField(read_only=True, allow_null=True)
    writes = CheckpointWriteSerializer(many=True, read_only=True)

    class Meta:
        model = Checkpoint
        fields = ["thread_id", "checkpoint_ns", "checkpoint_id", "parent_checkpoint_id", "checkpoint", "metadata",
                  "run_id", "writes", "created_at"]
        read_only_fields = fields


class CheckpointListQuerySerializer(serializers.Serializer):
    checkpoint_ns = serializers.CharField(max_length=255, required=False, allow_blank=True)


class CheckpointCreateSerializer(serializers.Serializer):
    checkpoint_ns = serializers.CharField(max_length=255, required=False, allow_blank=True, default="")
    checkpoint_id = serializers.CharField(max_length=255)
    parent_checkpoint_id = serializers.CharField(max_length=255, required=False, allow_null=True, allow_blank=True)
    checkpoint = serializers.DictField()
    metadata = serializers.DictField(required=False, default=dict)
    run_id = serializers.UUIDField(required=False, allow_null=True)
    writes = CheckpointWriteSerializer(many=True, required=False, default=list)


class RunSerializer(serializers.ModelSerializer):
    """LangGraph's run object (`run_id, thread_id, assistant_id, created_at,
    updated_at, status, metadata, multitask_strategy, kwargs, cancel_reason`), and
    ours besides."""

    run_id = serializers.UUIDField(source="id", read_only=True)
    thread_id = serializers.UUIDField(read_only=True)
    assistant_id = serializers.SerializerMethodField()
    cancel_reason = serializers.SerializerMethodField(
        help_text="LangGraph's reason for a cancel. Not recorded here: always null (an interrupted run's "
                  "`status` says it was cancelled).")
    agent_id = serializers.UUIDField(read_only=True, allow_null=True)
    token_usage = serializers.SerializerMethodField()

    class Meta:
        model = Run
        fields = ["run_id", "thread_id", "assistant_id", "created_at", "updated_at", "status", "metadata",
                  "multitask_strategy", "kwargs", "cancel_reason", "start_after", "agent_id", "seq", "runtime",
                  "model", "input", "message",
                  "start_message_seq", "end_message_seq", "token_usage", "result", "error", "started_at",
                  "completed_at"]
        read_only_fields = fields

    def get_assistant_id(self, run) -> str:
        """The agent the run is bound to, else the assistant (graph) named at creation, else its runtime."""
        if run.agent_id:
            return str(run.agent_id)
        return str((run.kwargs or {}).get("assistant_id") or run.runtime)

    def get_cancel_reason(self, run) -> str | None:
        return None

    def get_token_usage(self, run) -> dict:
        return {"input_tokens": run.input_tokens, "output_tokens": run.output_tokens}


@extend_schema_field({"oneOf": [{"type": "string", "enum": list(STREAM_MODES)},
                               {"type": "array", "items": {"type": "string", "enum": list(STREAM_MODES)},
                                "minItems": 1, "maxItems": len(STREAM_MODES)}]})
class StreamModeField(serializers.Field):
    """A stream mode or a list of them (LangGraph's `stream_mode`)."""

    default_error_messages = {"invalid": "A stream mode or a list of stream modes, among: {modes}."}

    def __init__(self, **kwargs):
        self.modes = STREAM_MODES
        super().__init__(**kwargs)

    def get_value(self, dictionary):
        if hasattr(dictionary, "getlist"):  # query string: ?stream_mode=a&stream_mode=b
            return [v for v in dictionary.getlist(self.field_name) if v] or serializers.empty
        return super().get_value(dictionary)

    def to_internal_value(self, data):
        values = [data] if isinstance(data, str) else data
        if not isinstance(values, list) or not values or len(values) > len(self.modes) or any(
                not isinstance(v, str) or v not in self.modes for v in values):
            self.fail("invalid", modes=", ".join(self.modes))
        return list(dict.fromkeys(values))

    def to_representation(self, value):
        return value


@extend_schema_field({"oneOf": [{"type": "string", "enum": ["*"]},
                               {"type": "array", "items": {"type": "string"}, "maxItems": 100}]})
class NodeListField(serializers.Field):
    """`interrupt_before`/`interrupt_after`: `"*"` or a list of node names."""

    default_error_messages = {"invalid": "'*' or a list of node names."}

    def to_internal_value(self, data):
        if data == "*":
            return data
        if not isinstance(data, list) or len(data) > 100 or any(not isinstance(v, str) or len(v) > 200 for v in data):
            self.fail("invalid")
        return data

    def to_representation(self, value):
        return value


class WebhookURLField(serializers.URLField):
    """A run's `webhook`: an http(s) URL that does not name a private network (see
    `threads.services.webhooks.refusal`)."""

    def __init__(self, **kwargs):
        super().__init__(required=False, allow_null=True, max_length=2000, **kwargs)

    def to_internal_value(self, data):
        from .services.webhooks import refusal

        url = super().to_internal_value(data)
        reason = refusal(url)
        if reason:
            raise serializers.ValidationError(reason)
        return url


class RunCreateSerializer(serializers.Serializer):
    """The body of LangGraph's run creation (`POST /threads/{id}/runs`, `/runs/stream`,
    `/runs/wait`, and the stateless `/runs...`). Everything but `input`, `metadata`
    and the multitask strategy is kept in the run's `kwargs`."""

    assistant_id = serializers.CharField(required=False, allow_null=True, max_length=200,
                                         help_text="An assistant (agent) id, or a graph (runtime) name.")
    agent_id = serializers.UUIDField(required=False, allow_null=True)
    input = serializers.JSONField(required=False, allow_null=True)
    command = serializers.DictField(required=False, allow_null=True)
    config = serializers.DictField(required=False, allow_null=True)
    context = serializers.DictField(required=False, allow_null=True)
    metadata = serializers.DictField(required=False, allow_null=True)
    stream_mode = StreamModeField(required=False, allow_null=True)
    stream_subgraphs = serializers.BooleanField(required=False, allow_null=True)
    stream_resumable = serializers.BooleanField(required=False, allow_null=True)
    interrupt_before = NodeListField(required=False, allow_null=True)
    interrupt_after = NodeListField(required=False, allow_null=True)
    feedback_keys = serializers.ListField(child=serializers.CharField(max_length=200), required=False,
                                          allow_null=True, max_length=100)
    webhook = WebhookURLField()
    checkpoint = serializers.DictField(required=False, allow_null=True)
    checkpoint_id = serializers.CharField(required=False, allow_null=True, max_length=255)
    checkpoint_during = serializers.BooleanField(required=False, allow_null=True)
    durability = serializers.ChoiceField(choices=["sync", "async", "exit"], required=False, allow_null=True)
    multitask_strategy = serializers.ChoiceField(choices=MultitaskStrategy.choices, required=False, allow_null=True)
    if_not_exists = serializers.ChoiceField(choices=["create", "reject"], required=False, allow_null=True)
    on_disconnect = serializers.ChoiceField(choices=["cancel", "continue"], required=False, allow_null=True)
    on_completion = serializers.ChoiceField(choices=["delete", "keep"], required=False, allow_null=True)
    after_seconds = serializers.FloatField(required=False, allow_null=True, min_value=0, max_value=MAX_AFTER_SECONDS)
    strict_resume = serializers.BooleanField(required=False, allow_null=True)
    langsmith_tracer = serializers.DictField(required=False, allow_null=True)
    runtime = serializers.CharField(required=False, allow_blank=True, max_length=64)
    model = serializers.CharField(required=False, allow_blank=True, max_length=200, default="")

    # Kept as the run's `kwargs` when given (None means "not given", as the SDK sends).
    KWARGS = ("assistant_id", "command", "config", "context", "stream_mode", "stream_subgraphs", "stream_resumable",
              "interrupt_before", "interrupt_after", "feedback_keys", "webhook", "checkpoint", "checkpoint_id",
              "checkpoint_during", "durability", "if_not_exists", "on_disconnect", "on_completion",
              "after_seconds", "strict_resume")

    def run_kwargs(self) -> dict:
        v = self.validated_data
        return {key: v[key] for key in self.KWARGS if v.get(key) is not None}


class RunListQuerySerializer(serializers.Serializer):
    limit = serializers.IntegerField(required=False, min_value=1, max_value=1000, default=10)
    offset = serializers.IntegerField(required=False, min_value=0, max_value=10**9, default=0)
    status = serializers.ChoiceField(choices=RunStatus.choices, required=False)
    select = serializers.ListField(child=serializers.ChoiceField(choices=RunSerializer.Meta.fields), required=False,
                                   help_text="LangGraph's `select`: only these fields of each run.")


class RunsCancelSerializer(serializers.Serializer):
    status = serializers.ChoiceField(choices=["pending", "running", "all"], default="all")


class GlobalRunsCancelSerializer(serializers.Serializer):
    """`POST /runs/cancel`: `thread_id` + `run_ids`, or `status` (with `thread_id` that
    thread's runs, without it all your threads')."""

    thread_id = serializers.UUIDField(required=False, allow_null=True)
    run_ids = serializers.ListField(child=serializers.UUIDField(), required=False, allow_null=True, max_length=1000)
    status = serializers.ChoiceField(choices=["pending", "running", "all"], required=False, allow_null=True)

    def validate(self, attrs):
        if attrs.get("status"):
            if attrs.get("run_ids"):
                raise serializers.ValidationError({"status": ["Give either status or thread_id and run_ids."]})
        elif not attrs.get("thread_id") or not attrs.get("run_ids"):
            raise serializers.ValidationError({"run_ids": ["Give thread_id and run_ids, or status."]})
        return attrs


class RunCancelQuerySerializer(serializers.Serializer):
    action = serializers.ChoiceField(choices=["interrupt", "rollback"], default="interrupt")
    # LangGraph's SDK sends `wait`: with it, the response comes once the run stopped.
    wait = serializers.BooleanField(required=False, default=False)


class JoinStreamQuerySerializer(serializers.Serializer):
    stream_mode = StreamModeField(required=False)
    cancel_on_disconnect = serializers.BooleanField(required=False, default=False)


class ThreadStreamQuerySerializer(serializers.Serializer):
    stream_mode = serializers.MultipleChoiceField(choices=["run_modes", "lifecycle", "state_update"],
                                                  required=False)
class RunDeleteQuerySerializer(serializers.Serializer):
    force = serializers.BooleanField(required=False, default=False)


# --- agent threads (camelCase): the documented response shapes ---------------------
# The responses are built by `threads.detail` (constant queries); these serializers
# describe them in the OpenAPI schema, field for field.

from .tools import AVAILABLE_TOOLS  # noqa: E402


class AgentThreadSummarySerializer(serializers.Serializer):
    id = serializers.UUIDField()
    agentId = serializers.UUIDField(allow_null=True)
    status = serializers.ChoiceField(choices=ThreadStatus.choices)
    depth = serializers.IntegerField()
    parentThreadId = serializers.UUIDField(allow_null=True)
    scheduleId = serializers.UUIDField(allow_null=True)
    scheduleSeq = serializers.IntegerField(allow_null=True)
    instructions = serializers.CharField(allow_null=True)
    model = serializers.CharField()
    result = serializers.CharField(allow_null=True)
    error = serializers.CharField(allow_null=True)
    createdAt = serializers.DateTimeField()
    updatedAt = serializers.DateTimeField()
    completedAt = serializers.DateTimeField(allow_null=True)


class AgentThreadListSerializer(serializers.Serializer):
    threads = AgentThreadSummarySerializer(many=True)
    nextCursor = serializers.UUIDField(allow_null=True)
    hasMore = serializers.BooleanField()


class CompiledContextSerializer(serializers.Serializer):
    enabledTools = serializers.ListField(child=serializers.ChoiceField(choices=AVAILABLE_TOOLS))
    systemPrompt = serializers.CharField(allow_null=True)
    turnId = serializers.UUIDField(allow_null=True)


class ContextWindowSerializer(serializers.Serializer):
    compacted = serializers.BooleanField()
    compactionThroughSeq = serializers.IntegerField(allow_null=True)
    contextWindowTokens = serializers.IntegerField()
    llmEstimatedTokens = serializers.IntegerField()
    model = serializers.CharField(allow_null=True)
    rawEstimatedTokens = serializers.IntegerField()


class AgentThreadMessageSerializer(serializers.Serializer):
    seq = serializers.IntegerField()
    content = ContentBlockSerializer(many=True)
    createdAt = serializers.DateTimeField()


class TokenUsageSerializer(serializers.Serializer):
    inputTokens = serializers.IntegerField()
    outputTokens = serializers.IntegerField()


class AgentThreadTurnSerializer(serializers.Serializer):
    id = serializers.UUIDField()
    threadId = serializers.UUIDField()
    seq = serializers.IntegerField()
    startMessageSeq = serializers.IntegerField(allow_null=True)
    endMessageSeq = serializers.IntegerField(allow_null=True)
    startedAt = serializers.DateTimeField(allow_null=True)
    completedAt = serializers.DateTimeField(allow_null=True)
    result = serializers.CharField(allow_null=True)
    error = serializers.CharField(allow_null=True)
    message = serializers.CharField(allow_null=True)
    tokenUsage = TokenUsageSerializer()


class SubThreadSerializer(serializers.Serializer):
    id = serializers.UUIDField()
    parentThreadId = serializers.UUIDField()
    toolUseId = serializers.CharField(allow_null=True)
    messageCount = serializers.IntegerField()
    stepCount = serializers.IntegerField()
    model = serializers.CharField(allow_null=True)
    result = serializers.CharField(allow_null=True)
    scheduleId = serializers.UUIDField(allow_null=True)
    scheduleSeq = serializers.IntegerField(allow_null=True)
    createdAt = serializers.DateTimeField()
    completedAt = serializers.DateTimeField(allow_null=True)


class AgentThreadDetailSerializer(AgentThreadSummarySerializer):
    message = serializers.CharField(allow_null=True)
    lastTurnStatus = serializers.ChoiceField(choices=["completed", "failed"], allow_null=True)
    activeTurnModel = serializers.CharField(allow_null=True)
    tools = serializers.ListField(child=serializers.ChoiceField(choices=AVAILABLE_TOOLS))
    externalToolNamespaces = serializers.ListField(child=serializers.CharField())
    compactionSummary = serializers.CharField(allow_null=True)
    compactionThroughSeq = serializers.IntegerField(allow_null=True)
    composedSystemPrompt = serializers.CharField(allow_null=True)
    compiledContext = CompiledContextSerializer(allow_null=True)
    contextWindow = ContextWindowSerializer()
    messages = AgentThreadMessageSerializer(many=True)
    messageCursor = serializers.IntegerField(allow_null=True)
    hasMoreMessages = serializers.BooleanField()
    turns = AgentThreadTurnSerializer(many=True)
    turnCursor = serializers.IntegerField(allow_null=True)
    hasMoreTurns = serializers.BooleanField()
    subThreads = SubThreadSerializer(many=True)


# --- LangGraph: search, state, history ------------------------------------------------

from .selectors import THREAD_SORT_FIELDS  # noqa: E402

THREAD_SELECT_FIELDS = ("thread_id", "created_at", "updated_at", "state_updated_at", "metadata", "config", "context",
                        "status", "values", "interrupts")


class ThreadSearchSerializer(serializers.Serializer):
    metadata = serializers.DictField(required=False, allow_null=True)
    values = serializers.DictField(required=False, allow_null=True)
    ids = serializers.ListField(child=serializers.UUIDField(), required=False, allow_null=True, max_length=1000)
    status = serializers.ChoiceField(choices=LANGGRAPH_STATUSES, required=False, allow_null=True)
    limit = serializers.IntegerField(required=False, min_value=1, max_value=1000, default=10)
    offset = serializers.IntegerField(required=False, min_value=0, max_value=10**9, default=0)
    sort_by = serializers.ChoiceField(choices=list(THREAD_SORT_FIELDS), required=False, default="created_at")
    sort_order = serializers.ChoiceField(choices=["asc", "desc"], required=False, default="desc")
    select = serializers.ListField(child=serializers.ChoiceField(choices=THREAD_SELECT_FIELDS), required=False,
                                   allow_null=True)
    extract = serializers.DictField(child=serializers.CharField(max_length=200), required=False, allow_null=True)

    def validate_extract(self, value):
        if value and len(value) > 10:
            raise serializers.ValidationError("At most 10 paths.")
        return value


class ThreadCountSerializer(serializers.Serializer):
    metadata = serializers.DictField(required=False, allow_null=True)
    values = serializers.DictField(required=False, allow_null=True)
    status = serializers.ChoiceField(choices=LANGGRAPH_STATUSES, required=False, allow_null=True)


class CheckpointRefSerializer(serializers.Serializer):
    """LangGraph's checkpoint reference."""

    thread_id = serializers.CharField(required=False, allow_null=True)
    checkpoint_ns = serializers.CharField(required=False, allow_blank=True, default="", max_length=255)
    checkpoint_id = serializers.CharField(required=False, allow_null=True, max_length=255)
    checkpoint_map = serializers.DictField(required=False, allow_null=True)


class ThreadTaskSerializer(serializers.Serializer):
    id = serializers.CharField()
    name = serializers.CharField()
    error = serializers.CharField(allow_null=True)
    interrupts = InterruptSerializer(many=True)
    checkpoint = CheckpointRefSerializer(allow_null=True)
    state = serializers.DictField(allow_null=True)
    result = serializers.DictField(allow_null=True)


class ThreadStateSerializer(serializers.Serializer):
    """LangGraph's `ThreadState` (documentation of what `state_json` builds). Every field
    is present unless the request's `select` names a subset."""

    values = serializers.DictField(required=False)
    next = serializers.ListField(child=serializers.CharField(), required=False)
    checkpoint = CheckpointRefSerializer(required=False)
    metadata = serializers.DictField(required=False)
    created_at = serializers.DateTimeField(allow_null=True, required=False)
    parent_checkpoint = CheckpointRefSerializer(allow_null=True, required=False)
    tasks = ThreadTaskSerializer(many=True, required=False)
    interrupts = InterruptSerializer(many=True, required=False)


STATE_FIELDS = ("values", "next", "checkpoint", "metadata", "created_at", "parent_checkpoint", "tasks", "interrupts")
STATE_SELECT = r"^(%s|values\.[^.\s]{1,100})$" % "|".join(STATE_FIELDS)


def state_select_field():
    """`select`: a state field, or `values.<key>` for one state key."""
    return serializers.ListField(
        child=serializers.RegexField(STATE_SELECT, max_length=107, error_messages={
            "invalid": f"Not a state field: one of {', '.join(STATE_FIELDS)}, or values.<key>."}),
        required=False, allow_null=True, max_length=50,
        help_text="Only these fields (`values.<key>`: one state key).")


class StateQuerySerializer(serializers.Serializer):
    subgraphs = serializers.BooleanField(required=False, default=False)
    select = state_select_field()


class StateAtCheckpointSerializer(serializers.Serializer):
    checkpoint = CheckpointRefSerializer()
    subgraphs = serializers.BooleanField(required=False, default=False)
    select = state_select_field()


class StateUpdateSerializer(serializers.Serializer):
    values = serializers.JSONField(allow_null=True)
    as_node = serializers.CharField(required=False, allow_null=True, allow_blank=True, max_length=200)
    checkpoint = CheckpointRefSerializer(required=False, allow_null=True)
    checkpoint_id = serializers.CharField(required=False, allow_null=True, max_length=255)


class StateUpdateResponseSerializer(serializers.Serializer):
    checkpoint = CheckpointRefSerializer()


class HistoryQuerySerializer(serializers.Serializer):
    """`GET .../history`."""

    limit = serializers.IntegerField(required=False, min_value=1, max_value=1000, default=10)
    before = serializers.CharField(required=False, max_length=255, help_text="A checkpoint id.")
    select = state_select_field()


class HistorySerializer(HistoryQuerySerializer):
    """`POST .../history`: the query's fields, `before` also as a reference, and filters."""

    before = serializers.JSONField(required=False, allow_null=True, help_text="A checkpoint id or a checkpoint reference.")
    metadata = serializers.DictField(required=False, allow_null=True)
    checkpoint = CheckpointRefSerializer(required=False, allow_null=True)

    def validate_before(self, value):
        if isinstance(value, dict):  # a checkpoint reference, or a config (`{"configurable": {...}}`)
            configurable = value.get("configurable")
            value = value.get("checkpoint_id") or (
                configurable.get("checkpoint_id") if isinstance(configurable, dict) else None)
            if value is None:
                raise serializers.ValidationError("A checkpoint reference names its checkpoint_id.")
        if value is not None and not isinstance(value, str):
            raise serializers.ValidationError("A checkpoint id or a checkpoint reference.")
        return value or None


def _iso(value):
    return serializers.DateTimeField().to_representation(value) if value else None


def state_json(*, thread, checkpoint, approvals=(), runtime: str | None = None) -> dict:
    """A checkpoint (None: the empty state) as LangGraph's `ThreadState`. `approvals`:
    the pending approvals, shown as the state's interrupts and as a task of the run
    that waits (`next` names its runtime)."""
    from .selectors import channel_values
    from .services.state import checkpoint_config

    interrupts = [interrupt_json(a) for a in approvals]
    tasks = [{"id": str(a.run_id), "name": runtime or "", "error": None, "interrupts": [interrupt_json(a)],
              "checkpoint": None, "state": None, "result": None} for a in approvals]
    parent = None
    if checkpoint is not None and checkpoint.parent_checkpoint_id:
        parent = {"thread_id": str(thread.pk), "checkpoint_ns": checkpoint.checkpoint_ns,
                  "checkpoint_id": checkpoint.parent_checkpoint_id, "checkpoint_map": {}}
    return {
        "values": channel_values(checkpoint),
        "next": [runtime] if approvals and runtime else [],
        "checkpoint": checkpoint_config(checkpoint, thread_id=thread.pk),
        "metadata": (checkpoint.metadata or {}) if checkpoint is not None else {},
        "created_at": _iso(checkpoint.created_at) if checkpoint is not None else None,
        "parent_checkpoint": parent,
        "tasks": tasks,
        "interrupts": interrupts,
    }


def select_fields(body: dict, select) -> dict:
    """LangGraph's `select`: only these top-level fields (`values.<key>`: one state key)."""
    if not select:
        return body
    out = {}
    for name in select:
        if name.startswith("values.") and isinstance(body.get("values"), dict):
            out.setdefault("values", {})
            key = name.split(".", 1)[1]
            if key in body["values"]:
                out["values"][key] = body["values"][key]
        elif name in body:
            out[name] = body[name]
    return out
