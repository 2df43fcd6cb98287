"""Thread shapes as LangGraph's SDK names them (`thread_id`, snake_case)."""

from rest_framework import serializers

from .models import Thread, ThreadStatus

MAX_INT32 = 2**31 - 1


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
    ttl = serializers.IntegerField(required=False, allow_null=True, min_value=1, max_value=MAX_INT32)


class ThreadUpdateSerializer(serializers.Serializer):
    title = serializers.CharField(required=False, allow_blank=True, max_length=300)
    metadata = serializers.DictField(required=False)
    instructions = serializers.CharField(required=False, allow_null=True, allow_blank=True)
    model = serializers.CharField(required=False, allow_blank=True, max_length=200)
    ttl = serializers.IntegerField(required=False, allow_null=True, min_value=1, max_value=MAX_INT32)


class ThreadFilterSerializer(serializers.Serializer):
    project_id = serializers.UUIDField(required=False)
    agent_id = serializers.UUIDField(required=False)
    status = serializers.ChoiceField(choices=ThreadStatus.choices, required=False)


# --- messages, checkpoints, runs -------------------------------------------------

from .models import Checkpoint, Message, MessageRole, Run, RunStatus  # noqa: E402


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
    run_id = serializers.UUIDField(source="id", read_only=True)
    thread_id = serializers.UUIDField(read_only=True)
    agent_id = serializers.UUIDField(read_only=True, allow_null=True)
    token_usage = serializers.SerializerMethodField()

    class Meta:
        model = Run
        fields = ["run_id", "thread_id", "agent_id", "seq", "status", "runtime", "model", "input", "metadata",
                  "message", "start_message_seq", "end_message_seq", "token_usage", "result", "error",
                  "started_at", "completed_at", "created_at", "updated_at"]
        read_only_fields = fields

    def get_token_usage(self, run) -> dict:
        return {"input_tokens": run.input_tokens, "output_tokens": run.output_tokens}


class RunCreateSerializer(serializers.Serializer):
    agent_id = serializers.UUIDField(required=False, allow_null=True)
    input = serializers.JSONField(required=False, allow_null=True)
    metadata = serializers.DictField(required=False, default=dict)
    runtime = serializers.CharField(required=False, allow_blank=True, max_length=64)
    model = serializers.CharField(required=False, allow_blank=True, max_length=200, default="")


class RunListQuerySerializer(serializers.Serializer):
    status = serializers.ChoiceField(choices=RunStatus.choices, required=False)


class RunsCancelSerializer(serializers.Serializer):
    status = serializers.ChoiceField(choices=["pending", "running", "all"], default="all")


class RunCancelQuerySerializer(serializers.Serializer):
    action = serializers.ChoiceField(choices=["interrupt", "rollback"], default="interrupt")
    # LangGraph's SDK sends `wait`; a cancel here is done when the response comes, so
    # it is accepted (and validated) but changes nothing.
    wait = serializers.BooleanField(required=False, default=False)


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
    subThreads = SubThreadSerializer(many=True)
