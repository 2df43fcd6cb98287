from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from .models import COUNT_FIELDS, CleanupState, DeletionKind, DeletionReceipt, DeletionSource


class DeletionCountsSerializer(serializers.Serializer):
    threads = serializers.IntegerField(help_text="Threads removed, sub-threads included.")
    messages = serializers.IntegerField()
    runs = serializers.IntegerField()
    checkpoints = serializers.IntegerField()
    projects = serializers.IntegerField()
    sandboxes = serializers.IntegerField(help_text="Sandboxes sent for deletion at their provider.")
    embeddings = serializers.IntegerField(help_text="Embedding chunks removed (counted when removed).")
    agents = serializers.IntegerField()
    threads_closed = serializers.IntegerField()


class DeletionReceiptSerializer(serializers.ModelSerializer):
    counts = serializers.SerializerMethodField()

    class Meta:
        model = DeletionReceipt
        fields = [
            "id", "operation_id", "created_at", "kind", "source", "actor", "actor_id", "account_id", "root_ids",
            "counts", "cleanup_state", "cleanup_error", "cleanup_attempts", "last_attempt_at",
            "embeddings_removed_at", "completed_at",
        ]
        read_only_fields = fields

    @extend_schema_field(DeletionCountsSerializer)
    def get_counts(self, receipt) -> dict:
        return {name: getattr(receipt, name) for name in COUNT_FIELDS}


class DeletionReceiptPageSerializer(serializers.Serializer):
    count = serializers.IntegerField()
    next = serializers.URLField(allow_null=True)
    previous = serializers.URLField(allow_null=True)
    results = DeletionReceiptSerializer(many=True)


class DeletionQuerySerializer(serializers.Serializer):
    kind = serializers.MultipleChoiceField(choices=DeletionKind.choices, required=False,
                                           help_text="Repeat to match any of several.")
    source = serializers.MultipleChoiceField(choices=DeletionSource.choices, required=False)
    cleanup_state = serializers.ChoiceField(choices=CleanupState.choices, required=False)
    since = serializers.DateTimeField(required=False, help_text="Receipts created at or after (ISO 8601).")
    until = serializers.DateTimeField(required=False, help_text="Receipts created before (ISO 8601).")
    limit = serializers.IntegerField(min_value=1, max_value=500, default=50)
    offset = serializers.IntegerField(min_value=0, max_value=2**31 - 1, default=0)
