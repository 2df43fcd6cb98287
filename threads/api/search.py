"""`GET /api/threads/search?q=&project_id=&limit=`: semantic search over the threads
the caller may read, best match first."""

from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from projects import selectors as tenancy
from projects.models import Project

from .. import selectors
from ..serializers import ThreadSerializer
from ..vectorstore import search_threads
from .langgraph import ThreadLangGraphSearchMixin


class SearchQuerySerializer(serializers.Serializer):
    q = serializers.CharField(max_length=2000)
    project_id = serializers.UUIDField(required=False)
    limit = serializers.IntegerField(required=False, min_value=1, max_value=50, default=10)


class ThreadSearchView(ThreadLangGraphSearchMixin, APIView):
    """GET: semantic search (`q`); POST: LangGraph's thread search (filters)."""

    @extend_schema(
        summary="Semantic search over threads",
        parameters=[SearchQuerySerializer],
        responses={
            200: inline_serializer(
                "ThreadSearchResults",
                {
                    "results": inline_serializer(
                        "ThreadSearchResult",
                        {"score": serializers.FloatField(), "text": serializers.CharField(), "thread": ThreadSerializer()},
                        many=True,
                    )
                },
            )
        },
    )
    def get(self, request):
        params = SearchQuerySerializer(data=request.query_params)
        params.is_valid(raise_exception=True)
        v = params.validated_data
        project_id = None
        if v.get("project_id"):
            project_id = tenancy.get_visible(Project.objects.all(), request.user, v["project_id"], name="project_id").pk
        matches = search_threads(
            query=v["q"], account_ids=list(tenancy.account_ids_for(request.user).values_list("account_id", flat=True)),
            project_id=project_id, limit=v["limit"],
        )
        threads = selectors.langgraph_threads(selectors.threads_for(request.user)).in_bulk([m.thread_id for m in matches])
        return Response(
            {
                "results": [
                    {"score": round(m.score, 4), "text": m.text, "thread": ThreadSerializer(threads[m.thread_id]).data}
                    for m in matches
                    if m.thread_id in threads
                ]
            }
        )
