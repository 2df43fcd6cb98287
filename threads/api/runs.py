"""Messages, checkpoints and runs of a thread (snake_case, LangGraph's shapes)."""

from django.db import transaction
from django.db.models import Prefetch
from drf_spectacular.utils import PolymorphicProxySerializer, extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.generics import GenericAPIView
from rest_framework.response import Response

from agents.models import Agent
from agents.selectors import resolve_assistant
from config.errors import Invalid, NotFound
from config.schema import errors, selectable
from projects import selectors as tenancy

from .. import selectors, services
from ..models import Checkpoint, CheckpointWrite, MultitaskStrategy, Run
from ..serializers import (
    CheckpointCreateSerializer,
    CheckpointListQuerySerializer,
    CheckpointSerializer,
    CheckpointWriteSerializer,
    MessageCreateSerializer,
    MessageListQuerySerializer,
    MessageSerializer,
    RunCancelQuerySerializer,
    RunCreateSerializer,
    RunDeleteQuerySerializer,
    RunListQuerySerializer,
    RunSerializer,
    RunsCancelSerializer,
    select_fields,
)
from ..streams.bus import BUS_ERRORS, get_bus, run_log


def resume_point(run: Run) -> str | None:
    """The id of the last event a resumed run sent before its interrupt, read in the
    resuming transaction (before its executor starts): its stream and wait follow
    from there. None (from the start) when the log is gone or the bus unreachable."""
    try:
        return get_bus().last_id(run_log(run.pk))
    except BUS_ERRORS:
        return None


def run_path(run: Run, suffix: str = "") -> str:
    """The run's path in the API (`suffix`: one of its sub-resources, `stream`, `join`)."""
    return f"/api/threads/{run.thread_id}/runs/{run.pk}" + (f"/{suffix}" if suffix else "")


def located(response, request, run: Run, suffix: str = ""):
    """The response to a run's creation, with where the run is: `Content-Location` the
    run (the LangGraph SDK's `on_run_created` reads its thread and run ids there), and
    `Location` where its answer continues (`stream`, `join`; the run itself)."""
    response["Location"] = request.build_absolute_uri(run_path(run, suffix))
    response["Content-Location"] = request.build_absolute_uri(run_path(run))
    return response


class ThreadScopedView(GenericAPIView):
    """Resolves `thread_id` from the path: 422 malformed, 404 absent or invisible."""

    def thread(self, *, write: bool = False, thread_id=None):
        """The path's thread (or the one `thread_id` names)."""
        thread = tenancy.get_visible(selectors.threads_for(self.request.user), self.request.user,
                                     self.kwargs["thread_id"] if thread_id is None else thread_id, name="thread_id")
        if write:
            tenancy.ensure_can_write(self.request.user, thread)
        return thread

    def run_of(self, thread, run_id):
        """The run a posted message or checkpoint refers to: it must be this thread's (422)."""
        if not run_id:
            return None
        run = Run.objects.filter(pk=run_id, thread=thread).first()
        if run is None:
            raise Invalid("The run is not a run of this thread.", errors={"run_id": ["No such run."]})
        return run

    def run_id(self):
        return tenancy.parse_uuid(self.kwargs["run_id"], name="run_id")

    def query(self, serializer_class):
        data = serializer_class(data=self.request.query_params)
        data.is_valid(raise_exception=True)
        return data.validated_data


class MessagesView(ThreadScopedView):
    serializer_class = MessageSerializer

    @extend_schema(parameters=[MessageListQuerySerializer], responses=inline_serializer("MessagePage", {
        "results": MessageSerializer(many=True), "has_more": serializers.BooleanField(),
        "next_after_seq": serializers.IntegerField(allow_null=True)}))
    def get(self, request, thread_id):
        thread = self.thread()
        q = self.query(MessageListQuerySerializer)
        rows = list(
            thread.messages.filter(seq__gt=q["after_seq"]).order_by("seq")[: q["limit"] + 1]
        )
        has_more = len(rows) > q["limit"]
        rows = rows[: q["limit"]]
        return Response({
            "results": MessageSerializer(rows, many=True).data,
            "has_more": has_more,
            "next_after_seq": rows[-1].seq if has_more else None,
        })

    @extend_schema(request=MessageCreateSerializer, responses={201: MessageSerializer, **errors(409)})
    def post(self, request, thread_id):
        thread = self.thread(write=True)
        data = MessageCreateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        v = data.validated_data
        run = self.run_of(thread, v.get("run_id"))
        message = services.post_message(thread=thread, role=v["role"], content=v["content"], run=run)
        return Response(MessageSerializer(message).data, status=201)


