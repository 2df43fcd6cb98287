from rest_framework import serializers

from threads.serializers import StreamModeField, WebhookURLField

from .models import AgentTrigger, AgentVersion, TriggerKind
from .selectors import CRON_SORT_FIELDS
from .services import public_metadata


class AgentSerializer(serializers.Serializer):
    id = serializers.UUIDField()
    account_id = serializers.UUIDField()
    name = serializers.CharField()
    description = serializers.CharField()
    is_default = serializers.BooleanField()
    metadata = serializers.DictField()
    current_version = serializers.IntegerField()
    system_prompt = serializers.CharField(allow_null=True)
    model = serializers.CharField(allow_null=True)
    tools = serializers.JSONField()
    mcps = serializers.JSONField()
    created_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField()


class AgentCreateSerializer(serializers.Serializer):
    account_id = serializers.UUIDField()
    name = serializers.CharField(max_length=200)
    description = serializers.CharField(required=False, allow_blank=True, default="")
    system_prompt = serializers.CharField(allow_blank=True)
    model = serializers.CharField(max_length=200)
    tools = serializers.ListField(child=serializers.CharField(), required=False, default=list)
    mcps = serializers.ListField(required=False, default=list)
    is_default = serializers.BooleanField(required=False, default=False)
    metadata = serializers.DictField(required=False, default=dict)

    def validate_metadata(self, value):
        """`is_system` / `is_suna_default` mark platform agents: the API never sets them."""
        return public_metadata(value)


class AgentUpdateSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=200, required=False)
    description = serializers.CharField(required=False, allow_blank=True)
    system_prompt = serializers.CharField(required=False, allow_blank=True)
    model = serializers.CharField(max_length=200, required=False)
    tools = serializers.ListField(child=serializers.CharField(), required=False)
    mcps = serializers.ListField(required=False)
    is_default = serializers.BooleanField(required=False)
    metadata = serializers.DictField(required=False)


class AgentVersionSerializer(serializers.ModelSerializer):
    class Meta:
        model = AgentVersion
        fields = ["id", "number", "system_prompt", "model", "tools", "mcps", "created_at"]


class TriggerSerializer(serializers.ModelSerializer):
    agent_id = serializers.UUIDField(read_only=True)
    thread_id = serializers.UUIDField(read_only=True, allow_null=True)
    project_id = serializers.UUIDField(read_only=True, allow_null=True)

    class Meta:
        model = AgentTrigger
        fields = ["id", "agent_id", "kind", "cron", "timezone", "input", "thread_id", "project_id", "is_active",
                  "next_fire_at", "last_fired_at", "fire_count", "created_at"]


class TriggerDocumentSerializer(serializers.Serializer):
    kind = serializers.ChoiceField(choices=TriggerKind.choices)
    cron = serializers.CharField(max_length=120, required=False, allow_blank=True, default="")
    timezone = serializers.CharField(max_length=64, required=False, default="UTC")
    input = serializers.DictField(required=False, default=dict)
    is_active = serializers.BooleanField(required=False, default=True)  # a paused schedule stays paused


class TriggerCreateSerializer(TriggerDocumentSerializer):
    is_active = None  # an export's field: a new trigger is active
    thread_id = serializers.UUIDField(required=False, allow_null=True)
    project_id = serializers.UUIDField(required=False, allow_null=True)


class VersionDocumentSerializer(serializers.Serializer):
    number = serializers.IntegerField(min_value=1, max_value=2**31 - 1, required=False)
    system_prompt = serializers.CharField(required=False, allow_blank=True, default="")
    model = serializers.CharField(max_length=200)
    tools = serializers.ListField(child=serializers.CharField(), required=False, default=list)
    mcps = serializers.ListField(required=False, default=list)


class AgentDocumentSerializer(serializers.Serializer):
    """The export document, as import takes it back. Without `versions`, the top-level
    `system_prompt, model, tools, mcps` make version 1."""

    name = serializers.CharField(max_length=200)
    description = serializers.CharField(required=False, allow_blank=True, default="")
    system_prompt = serializers.CharField(required=False, allow_blank=True, default="")
    model = serializers.CharField(max_length=200, required=False)
    tools = serializers.ListField(child=serializers.CharField(), required=False, default=list)
    mcps = serializers.ListField(required=False, default=list)
    metadata = serializers.DictField(required=False, default=dict)
    versions = VersionDocumentSerializer(many=True, required=False)
    triggers = TriggerDocumentSerializer(many=True, required=False, default=list)

    def validate(self, data):
        if not data.get("versions"):
            if not data.get("model"):
                raise serializers.ValidationError({"versions": ["Give the versions, or at least a model."]})
            data["versions"] = [{k: data[k] for k in ("system_prompt", "model", "tools", "mcps")}]
        return data


class AgentImportSerializer(serializers.Serializer):
    account_id = serializers.UUIDField()
    project_id = serializers.UUIDField(required=False, allow_null=True)
    document = AgentDocumentSerializer()


# --- LangGraph's assistants: an assistant is an agent --------------------------------

