"""`/api/threads`: create, list, get, update, delete a thread — LangGraph's thread
shape and bodies (`threads/serializers.py`), this service's rules underneath."""

from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from rest_framework import serializers, viewsets
from rest_framework.response import Response

from agents.models import Agent
from config.errors import NotFound
from config.schema import errors
from projects import selectors as tenancy
from projects.models import Project

from .. import selectors, services
from ..serializers import ThreadCreateSerializer, ThreadFilterSerializer, ThreadSerializer, ThreadUpdateSerializer

ACCOUNT_HEADER_PARAMETER = OpenApiParameter(
    tenancy.ACCOUNT_HEADER, str, OpenApiParameter.HEADER, required=False,
    description="The account a thread without `project_id` goes to (its default project). Needed only when "
                "the caller can write to several accounts.",
)


def render_thread(request, thread_id, status=200) -> Response:
    """A thread (visible to the caller) in LangGraph's shape, in two queries."""
    thread = selectors.langgraph_threads(selectors.threads_for(request.user).filter(pk=thread_id)).first()
    if thread is None:  # deleted meanwhile (e.g. a sub-thread whose parent was just deleted)
        raise NotFound("Thread not found.")
    return Response(ThreadSerializer(thread).data, status=status)


class ThreadViewSet(viewsets.GenericViewSet):
    serializer_class = ThreadSerializer

    def get_queryset(self):
        return selectors.threads_for(self.request.user)

    @extend_schema(parameters=[ThreadFilterSerializer])
    def list(self, request):
        filters = ThreadFilterSerializer(data=request.query_params)
        filters.is_valid(raise_exception=True)
        qs = self.get_queryset()
        for key, value in filters.validated_data.items():
            qs = qs.filter(**{key: value})
        page = self.paginate_queryset(selectors.langgraph_threads(qs))
        return self.get_paginated_response(ThreadSerializer(page, many=True).data)

    @extend_schema(request=ThreadCreateSerializer, responses={201: ThreadSerializer, 200: ThreadSerializer, **errors(402, 409)},
                   parameters=[ACCOUNT_HEADER_PARAMETER])
    def create(self, request):
        data = ThreadCreateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        v = data.validated_data
        project = account = None
        if v.get("project_id"):
            project = tenancy.get_visible(Project.objects.all(), request.user, v["project_id"], name="project_id")
            tenancy.ensure_account_writable(request.user, project.account_id)
        else:
            account = tenancy.account_for_new_object(request.user, request.headers.get(tenancy.ACCOUNT_HEADER))
        agent = None
        if v.get("agent_id"):
            agent = tenancy.get_visible(Agent.objects.all(), request.user, v["agent_id"], name="agent_id")
        parent = None
        if v.get("parent_thread_id"):
            parent = tenancy.get_visible(self.get_queryset(), request.user, v["parent_thread_id"], name="parent_thread_id")
        metadata = dict(v.get("metadata") or {})
        if v.get("graph_id"):
            metadata["graph_id"] = v["graph_id"]
        ttl_minutes, ttl_strategy = v.get("ttl") or (None, "")
        thread = services.create_thread(
            project=project,
            account=account,
            thread_id=v.get("thread_id"),
            if_exists=v["if_exists"],
            created_by=request.user,
            agent=agent,
            parent_thread=parent,
            title=v.get("title", ""),
            metadata=metadata,
            instructions=v.get("instructions"),
            model=v.get("model", ""),
            ttl_minutes=ttl_minutes,
            ttl_strategy=ttl_strategy,
            supersteps=v.get("supersteps"),
        )
        if thread.existed:
            # do_nothing: the existing thread, if the caller may see it. Another
            # account's is not found, as everywhere (a 409 would say whose it is not).
            if not selectors.threads_for(request.user).filter(pk=thread.pk).exists():
                raise NotFound("Thread not found.")
            return render_thread(request, thread.pk)
        return render_thread(request, thread.pk, status=201)

    @extend_schema(parameters=[OpenApiParameter("include", str, required=False,
                                                description="LangGraph's extra fields (`ttl`): always included.")])
    def retrieve(self, request, pk=None):
        thread = tenancy.get_visible(self.get_queryset(), request.user, pk, name="thread_id")
        return render_thread(request, thread.pk)

    @extend_schema(request=ThreadUpdateSerializer, responses={200: ThreadSerializer, 204: None})
    def partial_update(self, request, pk=None):
        thread = tenancy.get_visible(self.get_queryset(), request.user, pk, name="thread_id")
        tenancy.ensure_can_write(request.user, thread)
        data = ThreadUpdateSerializer(data=request.data, partial=True)
        data.is_valid(raise_exception=True)
        fields = dict(data.validated_data)
        if "metadata" in fields:
            fields["metadata_merge"] = fields.pop("metadata")
        if "ttl" in fields:
            fields["ttl_minutes"], fields["ttl_strategy"] = fields.pop("ttl") or (None, "")
        thread = services.update_thread(thread=thread, **fields)
        if request.headers.get("Prefer") == "return=minimal":
            return Response(status=204)
        return render_thread(request, thread.pk)

    @extend_schema(
        responses={
            200: inline_serializer(
                "ThreadDeleted", {"message": serializers.CharField(), "thread_id": serializers.UUIDField()}
            )
        }
    )
    def destroy(self, request, pk=None):
        thread = tenancy.get_visible(self.get_queryset(), request.user, pk, name="thread_id")
        tenancy.ensure_can_write(request.user, thread)
        services.delete_thread(thread=thread)
        return Response({"message": "Thread deleted successfully", "thread_id": str(thread.pk)})