def _with_writes(qs):
    return qs.prefetch_related(Prefetch("writes", queryset=CheckpointWrite.objects.order_by("task_id", "idx")))


class CheckpointsView(ThreadScopedView):
    serializer_class = CheckpointSerializer
    queryset = Checkpoint.objects.none()  # for the schema: the model of the view

    @extend_schema(parameters=[CheckpointListQuerySerializer], responses=CheckpointSerializer(many=True))
    def get(self, request, thread_id):
        thread = self.thread()
        qs = Checkpoint.objects.filter(thread=thread).order_by("-id")
        q = self.query(CheckpointListQuerySerializer)
        if "checkpoint_ns" in q:
            qs = qs.filter(checkpoint_ns=q["checkpoint_ns"])
        page = self.paginate_queryset(_with_writes(qs))
        return self.get_paginated_response(CheckpointSerializer(page, many=True).data)

    @extend_schema(request=CheckpointCreateSerializer, responses={201: CheckpointSerializer, **errors(409)})
    def post(self, request, thread_id):
        thread = self.thread(write=True)
        data = CheckpointCreateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        v = data.validated_data
        run = self.run_of(thread, v.get("run_id"))
        cp = services.put_checkpoint(
            thread=thread, checkpoint_ns=v["checkpoint_ns"], checkpoint_id=v["checkpoint_id"],
            parent_checkpoint_id=v.get("parent_checkpoint_id") or None, checkpoint=v["checkpoint"],
            metadata=v["metadata"], run=run, writes=v["writes"],
        )
        current = _with_writes(Checkpoint.objects.filter(pk=cp.pk)).first()
        if current is not None:
            return Response(CheckpointSerializer(current).data, status=201)
        # Deleted since it committed (with its run, by a delete racing this post): still
        # the 201 of its creation, with the checkpoint and its writes as they were created.
        writes = sorted(v["writes"], key=lambda w: (w["task_id"], w["idx"]))
        return Response({**CheckpointSerializer(cp).data, "writes": CheckpointWriteSerializer(writes, many=True).data},
                        status=201)


class RunCreation(ThreadScopedView):
    """Creating a run from LangGraph's body: shared by the background, stream and wait
    endpoints, thread-bound or stateless."""

    default_multitask_strategy = MultitaskStrategy.ENQUEUE
    follows_the_run = False  # a stream or wait answers with what the run sends (`StreamRunMixin`)

    def create_run(self, thread, data=None, *, temporary: bool = False, modes: tuple = ()) -> Run:
        body = RunCreateSerializer(data=self.request.data if data is None else data)
        body.is_valid(raise_exception=True)
        v = body.validated_data
        kwargs = body.run_kwargs()
        if temporary:
            kwargs["temporary"] = True
            kwargs.setdefault("on_completion", "delete")
        if modes:
            kwargs["stream_mode"] = list(dict.fromkeys([*(kwargs.get("stream_mode") or ["values"]), *modes]))
        agent, runtime = self.assistant(thread, v)
        run = services.create_run(
            thread=thread, agent=agent, input=v.get("input"), metadata=v.get("metadata") or {}, model=v["model"],
            runtime=runtime, multitask_strategy=v.get("multitask_strategy") or self.default_multitask_strategy,
            kwargs=kwargs, bind_agent=bool(v.get("assistant_id")), supersede_paused=True,
        )
        if getattr(run, "resumed", False) and self.follows_the_run:  # a paused run continues: from now on
            run.stream_after = resume_point(run)
        return run

    def create_thread_run(self, **options) -> Run:
        """A run on the thread of the path. LangGraph's `if_not_exists: "create"`
        creates that thread first when no thread has its id, in the run's transaction:
        a run refused (a bad body, a conflict) leaves no thread behind."""
        with transaction.atomic():
            return self.create_run(self.run_thread(), **options)

    def run_thread(self):
        """The path's thread (written to); absent, with `if_not_exists: "create"`: a
        new thread with that id in the caller's account (`account_for_new_object`),
        otherwise (`reject`, the default) a 404. An id taken in another account is a 404."""
        try:
            return self.thread(write=True)
        except NotFound:
            if not isinstance(self.request.data, dict) or self.request.data.get("if_not_exists") != "create":
                raise
        thread_id = tenancy.parse_uuid(self.kwargs["thread_id"], name="thread_id")
        account = tenancy.account_for_new_object(self.request.user, self.request.headers.get(tenancy.ACCOUNT_HEADER))
        thread = services.create_thread(account=account, thread_id=thread_id, if_exists="do_nothing",
                                        created_by=self.request.user)
        if thread.account_id != account.pk:
            raise NotFound("Thread not found.")
        return thread

    def assistant(self, thread, v) -> tuple:
        """The agent (`agent_id`, or `assistant_id`: see `resolve_assistant`) and the
        runtime (`runtime`, or the graph an `assistant_id` names) of a new run."""
        runtime = v.get("runtime") or None
        if v.get("agent_id"):
            agents = Agent.objects.filter(account_id=thread.account_id)
            return tenancy.get_visible(agents, self.request.user, v["agent_id"], name="agent_id"), runtime
        if v.get("assistant_id"):
            agent, graph = resolve_assistant(self.request.user, v["assistant_id"], account_id=thread.account_id)
            return agent, runtime or graph
        return None, runtime