ASSISTANT_SORT_FIELDS = {"assistant_id": "id", "graph_id": "graph_id", "name": "name", "created_at": "created_at",
                         "updated_at": "updated_at"}
ASSISTANT_SELECT_FIELDS = ("assistant_id", "graph_id", "name", "description", "config", "context", "created_at",
                           "updated_at", "metadata", "version")


def graph_of(graph_id: str | None) -> str:
    from django.conf import settings

    return graph_id or settings.DEFAULT_RUNTIME


class AssistantSerializer(serializers.Serializer):
    """LangGraph's `Assistant` from an `agents_for` row (the current version's
    `graph_id`, `config`, `context` annotated), plus `account_id` and `is_default`."""

    assistant_id = serializers.UUIDField(source="id")
    graph_id = serializers.SerializerMethodField()
    config = serializers.DictField()
    context = serializers.DictField()
    created_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField()
    metadata = serializers.DictField()
    version = serializers.IntegerField(source="current_version")
    name = serializers.CharField()
    description = serializers.CharField(allow_null=True)
    account_id = serializers.UUIDField(allow_null=True)  # null: a graph's default assistant
    is_default = serializers.BooleanField()

    def get_graph_id(self, agent) -> str:
        return graph_of(agent.graph_id)


class AssistantVersionSerializer(serializers.Serializer):
    """LangGraph's `AssistantVersion`: one version of an agent."""

    assistant_id = serializers.UUIDField(source="agent_id")
    graph_id = serializers.SerializerMethodField()
    config = serializers.DictField()
    context = serializers.DictField()
    created_at = serializers.DateTimeField()
    metadata = serializers.SerializerMethodField()
    version = serializers.IntegerField(source="number")
    name = serializers.SerializerMethodField()
    description = serializers.SerializerMethodField()  # null for a graph's default assistant

    def get_graph_id(self, version) -> str:
        return graph_of(version.graph_id)

    def get_metadata(self, version) -> dict:
        return version.metadata

    def get_name(self, version) -> str:
        return version.agent.name

    def get_description(self, version) -> str | None:
        return version.agent.description


class AssistantConfigSerializer(serializers.Serializer):
    """`config` and `context` of an assistant: `config.configurable` is an object, and
    a model it names (`configurable.model` or `context.model`, when a string: it
    becomes the agent's model) has at most 200 characters, as an agent's."""

    def validate_config(self, value):
        configurable = value.get("configurable") if value is not None else None
        if configurable is not None and not isinstance(configurable, dict):  # [] too, not only a truthy list
            raise serializers.ValidationError("configurable must be an object.")
        return value

    def validate(self, data):
        configurable = (data.get("config") or {}).get("configurable") or {}
        for where, model in (("config", configurable.get("model")), ("context", (data.get("context") or {}).get("model"))):
            if isinstance(model, str) and len(model) > 200:
                raise serializers.ValidationError({where: ["model may have at most 200 characters."]})
        return data


class AssistantCreateSerializer(AssistantConfigSerializer):
    graph_id = serializers.CharField(max_length=64, allow_null=True, required=False)
    config = serializers.DictField(required=False, allow_null=True)
    context = serializers.DictField(required=False, allow_null=True)
    metadata = serializers.DictField(required=False, allow_null=True)
    assistant_id = serializers.UUIDField(required=False, allow_null=True)
    if_exists = serializers.ChoiceField(choices=["raise", "do_nothing"], required=False, default="raise")
    name = serializers.CharField(max_length=200, required=False, allow_null=True)
    description = serializers.CharField(required=False, allow_null=True, allow_blank=True)

    def validate_metadata(self, value):
        return public_metadata(value)


class AssistantUpdateSerializer(AssistantConfigSerializer):
    graph_id = serializers.CharField(max_length=64, required=False)
    config = serializers.DictField(required=False)
    context = serializers.DictField(required=False)
    metadata = serializers.DictField(required=False)
    name = serializers.CharField(max_length=200, required=False)
    description = serializers.CharField(required=False, allow_blank=True, allow_null=True)


class AssistantSearchSerializer(serializers.Serializer):
    metadata = serializers.DictField(required=False, allow_null=True)
    graph_id = serializers.CharField(max_length=64, required=False, allow_null=True)
    name = serializers.CharField(max_length=200, required=False, allow_null=True)
    limit = serializers.IntegerField(required=False, min_value=1, max_value=1000, default=10)
    offset = serializers.IntegerField(required=False, min_value=0, max_value=10**9, default=0)
    sort_by = serializers.ChoiceField(choices=list(ASSISTANT_SORT_FIELDS), required=False, default="created_at")
    sort_order = serializers.ChoiceField(choices=["asc", "desc"], required=False, default="desc")
    select = serializers.ListField(child=serializers.ChoiceField(choices=ASSISTANT_SELECT_FIELDS), required=False,
                                   allow_null=True)


class AssistantCountSerializer(serializers.Serializer):
    metadata = serializers.DictField(required=False, allow_null=True)
    graph_id = serializers.CharField(max_length=64, required=False, allow_null=True)
    name = serializers.CharField(max_length=200, required=False, allow_null=True)


