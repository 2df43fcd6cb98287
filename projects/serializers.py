from rest_framework import serializers

from .models import Account, Project


class AccountSerializer(serializers.ModelSerializer):
    role = serializers.CharField(read_only=True)

    class Meta:
        model = Account
        fields = ["id", "name", "role", "thread_limit", "agent_limit", "created_at"]


class ProjectSerializer(serializers.ModelSerializer):
    account_id = serializers.UUIDField()

    class Meta:
        model = Project
        fields = ["id", "account_id", "name", "description", "created_at", "updated_at"]
        read_only_fields = ["id", "created_at", "updated_at"]


class ProjectUpdateSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=200, required=False)
    description = serializers.CharField(required=False, allow_blank=True)
