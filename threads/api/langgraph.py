"""LangGraph's thread endpoints beyond create/get/update/delete: search, count, copy,
state (get, at a checkpoint, update) and history. Thin: parse, authorise, call the
selectors and services, render LangGraph's shapes (`threads/serializers.py`)."""

import re

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.response import Response

from config.errors import NotFound
from config.schema import errors, selectable
from projects import selectors as tenancy

from .. import selectors, services
from ..models import Approval, ApprovalStatus, Checkpoint, Run
from ..services.state import checkpoint_config
from ..serializers import (
    HistoryQuerySerializer,
    HistorySerializer,
    StateAtCheckpointSerializer,
    StateQuerySerializer,
    StateUpdateResponseSerializer,
    StateUpdateSerializer,
    ThreadCountSerializer,
    ThreadSearchSerializer,
    ThreadSerializer,
    ThreadStateSerializer,
    select_fields,
    state_json,
)
from .runs import ThreadScopedView
from .threads import render_thread


def extract(body: dict, path: str):
    """A value at a dotted path with [index] parts (`values.messages[-1]`), or None."""
    value = body
    for part in re.findall(r"[^.\[\]]+|\[-?\d+\]", path):
        try:
            value = value[int(part[1:-1])] if part.startswith("[") else value[part]
        except (KeyError, IndexError, TypeError, ValueError):
            return None
    return value


def search_body(request):
    data = ThreadSearchSerializer(data=request.data)
    data.is_valid(raise_exception=True)
    return data.validated_data


class ThreadLangGraphSearchMixin:
    """`POST /api/threads/search` (on the view whose GET is the semantic search)."""

    @extend_schema(request=ThreadSearchSerializer,
                   responses=selectable(ThreadSerializer, "ThreadSearchItem", extracted=serializers.DictField(
                       help_text="With `extract`: each alias's value at its path, or null."))(many=True),
                   summary="Search threads (LangGraph)")
    def post(self, request):
        v = search_body(request)
        qs = selectors.search_langgraph_threads(
            selectors.threads_for(request.user), metadata=v.get("metadata"), values=v.get("values"),
            ids=v.get("ids"), status=v.get("status"), sort_by=v["sort_by"], sort_order=v["sort_order"],
        )
        page = qs[v["offset"]: v["offset"] + v["limit"]]
        results = []
        for thread in page:
            body = ThreadSerializer(thread).data
            if v.get("extract"):
                body["extracted"] = {alias: extract(body, path) for alias, path in v["extract"].items()}
            if v.get("select"):
                body = select_fields(body, v["select"] + (["extracted"] if v.get("extract") else []))
            results.append(body)
        return Response(results)


class ThreadCountView(ThreadScopedView):
    @extend_schema(request=ThreadCountSerializer, responses=OpenApiTypes.INT, summary="Count threads")
    def post(self, request):
        data = ThreadCountSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        v = data.validated_data
        qs = selectors.search_langgraph_threads(selectors.threads_for(request.user), metadata=v.get("metadata"),
                                                values=v.get("values"), status=v.get("status"))
        return Response(qs.order_by().count())


class ThreadCopyView(ThreadScopedView):
    @extend_schema(request=None, responses={200: ThreadSerializer, **errors(402)}, summary="Copy a thread")
    def post(self, request, thread_id):
        thread = self.thread()
        tenancy.ensure_account_writable(request.user, thread.account_id)
        copy = services.copy_thread(thread=thread, created_by=request.user)
        return render_thread(request, copy.pk)


class StateMixin(ThreadScopedView):
    pagination_class = None  # LangGraph's history is a plain list
    def state(self, thread, checkpoint, *, is_latest: bool | None = None):
        """The state at `checkpoint`; the latest one also shows the pending approvals.
        `is_latest`: whether it is the latest, when the caller knows (else looked up)."""
        if is_latest is None:
            latest = selectors.latest_checkpoint(thread_id=thread.pk, checkpoint_ns=checkpoint.checkpoint_ns) \
                if checkpoint is not None else None
            is_latest = checkpoint is None or (latest is not None and latest.pk == checkpoint.pk)
        approvals, runtime = [], None
        if is_latest:
            approvals = list(Approval.objects.filter(thread=thread, status=ApprovalStatus.PENDING).order_by("created_at"))
            if approvals:
                runtime = Run.objects.filter(pk=approvals[0].run_id).values_list("runtime", flat=True).first()
        return state_json(thread=thread, checkpoint=checkpoint, approvals=approvals, runtime=runtime)

    def checkpoint_named(self, thread, checkpoint_id, checkpoint_ns=""):
        checkpoint = Checkpoint.objects.filter(thread=thread, checkpoint_ns=checkpoint_ns or "",
                                               checkpoint_id=checkpoint_id).first()
        if checkpoint is None:
            raise NotFound(f"Checkpoint '{checkpoint_id}' not found in this thread.")
        return checkpoint