class RunsView(RunCreation):
    serializer_class = RunSerializer
    queryset = Run.objects.none()  # for the schema: the model of the view
    pagination_class = None  # a plain list (LangGraph's runs.list): limit/offset are its own parameters

    @extend_schema(parameters=[RunListQuerySerializer],
                   responses=selectable(RunSerializer, "RunListResult")(many=True))
    def get(self, request, thread_id):
        """The thread's runs, newest first, as a list (LangGraph's `runs.list`)."""
        thread = self.thread()
        q = self.query(RunListQuerySerializer)
        qs = Run.objects.filter(thread=thread).order_by("-seq")
        if q.get("status"):
            qs = qs.filter(status=q["status"])
        runs = RunSerializer(qs[q["offset"]: q["offset"] + q["limit"]], many=True).data
        return Response([select_fields(run, q.get("select")) for run in runs])

    @extend_schema(request=RunCreateSerializer, responses={201: RunSerializer, **errors(402, 409)})
    def post(self, request, thread_id):
        """A background run; `multitask_strategy` (default `enqueue`) decides what
        happens when the thread has an active run."""
        run = self.create_thread_run()
        # Its state now (it may have run already). The run was created either way: if
        # a delete of the thread or another creator's rollback took it since, the
        # answer is still the 201 of its creation, with the run as it was created.
        current = Run.objects.filter(pk=run.pk).first()
        return located(Response(RunSerializer(current or run).data, status=201), request, run)


class RunsCancelView(ThreadScopedView):
    @extend_schema(request=RunsCancelSerializer, responses=inline_serializer("RunsCancelled", {
        "thread_id": serializers.UUIDField(), "cancelled_count": serializers.IntegerField()}))
    def post(self, request, thread_id):
        thread = self.thread(write=True)
        data = RunsCancelSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        count = services.cancel_runs(thread=thread, status=data.validated_data["status"])
        return Response({"thread_id": str(thread.pk), "cancelled_count": count})


class RunDetailView(ThreadScopedView):
    serializer_class = RunSerializer

    def get(self, request, thread_id, run_id):
        thread = self.thread()
        run = Run.objects.filter(pk=self.run_id(), thread=thread).first()
        if run is None:
            raise NotFound("Run not found.")
        return Response(RunSerializer(run).data)

    @extend_schema(parameters=[RunDeleteQuerySerializer], responses={200: inline_serializer("RunDeleted", {
        "thread_id": serializers.UUIDField(), "run_id": serializers.UUIDField(), "deleted": serializers.BooleanField()}),
        **errors(409)})
    def delete(self, request, thread_id, run_id):
        run_uuid = self.run_id()
        thread = self.thread(write=True)
        force = self.query(RunDeleteQuerySerializer)["force"]
        services.delete_run(thread=thread, run_id=run_uuid, force=force)
        return Response({"thread_id": str(thread.pk), "run_id": str(run_uuid), "deleted": True})


class RunCancelView(ThreadScopedView):
    @extend_schema(parameters=[RunCancelQuerySerializer], request=None, responses={
        200: PolymorphicProxySerializer("RunCancelResult", serializers=[RunSerializer, inline_serializer("RunRolledBack", {
            "thread_id": serializers.UUIDField(), "run_id": serializers.UUIDField(),
            "status": serializers.ChoiceField(choices=["rolled_back"]), "deleted": serializers.BooleanField()})],
            resource_type_field_name=None), **errors(409)})
    def post(self, request, thread_id, run_id):
        run_uuid = self.run_id()
        thread = self.thread(write=True)
        q = self.query(RunCancelQuerySerializer)
        run = services.cancel_run(thread=thread, run_id=run_uuid, action=q["action"])
        if run is None:
            return Response({"thread_id": str(thread.pk), "run_id": str(run_uuid), "status": "rolled_back",
                             "deleted": True})
        return Response(RunSerializer(run).data)
