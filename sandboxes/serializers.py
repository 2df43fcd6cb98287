from rest_framework import serializers

from .models import Sandbox


class SandboxSerializer(serializers.ModelSerializer):
    project_id = serializers.UUIDField(read_only=True, allow_null=True)
    account_id = serializers.UUIDField(read_only=True, allow_null=True)

    class Meta:
        model = Sandbox
        fields = [
            "id", "project_id", "account_id", "provider", "external_id", "state", "attempts", "last_error",
            "last_attempt_at", "deletion_requested_at", "deleted_at", "created_at", "updated_at",
        ]
        read_only_fields = fields
