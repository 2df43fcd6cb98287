"""LangGraph's crons (`/runs/crons`): schedule triggers of an agent (an assistant),
in LangGraph's paths, bodies and `Cron` shape. Thin views over `agents.services`."""

from django.db.models import F
from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.generics import GenericAPIView
from rest_framework.response import Response

from config.errors import NotFound
from config.schema import errors, selectable
from projects import selectors as tenancy
from threads.selectors import threads_for
from threads.serializers import select_fields

from . import services
from .models import Agent, AgentTrigger
from .selectors import CRON_SORT_FIELDS, crons_for
from .serializers import (
    CronCountSerializer,
    CronCreateSerializer,
    CronSearchSerializer,
    CronSerializer,
    CronUpdateSerializer,
    ThreadCronCreateSerializer,
)


class CronView(GenericAPIView):
    serializer_class = CronSerializer
    queryset = AgentTrigger.objects.none()  # for the schema; reads go through `crons_for`
    pagination_class = None  # LangGraph's search is a plain list (limit/offset in the body)

    def body(self, serializer_class, *, partial=False) -> dict:
        data = serializer_class(data=self.request.data, partial=partial)
        data.is_valid(raise_exception=True)
        return data.validated_data

    def assistant(self, assistant_id) -> Agent:
        agent = tenancy.get_visible(Agent.objects.all(), self.request.user, assistant_id, name="assistant_id")
        tenancy.ensure_can_write(self.request.user, agent)
        return agent

    def create(self, v: dict, *, agent: Agent, thread=None, project=None):
        options = {k: v.get(k) for k in services.CRON_RUN_OPTIONS}
        cron = services.create_cron(
            agent=agent, schedule=v["schedule"], thread=thread, project=project, input=v.get("input"),
            metadata=v.get("metadata"), options=options, end_time=v.get("end_time"),
            enabled=v.get("enabled") is not False, timezone_name=v.get("timezone"),
            on_run_completed=v.get("on_run_completed"), created_by=self.request.user,
        )
        return Response(CronSerializer(cron).data, status=201)


class ThreadCronsView(CronView):
    @extend_schema(request=ThreadCronCreateSerializer, responses={201: CronSerializer, **errors(409)},
                   summary="Create a cron that runs an assistant on this thread")
    def post(self, request, thread_id):
        thread = tenancy.get_visible(threads_for(request.user), request.user, thread_id, name="thread_id")
        tenancy.ensure_can_write(request.user, thread)
        v = self.body(ThreadCronCreateSerializer)
        agent = self.assistant(v["assistant_id"])
        if agent.account_id != thread.account_id:
            raise NotFound("Assistant not found.")
        return self.create(v, agent=agent, thread=thread)


class CronsView(CronView):
    @extend_schema(request=CronCreateSerializer, responses={201: CronSerializer},
                   summary="Create a cron that runs an assistant on a new thread each time")
    def post(self, request):
        v = self.body(CronCreateSerializer)
        return self.create(v, agent=self.assistant(v["assistant_id"]))


class CronSearchView(CronView):
    @extend_schema(request=CronSearchSerializer,
                   responses={200: selectable(CronSerializer, "CronSearchResult",
                                              now=serializers.DateTimeField(help_text="Only with `select`."))(many=True)},
                   summary="Search crons")
    def post(self, request):
        v = self.body(CronSearchSerializer)
        qs = crons_for(request.user, assistant_id=v.get("assistant_id"), thread_id=v.get("thread_id"),
                       enabled=v.get("enabled"), metadata=v.get("metadata"))
        field = F(CRON_SORT_FIELDS[v.get("sort_by") or "created_at"])
        # Empty values (a paused cron's next run, a thread-less cron's thread) last
        # ascending, first descending: PostgreSQL's order, on every database.
        descending = (v.get("sort_order") or "desc") == "desc"
        order = field.desc(nulls_first=True) if descending else field.asc(nulls_last=True)
        rows = qs.order_by(order, "id")[v["offset"]: v["offset"] + v["limit"]]
        data = CronSerializer(rows, many=True).data
        if v.get("select"):
            now = timezone.now()
            data = [select_fields({**row, "now": now}, v["select"]) for row in data]
        return Response(data)


class CronCountView(CronView):
    @extend_schema(request=CronCountSerializer, responses={200: OpenApiTypes.INT}, summary="Count crons")
    def post(self, request):
        v = self.body(CronCountSerializer)
        return Response(crons_for(request.user, assistant_id=v.get("assistant_id"), thread_id=v.get("thread_id"),
                                  metadata=v.get("metadata")).count())


class CronDetailView(CronView):
    def cron(self):
        cron_id = tenancy.parse_uuid(self.kwargs["cron_id"], name="cron_id")
        cron = crons_for(self.request.user).select_related("agent").filter(pk=cron_id).first()
        if cron is None:
            raise NotFound("Cron not found.")
        tenancy.ensure_can_write(self.request.user, cron.agent)
        return cron

    @extend_schema(request=CronUpdateSerializer, responses={200: CronSerializer}, summary="Update a cron")
    def patch(self, request, cron_id):
        cron = self.cron()
        v = self.body(CronUpdateSerializer, partial=True)
        fields = {k: val for k, val in v.items() if val is not None or k == "end_time"}
        return Response(CronSerializer(services.update_cron(cron=cron, **fields)).data)

    @extend_schema(responses={204: None}, summary="Delete a cron (its schedule stops)")
    def delete(self, request, cron_id):
        services.delete_cron(cron=self.cron())
        return Response(status=204)
