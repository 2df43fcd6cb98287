"""POST /api/threads/prune — LangGraph's prune threads."""

from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from ..services.pruning import MAX_IDS, STRATEGIES, prune_threads


class PruneRequestSerializer(serializers.Serializer):
    thread_ids = serializers.ListField(child=serializers.UUIDField(), allow_empty=True, max_length=MAX_IDS)
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
