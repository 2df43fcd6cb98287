"""`/api/threads`: create, list, get, update, delete a thread."""

from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers, viewsets
from rest_framework.response import Response

from agents.models import Agent
from config.schema import errors
from projects import selectors as tenancy
from projects.models import Project

from .. import selectors, services
from ..serializers import ThreadCreateSerializer, ThreadFilterSerializer, ThreadSerializer, ThreadUpdateSerializer


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
        page = self.paginate_queryset(qs)
        return self.get_paginated_response(ThreadSerializer(page, many=True).data)

    @extend_schema(request=ThreadCreateSerializer, responses={201: ThreadSerializer, **errors(402)})
    def create(self, request):
        data = ThreadCreateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        v = data.validated_data
        project = tenancy.get_visible(Project.objects.all(), request.user, v["project_id"], name="project_id")
        tenancy.ensure_account_writable(request.user, project.account_id)
        agent = None
        if v.get("agent_id"):
            agent = tenancy.get_visible(Agent.objects.all(), request.user, v["agent_id"], name="agent_id")
        parent = None
        if v.get("parent_thread_id"):
            parent = tenancy.get_visible(self.get_queryset(), request.user, v["parent_thread_id"], name="parent_thread_id")
        thread = services.create_thread(
            project=project,
            created_by=request.user,
            agent=agent,
            parent_thread=parent,
            title=v.get("title", ""),
            metadata=v.get("metadata") or {},
            instructions=v.get("instructions"),
            model=v.get("model", ""),
            ttl_minutes=v.get("ttl"),
        )
        return Response(ThreadSerializer(thread).data, status=201)

    def retrieve(self, request, pk=None):
        thread = tenancy.get_visible(self.get_queryset(), request.user, pk, name="thread_id")
        return Response(ThreadSerializer(thread).data)

    @extend_schema(request=ThreadUpdateSerializer)
    def partial_update(self, request, pk=None):
        thread = tenancy.get_visible(self.get_queryset(), request.user, pk, name="thread_id")
        tenancy.ensure_can_write(request.user, thread)
        data = ThreadUpdateSerializer(data=request.data, partial=True)
        data.is_valid(raise_exception=True)
        fields = dict(data.validated_data)
        if "ttl" in fields:
            fields["ttl_minutes"] = fields.pop("ttl")
        thread = services.update_thread(thread=thread, **fields)
        return Response(ThreadSerializer(thread).data)

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