class AssistantVersionsQuerySerializer(serializers.Serializer):
    metadata = serializers.DictField(required=False, allow_null=True)
    limit = serializers.IntegerField(required=False, min_value=1, max_value=1000, default=10)
    offset = serializers.IntegerField(required=False, min_value=0, max_value=10**9, default=0)


class AssistantLatestSerializer(serializers.Serializer):
    version = serializers.IntegerField(min_value=1, max_value=2**31 - 1)


class AssistantDeleteQuerySerializer(serializers.Serializer):
    delete_threads = serializers.BooleanField(required=False, default=False)


class GraphSchemaSerializer(serializers.Serializer):
    graph_id = serializers.CharField()
    input_schema = serializers.DictField(allow_null=True)
    output_schema = serializers.DictField(allow_null=True)
    state_schema = serializers.DictField(allow_null=True)
    config_schema = serializers.DictField(allow_null=True)
    context_schema = serializers.DictField(allow_null=True)
# --- LangGraph crons --------------------------------------------------------------

class CronSerializer(serializers.Serializer):
    """LangGraph's `Cron` shape of a schedule trigger."""

    cron_id = serializers.UUIDField(source="id")
    assistant_id = serializers.UUIDField(source="agent_id")
    thread_id = serializers.UUIDField(allow_null=True)
    on_run_completed = serializers.SerializerMethodField()
    end_time = serializers.DateTimeField(allow_null=True)
    schedule = serializers.CharField(source="cron")
    timezone = serializers.CharField()
    created_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField()
    payload = serializers.SerializerMethodField()
    user_id = serializers.SerializerMethodField()
    next_run_date = serializers.DateTimeField(source="next_fire_at", allow_null=True)
    metadata = serializers.DictField()
    enabled = serializers.BooleanField(source="is_active")

    def get_on_run_completed(self, trigger) -> str | None:
        return trigger.on_run_completed or None

    def get_payload(self, trigger) -> dict:
        """The body of the runs it starts."""
        return {"assistant_id": str(trigger.agent_id), "input": trigger.input, **trigger.payload}

    def get_user_id(self, trigger) -> str | None:
        return str(trigger.created_by_id) if trigger.created_by_id is not None else None


class CronOptionsSerializer(serializers.Serializer):
    """What a cron's runs get, and when it stops (LangGraph's body fields)."""

    input = serializers.JSONField(required=False, allow_null=True)
    metadata = serializers.DictField(required=False, allow_null=True)
    config = serializers.DictField(required=False, allow_null=True)
    context = serializers.DictField(required=False, allow_null=True)
    webhook = WebhookURLField()
    interrupt_before = serializers.JSONField(required=False, allow_null=True, help_text="'*' or a list of node names")
    interrupt_after = serializers.JSONField(required=False, allow_null=True, help_text="'*' or a list of node names")
    end_time = serializers.DateTimeField(required=False, allow_null=True)
    enabled = serializers.BooleanField(required=False, allow_null=True)
    timezone = serializers.CharField(required=False, allow_null=True, max_length=64)
    stream_mode = StreamModeField(required=False, allow_null=True)
    stream_subgraphs = serializers.BooleanField(required=False, allow_null=True)
    stream_resumable = serializers.BooleanField(required=False, allow_null=True)
    durability = serializers.ChoiceField(choices=["sync", "async", "exit"], required=False, allow_null=True)
    checkpoint_during = serializers.BooleanField(required=False, allow_null=True)


class ThreadCronCreateSerializer(CronOptionsSerializer):
    assistant_id = serializers.CharField(max_length=200)
    schedule = serializers.CharField(max_length=120)
    multitask_strategy = serializers.ChoiceField(choices=["reject", "interrupt", "rollback", "enqueue"],
                                                 required=False, allow_null=True)


class CronCreateSerializer(ThreadCronCreateSerializer):
    on_run_completed = serializers.ChoiceField(choices=["delete", "keep"], required=False, allow_null=True)


class CronUpdateSerializer(CronOptionsSerializer):
    schedule = serializers.CharField(max_length=120, required=False)
    on_run_completed = serializers.ChoiceField(choices=["delete", "keep"], required=False, allow_null=True)


class CronCountSerializer(serializers.Serializer):
    assistant_id = serializers.UUIDField(required=False, allow_null=True)
    thread_id = serializers.UUIDField(required=False, allow_null=True)
    metadata = serializers.DictField(required=False, allow_null=True)


class CronSearchSerializer(CronCountSerializer):
    enabled = serializers.BooleanField(required=False, allow_null=True)
    limit = serializers.IntegerField(required=False, min_value=1, max_value=1000, default=10)
    offset = serializers.IntegerField(required=False, min_value=0, max_value=10**9, default=0)
    sort_by = serializers.ChoiceField(choices=list(CRON_SORT_FIELDS), required=False, allow_null=True)
    sort_order = serializers.ChoiceField(choices=["asc", "desc"], required=False, allow_null=True)
    select = serializers.ListField(child=serializers.ChoiceField(choices=list(CronSerializer().fields) + ["now"]),
                                   required=False, allow_null=True, max_length=20)