class ThreadStateView(StateMixin):
    @extend_schema(parameters=[StateQuerySerializer], responses=ThreadStateSerializer,
                   summary="Get a thread's state")
    def get(self, request, thread_id):
        thread = self.thread()
        q = self.query(StateQuerySerializer)
        body = self.state(thread, selectors.latest_checkpoint(thread_id=thread.pk), is_latest=True)
        return Response(select_fields(body, q.get("select")))

    @extend_schema(request=StateUpdateSerializer, responses={200: StateUpdateResponseSerializer, **errors(409)},
                   summary="Update a thread's state")
    def post(self, request, thread_id):
        thread = self.thread(write=True)
        data = StateUpdateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        v = data.validated_data
        ref = v.get("checkpoint") or {}
        checkpoint = services.update_state(
            thread=thread, values=v.get("values"), as_node=v.get("as_node") or None,
            checkpoint_id=ref.get("checkpoint_id") or v.get("checkpoint_id") or None,
            checkpoint_ns=ref.get("checkpoint_ns") or "",
        )
        return Response({"checkpoint": checkpoint_config(checkpoint, thread_id=thread.pk)})


class ThreadStateAtView(StateMixin):
    @extend_schema(parameters=[StateQuerySerializer], responses=ThreadStateSerializer,
                   summary="Get a thread's state at a checkpoint")
    def get(self, request, thread_id, checkpoint_id):
        thread = self.thread()
        q = self.query(StateQuerySerializer)
        body = self.state(thread, self.checkpoint_named(thread, checkpoint_id))
        return Response(select_fields(body, q.get("select")))


class ThreadStateCheckpointView(StateMixin):
    @extend_schema(request=StateAtCheckpointSerializer, responses=ThreadStateSerializer,
                   summary="Get a thread's state at a checkpoint (body)")
    def post(self, request, thread_id):
        thread = self.thread()
        data = StateAtCheckpointSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        ref = data.validated_data["checkpoint"]
        if ref.get("checkpoint_id"):
            checkpoint, is_latest = self.checkpoint_named(thread, ref["checkpoint_id"], ref.get("checkpoint_ns")), None
        else:
            checkpoint = selectors.latest_checkpoint(thread_id=thread.pk, checkpoint_ns=ref.get("checkpoint_ns") or "")
            is_latest = True
        return Response(select_fields(self.state(thread, checkpoint, is_latest=is_latest),
                                      data.validated_data.get("select")))


class ThreadHistoryView(StateMixin):
    def history(self, thread, v):
        checkpoints = selectors.thread_history(
            thread=thread, checkpoint_ns=(v.get("checkpoint") or {}).get("checkpoint_ns") or "",
            before=v.get("before"), metadata=v.get("metadata"), limit=v["limit"],
            checkpoint_id=(v.get("checkpoint") or {}).get("checkpoint_id"),
        )
        if not checkpoints:
            return []
        latest = selectors.latest_checkpoint(thread_id=thread.pk, checkpoint_ns=checkpoints[0].checkpoint_ns)
        out = [state_json(thread=thread, checkpoint=c) for c in checkpoints]
        if latest is not None and checkpoints[0].pk == latest.pk:
            out[0] = self.state(thread, latest, is_latest=True)
        return [select_fields(body, v.get("select")) for body in out]

    @extend_schema(parameters=[HistoryQuerySerializer], responses=ThreadStateSerializer(many=True),
                   summary="Get a thread's history")
    def get(self, request, thread_id):
        thread = self.thread()
        v = self.query(HistoryQuerySerializer)
        return Response(self.history(thread, v))

    @extend_schema(request=HistorySerializer, responses=ThreadStateSerializer(many=True),
                   summary="Get a thread's history (body)")
    def post(self, request, thread_id):
        thread = self.thread()
        data = HistorySerializer(data=request.data)
        data.is_valid(raise_exception=True)
        return Response(self.history(thread, data.validated_data))
