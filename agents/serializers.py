from rest_framework import serializers

from .models import AgentTrigger, AgentVersion, TriggerKind
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


class TriggerCreateSerializer(TriggerDocumentSerializer):
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
