"""The agent-thread API (camelCase, the Cerca shape): /api/agents/{agent_id}/threads/..."""

from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from agents.selectors import agents_for
from config.errors import Invalid, NotFound
from config.schema import errors
from projects import selectors as tenancy
from projects.models import Project

from .. import services
from ..detail import DEFAULT_TURNS, MAX_MESSAGES, MAX_TURNS, build_detail, load_thread, summary
from ..models import Thread, ThreadStatus
from ..serializers import MAX_INT32, AgentThreadDetailSerializer, AgentThreadListSerializer


class AgentThreadCreateSerializer(serializers.Serializer):
    projectId = serializers.UUIDField()
    instructions = serializers.CharField(required=False, allow_null=True, allow_blank=True)
    model = serializers.CharField(required=False, allow_blank=True, max_length=200, default="")
    tools = serializers.ListField(child=serializers.CharField(), required=False, default=list)
    message = serializers.CharField(required=False, allow_blank=False)


class DetailQuerySerializer(serializers.Serializer):
    # Seqs are 32-bit columns; a bigger cursor is a 422, not a 500 from the database.
    afterSeq = serializers.IntegerField(required=False, min_value=0, max_value=MAX_INT32)
    beforeSeq = serializers.IntegerField(required=False, min_value=1, max_value=MAX_INT32)
    limit = serializers.IntegerField(required=False, min_value=0, max_value=MAX_MESSAGES, default=100)
    beforeTurnSeq = serializers.IntegerField(required=False, min_value=1, max_value=MAX_INT32)
    turnsLimit = serializers.IntegerField(required=False, min_value=0, max_value=MAX_TURNS, default=DEFAULT_TURNS)
    debug = serializers.BooleanField(required=False, default=False)

    def validate(self, attrs):
        if "afterSeq" in attrs and "beforeSeq" in attrs:
            raise serializers.ValidationError({"afterSeq": ["Give afterSeq or beforeSeq, not both."]})
        return attrs


class ListQuerySerializer(serializers.Serializer):
    status = serializers.ChoiceField(choices=ThreadStatus.choices, required=False)
    limit = serializers.IntegerField(required=False, min_value=1, max_value=100, default=20)
    cursor = serializers.UUIDField(required=False, help_text="`nextCursor` of the previous page.")


class TurnRequestSerializer(serializers.Serializer):
    message = serializers.CharField()


class ApprovalDecisionSerializer(serializers.Serializer):
    decision = serializers.ChoiceField(choices=["approve", "deny"])


class AgentThreadView(APIView):
    def agent(self):
        return tenancy.get_visible(agents_for(self.request.user), self.request.user, self.kwargs["agent_id"],
                                   name="agent_id")

    def thread(self, *, write=False):
        agent = self.agent()
        thread_id = tenancy.parse_uuid(self.kwargs["thread_id"], name="thread_id")
        thread = load_thread(thread_id, agent_id=agent.pk)
        if thread is None:
            raise NotFound("Thread not found.")
        if write:
            tenancy.ensure_can_write(self.request.user, thread)
        return thread

    def detail(self, thread_id, status=200, **query):
        thread = load_thread(thread_id)
        if thread is None:
            raise NotFound("Thread not found.")
        return Response(build_detail(thread, **query), status=status)


class AgentThreadsView(AgentThreadView):
    @extend_schema(operation_id="agents_threads_list", parameters=[ListQuerySerializer],
                   responses=AgentThreadListSerializer)
    def get(self, request, agent_id):
        agent = self.agent()
        q = ListQuerySerializer(data=request.query_params)
        q.is_valid(raise_exception=True)
        qs = Thread.objects.filter(agent=agent).order_by("-created_at", "-pk")
        if q.validated_data.get("status"):
            qs = qs.filter(status=q.validated_data["status"])
        if q.validated_data.get("cursor"):
            anchor = Thread.objects.filter(agent=agent, pk=q.validated_data["cursor"]).first()
            if anchor is None:
                raise Invalid("Unknown cursor.", errors={"cursor": ["Unknown cursor."]})
            qs = qs.filter(created_at__lte=anchor.created_at).exclude(created_at=anchor.created_at, pk__gte=anchor.pk)
        limit = q.validated_data["limit"]
        rows = list(qs[: limit + 1])
        more = len(rows) > limit
        rows = rows[:limit]
        return Response({"threads": [summary(t) for t in rows], "nextCursor": str(rows[-1].pk) if more else None,
                         "hasMore": more})

    @extend_schema(request=AgentThreadCreateSerializer, responses={201: AgentThreadDetailSerializer, **errors(402)})
    def post(self, request, agent_id):
        agent = self.agent()
        data = AgentThreadCreateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        v = data.validated_data
        project = tenancy.get_visible(Project.objects.filter(account_id=agent.account_id), request.user,
                                      v["projectId"], name="projectId")
        tenancy.ensure_account_writable(request.user, project.account_id)
        thread = services.open_thread(
            project=project, agent=agent, created_by=request.user, instructions=v.get("instructions"),
            model=v["model"], tools=v["tools"], message=v.get("message"),
        )
        return self.detail(thread.pk, status=201)


class AgentThreadDetailView(AgentThreadView):
    @extend_schema(parameters=[DetailQuerySerializer], responses=AgentThreadDetailSerializer)
    def get(self, request, agent_id, thread_id):
        thread = self.thread()
        q = DetailQuerySerializer(data=request.query_params)
        q.is_valid(raise_exception=True)
        v = q.validated_data
        return Response(build_detail(thread, after_seq=v.get("afterSeq"), before_seq=v.get("beforeSeq"),
                                     limit=v["limit"], before_turn_seq=v.get("beforeTurnSeq"),
                                     turns_limit=v["turnsLimit"], debug=v["debug"]))


class TurnsView(AgentThreadView):
    @extend_schema(request=TurnRequestSerializer, responses={201: AgentThreadDetailSerializer, **errors(409)})
    def post(self, request, agent_id, thread_id):
        thread = self.thread(write=True)
        data = TurnRequestSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        services.start_turn(thread=thread, message=data.validated_data["message"])
        return self.detail(thread.pk, status=201)


class CancelView(AgentThreadView):
    @extend_schema(request=None, responses={200: AgentThreadDetailSerializer, **errors(409)})
    def post(self, request, agent_id, thread_id):
        thread = services.cancel_thread(thread=self.thread(write=True))
        return self.detail(thread.pk)


class CloseView(AgentThreadView):
    @extend_schema(request=None, responses={200: AgentThreadDetailSerializer, **errors(409)})
    def post(self, request, agent_id, thread_id):
        thread = services.close_thread(thread=self.thread(write=True))
        return self.detail(thread.pk)


class ApprovalView(AgentThreadView):
    @extend_schema(request=ApprovalDecisionSerializer, responses={200: AgentThreadDetailSerializer, **errors(409)})
    def post(self, request, agent_id, thread_id, approval_id):
        thread = self.thread(write=True)
        approval_id = tenancy.parse_uuid(approval_id, name="approval_id")
        data = ApprovalDecisionSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        services.resolve_approval(thread=thread, approval_id=approval_id, decision=data.validated_data["decision"])
        return self.detail(thread.pk)
