"""POST /api/threads/prune — LangGraph's prune threads."""

from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from ..services.pruning import MAX_IDS, STRATEGIES, prune_threads


class ThreadIdField(serializers.UUIDField):
    """A UUID string only: DRF's UUIDField would also turn an integer into a UUID."""

    def to_internal_value(self, data):
        if not isinstance(data, str):
            self.fail("invalid", value=data)
        return super().to_internal_value(data)


class ThreadIdsField(serializers.ListField):
    """The list's length is checked before its items: 1,001 bad ids are one error."""

    def to_internal_value(self, data):
        if isinstance(data, list) and self.max_length is not None and len(data) > self.max_length:
            self.fail("max_length", max_length=self.max_length)
        return super().to_internal_value(data)


class PruneRequestSerializer(serializers.Serializer):
    thread_ids = ThreadIdsField(child=ThreadIdField(), allow_empty=True, max_length=MAX_IDS)
    strategy = serializers.ChoiceField(choices=STRATEGIES, default="delete")


class PruneView(APIView):
    @extend_schema(
        request=PruneRequestSerializer,
        responses=inline_serializer("ThreadPruneResponse", {"pruned_count": serializers.IntegerField()}),
    )
    def post(self, request):
        data = PruneRequestSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        count = prune_threads(user=request.user, thread_ids=data.validated_data["thread_ids"],
                              strategy=data.validated_data["strategy"])
        return Response({"pruned_count": count})
