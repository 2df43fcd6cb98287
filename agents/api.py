"""Agents, their versions, triggers, export/import, and webhooks."""

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework import generics, viewsets
from rest_framework.decorators import action
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

from config.errors import NotFound
from config.schema import errors
from projects import selectors as tenancy
from projects.models import Project
from threads.models import Run, Thread
from threads.serializers import RunSerializer

from . import services
from .models import AgentTrigger
from .selectors import agents_for
from .serializers import (
    AgentCreateSerializer,
    AgentImportSerializer,
    AgentSerializer,
    AgentUpdateSerializer,
    AgentVersionSerializer,
    TriggerCreateSerializer,
    TriggerSerializer,
)


class AgentFilterSerializer(serializers.Serializer):
    account_id = serializers.UUIDField(required=False, help_text="Only this account's agents.")


class AgentViewSet(viewsets.GenericViewSet):
    serializer_class = AgentSerializer

    def get_queryset(self):
        return agents_for(self.request.user)

    def agent(self, pk, *, write=False):
        agent = tenancy.get_visible(self.get_queryset(), self.request.user, pk, name="agent_id")
        if write:
            tenancy.ensure_can_write(self.request.user, agent)
        return agent

    def render(self, pk, status=200):
        return Response(AgentSerializer(self.get_queryset().get(pk=pk)).data, status=status)

    @extend_schema(parameters=[AgentFilterSerializer])
    def list(self, request):
        filters = AgentFilterSerializer(data=request.query_params)
        filters.is_valid(raise_exception=True)
        qs = self.get_queryset()
        if "account_id" in filters.validated_data:
            qs = qs.filter(account_id=filters.validated_data["account_id"])
        page = self.paginate_queryset(qs)
        return self.get_paginated_response(AgentSerializer(page, many=True).data)

    @extend_schema(request=AgentCreateSerializer, responses={201: AgentSerializer, **errors(402)})
    def create(self, request):
        data = AgentCreateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        v = dict(data.validated_data)
        account = tenancy.ensure_account_writable(request.user, v.pop("account_id"))
        agent = services.create_agent(account=account, created_by=request.user, **v)
        return self.render(agent.pk, status=201)

    def retrieve(self, request, pk=None):
        return Response(AgentSerializer(self.agent(pk)).data)

    @extend_schema(request=AgentUpdateSerializer)
    def partial_update(self, request, pk=None):
        agent = self.agent(pk, write=True)
        data = AgentUpdateSerializer(data=request.data, partial=True)
        data.is_valid(raise_exception=True)
        services.update_agent(agent=agent, **data.validated_data)
        return self.render(agent.pk)

    @extend_schema(responses={200: inline_serializer("AgentDeleted", {"message": serializers.CharField()}),
                              **errors(400, 409)})
    def destroy(self, request, pk=None):
        agent = self.agent(pk, write=True)
        services.delete_agent(agent=agent)
        return Response({"message": "Agent deleted successfully"})

    @extend_schema(responses=AgentVersionSerializer(many=True))
    @action(detail=True, methods=["get"])
    def versions(self, request, pk=None):
        """Every version, oldest first, paginated (`limit`, `offset`) as every list."""
        page = self.paginate_queryset(self.agent(pk).versions.order_by("number"))
        return self.get_paginated_response(AgentVersionSerializer(page, many=True).data)

    @extend_schema(responses={(200, "application/json"): OpenApiTypes.OBJECT})
    @action(detail=True, methods=["get"])
    def export(self, request, pk=None):
        return Response(services.export_agent(self.agent(pk)))

    @extend_schema(request=AgentImportSerializer, responses={201: AgentSerializer, **errors(402)})
    @action(detail=False, methods=["post"], url_path="import")
    def import_(self, request):
        data = AgentImportSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        v = data.validated_data
        account = tenancy.ensure_account_writable(request.user, v["account_id"])
        project = None
        if v.get("project_id"):
            project = tenancy.get_visible(Project.objects.filter(account=account), request.user, v["project_id"],
                                          name="project_id")
        agent = services.import_agent(account=account, document=v["document"], created_by=request.user, project=project)
        return self.render(agent.pk, status=201)


class AgentScopedView(APIView):
    def agent(self, request, agent_id, *, write=False):
        agent = tenancy.get_visible(agents_for(request.user), request.user, agent_id, name="agent_id")
        if write:
            tenancy.ensure_can_write(request.user, agent)
        return agent


class TriggerListView(AgentScopedView, generics.GenericAPIView):
    serializer_class = TriggerSerializer  # the page's items; the list is paginated (`limit`, `offset`) as every list

    @extend_schema(responses=TriggerSerializer(many=True))
    def get(self, request, agent_id):
        page = self.paginate_queryset(self.agent(request, agent_id).triggers.order_by("created_at", "id"))
        return self.get_paginated_response(TriggerSerializer(page, many=True).data)

    @extend_schema(request=TriggerCreateSerializer, responses={201: TriggerSerializer, **errors(409)})
    def post(self, request, agent_id):
        agent = self.agent(request, agent_id, write=True)
        data = TriggerCreateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        v = data.validated_data
        thread = project = None
        if v.get("thread_id"):
            thread = tenancy.get_visible(Thread.objects.filter(account=agent.account_id), request.user,
                                         v["thread_id"], name="thread_id")
        if v.get("project_id"):
            project = tenancy.get_visible(Project.objects.filter(account=agent.account_id), request.user,
                                          v["project_id"], name="project_id")
        trigger, secret = services.create_trigger(
            agent=agent, kind=v["kind"], cron=v["cron"], timezone_name=v["timezone"], input=v["input"],
            thread=thread, project=project,
        )
        body = TriggerSerializer(trigger).data
        if secret:
            body["webhook_url"] = request.build_absolute_uri(f"/api/webhooks/{trigger.pk}/{secret}")
        return Response(body, status=201)


class TriggerDetailView(AgentScopedView):
    @extend_schema(responses={200: inline_serializer(
        "TriggerDeleted", {"message": serializers.CharField(), "id": serializers.UUIDField()})})
    def delete(self, request, agent_id, trigger_id):
        agent = self.agent(request, agent_id, write=True)
        triggers = AgentTrigger.objects.filter(agent=agent, pk=tenancy.parse_uuid(trigger_id, name="trigger_id"))
        if not services.delete_triggers(triggers=triggers):
            raise NotFound("Trigger not found.")
        return Response({"message": "Trigger deleted successfully", "id": str(trigger_id)})


class WebhookView(APIView):
    """The secret URL of a webhook trigger: no login, the secret is the credential."""

    authentication_classes = []
    permission_classes = [AllowAny]

    @extend_schema(request=OpenApiTypes.OBJECT, responses={202: RunSerializer, **errors(404, 409, 422, 413)})
    def post(self, request, trigger_id, secret):
        trigger_id = tenancy.parse_uuid(trigger_id, name="trigger_id")
        payload = request.data if isinstance(request.data, dict) else {}
        run = services.fire_webhook(trigger_id=trigger_id, secret=secret, input=payload or None)
        fresh = Run.objects.filter(pk=run.pk).first()  # the thread may be deleted meanwhile
        if fresh is None:
            raise NotFound("Thread not found: it was deleted.")
        return Response(RunSerializer(fresh).data, status=202)
