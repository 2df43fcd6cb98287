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
