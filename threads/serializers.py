"""Thread shapes as LangGraph's SDK names them (`thread_id`, snake_case)."""

from rest_framework import serializers

from .models import Thread, ThreadStatus


class ThreadSerializer(serializers.ModelSerializer):
    thread_id = serializers.UUIDField(source="id", read_only=True)
    account_id = serializers.UUIDField(read_only=True)
    project_id = serializers.UUIDField(read_only=True)
    agent_id = serializers.UUIDField(read_only=True, allow_null=True)
    parent_thread_id = serializers.UUIDField(read_only=True, allow_null=True)
    created_by = serializers.IntegerField(source="created_by_id", read_only=True, allow_null=True)
    ttl = serializers.IntegerField(source="ttl_minutes", read_only=True, allow_null=True)

    class Meta:
        model = Thread
        fields = [
            "thread_id", "account_id", "project_id", "agent_id", "parent_thread_id", "created_by",
            "title", "status", "depth", "metadata", "instructions", "model", "tools", "result", "error",
            "ttl", "expires_at", "last_activity_at", "completed_at", "created_at", "updated_at",
        ]
        read_only_fields = fields


class ThreadCreateSerializer(serializers.Serializer):
    project_id = serializers.UUIDField()
    agent_id = serializers.UUIDField(required=False, allow_null=True)
    parent_thread_id = serializers.UUIDField(required=False, allow_null=True)
    title = serializers.CharField(required=False, allow_blank=True, max_length=300, default="")
    metadata = serializers.DictField(required=False, default=dict)
    instructions = serializers.CharField(required=False, allow_null=True, allow_blank=True)
    model = serializers.CharField(required=False, allow_blank=True, max_length=200, default="")
    ttl = serializers.IntegerField(required=False, allow_null=True, min_value=1)


class ThreadUpdateSerializer(serializers.Serializer):
    title = serializers.CharField(required=False, allow_blank=True, max_length=300)
    metadata = serializers.DictField(required=False)
    instructions = serializers.CharField(required=False, allow_null=True, allow_blank=True)
    model = serializers.CharField(required=False, allow_blank=True, max_length=200)
    ttl = serializers.IntegerField(required=False, allow_null=True, min_value=1)


class ThreadFilterSerializer(serializers.Serializer):
    project_id = serializers.UUIDField(required=False)
    agent_id = serializers.UUIDField(required=False)
    status = serializers.ChoiceField(choices=ThreadStatus.choices, required=False)


# --- messages, checkpoints, runs -------------------------------------------------

from drf_spectacular.utils import extend_schema_field  # noqa: E402

from .models import Checkpoint, Message, MessageRole, MultitaskStrategy, Run, RunStatus  # noqa: E402
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
    content = serializers.ListField(child=serializers.DictField(), allow_empty=False)
    run_id = serializers.UUIDField(required=False, allow_null=True)


class MessageListQuerySerializer(serializers.Serializer):
    after_seq = serializers.IntegerField(required=False, min_value=0, default=0)
    limit = serializers.IntegerField(required=False, min_value=1, max_value=500, default=100)


class CheckpointWriteSerializer(serializers.Serializer):
    task_id = serializers.CharField(max_length=255)
    idx = serializers.IntegerField()
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
    updated_at, status, metadata, multitask_strategy, kwargs`), and ours besides."""

    run_id = serializers.UUIDField(source="id", read_only=True)
    thread_id = serializers.UUIDField(read_only=True)
    assistant_id = serializers.SerializerMethodField()
    agent_id = serializers.UUIDField(read_only=True, allow_null=True)
    token_usage = serializers.SerializerMethodField()

    class Meta:
        model = Run
        fields = ["run_id", "thread_id", "assistant_id", "created_at", "updated_at", "status", "metadata",
                  "multitask_strategy", "kwargs", "start_after", "agent_id", "seq", "runtime", "model", "input",
                  "message",
                  "start_message_seq", "end_message_seq", "token_usage", "result", "error", "started_at",
                  "completed_at"]
        read_only_fields = fields

    def get_assistant_id(self, run) -> str:
        """The agent the run is bound to, else the assistant (graph) named at creation, else its runtime."""
        if run.agent_id:
            return str(run.agent_id)
        return str((run.kwargs or {}).get("assistant_id") or run.runtime)

    def get_token_usage(self, run) -> dict:
        return {"input_tokens": run.input_tokens, "output_tokens": run.output_tokens}


@extend_schema_field({"oneOf": [{"type": "string", "enum": list(STREAM_MODES)},
                               {"type": "array", "items": {"type": "string", "enum": list(STREAM_MODES)}}]})
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


class RunCreateSerializer(serializers.Serializer):
    """The body of LangGraph's run creation (`POST /threads/{id}/runs`, `/runs/stream`,
    `/runs/wait`, and the stateless `/runs...`). Everything but `input`, `metadata`
    and the multitask strategy is kept in the run's `kwargs`."""

    assistant_id = serializers.CharField(required=False, allow_null=True, max_length=200)
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
    webhook = serializers.URLField(required=False, allow_null=True, max_length=2000)
    checkpoint = serializers.DictField(required=False, allow_null=True)
    checkpoint_id = serializers.CharField(required=False, allow_null=True, max_length=255)
    checkpoint_during = serializers.BooleanField(required=False, allow_null=True)
    durability = serializers.ChoiceField(choices=["sync", "async", "exit"], required=False, allow_null=True)
    multitask_strategy = serializers.ChoiceField(choices=MultitaskStrategy.choices, required=False, allow_null=True)
    if_not_exists = serializers.ChoiceField(choices=["create", "reject"], required=False, allow_null=True)
    on_disconnect = serializers.ChoiceField(choices=["cancel", "continue"], required=False, allow_null=True)
    on_completion = serializers.ChoiceField(choices=["delete", "keep"], required=False, allow_null=True)
    after_seconds = serializers.FloatField(required=False, allow_null=True, min_value=0, max_value=31_536_000)
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


class RunsCancelSerializer(serializers.Serializer):
    status = serializers.ChoiceField(choices=["pending", "running", "all"], default="all")


class GlobalRunsCancelSerializer(serializers.Serializer):
    """`POST /runs/cancel`: `thread_id` + `run_ids`, or `status` (all your threads)."""

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
