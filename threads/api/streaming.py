"""LangGraph's streaming run endpoints: create-and-stream, create-and-wait, join,
join a run's stream, a thread's stream, and the global cancel.

Streams are Server-Sent Events read from the event bus (`threads.streams`): under
an ASGI server (uvicorn) they are async iterators, so a waiting or slow client holds
no thread; under WSGI they are blocking iterators.
"""

from functools import partial

from django.core.handlers.asgi import ASGIRequest
from django.db import transaction
from django.http import StreamingHttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework.renderers import BaseRenderer, JSONRenderer
from rest_framework.response import Response
from rest_framework.views import APIView

from config.errors import Invalid, NotFound
from config.schema import errors
from projects import selectors as tenancy

from .. import selectors, services
from ..models import Run, Thread
from ..serializers import (
    GlobalRunsCancelSerializer,
    JoinStreamQuerySerializer,
    RunCreateSerializer,
    RunSerializer,
    ThreadStreamQuerySerializer,
)
from ..streams.bus import EVENT_ID, get_bus, reachable, run_log, thread_log
from ..streams.sse import Follower, abody_at_end, asse, body_at_end, sse
from .runs import RunCreation, ThreadScopedView, located


class EventStreamRenderer(BaseRenderer):
    """Lets a client that accepts only `text/event-stream` in (the SDK does); the
    streams themselves are written by the views."""

    media_type = "text/event-stream"
    format = "sse"

    def render(self, data, accepted_media_type=None, renderer_context=None):
        return JSONRenderer().render(data)


SSE_RESPONSE = OpenApiResponse(
    # One Server-Sent Event (the schema each event of the stream follows).
    response={"type": "object", "properties": {
        "event": {"type": "string"}, "data": {"type": "string"}, "id": {"type": "string"},
        "retry": {"type": "integer"},
    }},
    description="Server-Sent Events: `metadata`, the stream modes' events, `error` on failure, `end` last. "
                "Each event has an `id` a client can resume after (`Last-Event-ID`).",
)
LAST_EVENT_ID = OpenApiParameter("Last-Event-ID", {"type": "string", "pattern": r"^(\d{1,20}(-\d{1,20})?)?$"},
                                 OpenApiParameter.HEADER, required=False,
                                 description="Resume after this event id (nothing is sent twice); empty: as absent.")
VALUES_RESPONSE = OpenApiResponse(response=OpenApiTypes.OBJECT,
                                  description="The thread's final `values` (`{\"messages\": [...]}`).")


class StreamingMixin:
    renderer_classes = [JSONRenderer, EventStreamRenderer]

    def finalize_response(self, request, response, *args, **kwargs):
        if not isinstance(response, StreamingHttpResponse):  # errors are JSON, whatever was accepted
            request.accepted_renderer, request.accepted_media_type = JSONRenderer(), "application/json"
        return super().finalize_response(request, response, *args, **kwargs)

    def asgi(self) -> bool:
        return isinstance(self.request._request, ASGIRequest)

    def event_stream(self, follower: Follower, *, disconnected=None):
        body = (asse if self.asgi() else sse)(follower, disconnected=disconnected)
        response = StreamingHttpResponse(body, content_type="text/event-stream")
        response["Cache-Control"] = "no-store"
        response["X-Accel-Buffering"] = "no"  # no proxy buffering
        return response

    def json_at_end(self, follower: Follower, fallback, *, disconnected=None):
        body = (abody_at_end if self.asgi() else body_at_end)(follower, fallback, disconnected=disconnected)
        response = StreamingHttpResponse(body, content_type="application/json")
        response["Cache-Control"] = "no-store"
        return response

    def last_event_id(self) -> str | None:
        value = self.request.headers.get("Last-Event-ID") or None
        if value is not None and not EVENT_ID.match(value):
            raise Invalid("Last-Event-ID is not an event id of this server.",
                          errors={"Last-Event-ID": ["An id like 1700000000000-0."]})
        return value


def cancel_on_disconnect(run: Run):
    return partial(services.cancel_many, threads=Thread.objects.filter(pk=run.thread_id), run_ids=[run.pk])


class StreamRunMixin(StreamingMixin):
    follows_the_run = True  # a resumed run is followed from its resume (`RunCreation.create_run`)

    def stream_new_run(self, run: Run):
        disconnected = cancel_on_disconnect(run) if run.kwargs.get("on_disconnect") == "cancel" else None
        return located(self.event_stream(Follower(log=run_log(run.pk), after=getattr(run, "stream_after", None),
                                                  run_id=run.pk, resumed=getattr(run, "resumed", False)),
                                         disconnected=disconnected), self.request, run, "stream")

    def wait_new_run(self, run: Run):
        disconnected = cancel_on_disconnect(run) if run.kwargs.get("on_disconnect") == "cancel" else None
        return located(self.json_at_end(Follower(log=run_log(run.pk), after=getattr(run, "stream_after", None),
                                                 run_id=run.pk, resumed=getattr(run, "resumed", False)),
                                        partial(selectors.thread_values, run.thread_id), disconnected=disconnected),
                       self.request, run, "join")


class RunStreamView(StreamRunMixin, RunCreation):
    @extend_schema(request=RunCreateSerializer,
                   responses={(200, "text/event-stream"): SSE_RESPONSE, **errors(402, 409)})
    def post(self, request, thread_id):
        """Create a run and stream its events (Server-Sent Events) until it ends.
        `on_disconnect: "cancel"` interrupts the run when the client goes away."""
        return self.stream_new_run(self.create_thread_run())


class RunWaitView(StreamRunMixin, RunCreation):
    @extend_schema(request=RunCreateSerializer, responses={200: VALUES_RESPONSE, **errors(402, 409)})
    def post(self, request, thread_id):
        """Create a run and answer when it ends, with the thread's final `values`
        (`{"__error__": {...}}` if it failed). `on_disconnect: "cancel"` interrupts it
        when the client goes away."""
        return self.wait_new_run(self.create_thread_run(modes=("values",)))


class RunOfThreadMixin(StreamingMixin):
    def visible_run(self) -> Run:
        run_uuid = self.run_id()
        thread = self.thread()
        run = Run.objects.filter(pk=run_uuid, thread=thread).first()
        if run is None:
            raise NotFound("Run not found.")
        return run


class RunJoinView(RunOfThreadMixin, ThreadScopedView):
    @extend_schema(responses={200: VALUES_RESPONSE})
    def get(self, request, thread_id, run_id):
        """Wait for the run to end; the thread's final `values`."""
        run = self.visible_run()
        return self.json_at_end(Follower(log=run_log(run.pk), after=None, run_id=run.pk),
                                partial(selectors.thread_values, run.thread_id))


class RunJoinStreamView(RunOfThreadMixin, ThreadScopedView):
    @extend_schema(parameters=[JoinStreamQuerySerializer, LAST_EVENT_ID],
                   responses={(200, "text/event-stream"): SSE_RESPONSE})
    def get(self, request, thread_id, run_id):
        """Join the run's stream until it ends. With `Last-Event-ID`, the events after
        that one; else, for a run created with `stream_resumable`, all its events, for
        another the events from now on. `stream_mode`: a subset of the run's modes."""
        run = self.visible_run()
        q = self.query(JoinStreamQuerySerializer)
        after, paused = self.last_event_id(), False
        if after is None and not run.kwargs.get("stream_resumable"):
            last = reachable(get_bus().last, run_log(run.pk))
            after, paused = (last.id, last.event == "paused") if last is not None else (None, False)
        disconnected = cancel_on_disconnect(run) if q["cancel_on_disconnect"] else None
        # Joined from now on while the run waits on an interrupt: the stream ends at once.
        follower = Follower(log=run_log(run.pk), after=after, run_id=run.pk, modes=q.get("stream_mode"), paused=paused)
        return self.event_stream(follower, disconnected=disconnected)


class ThreadStreamView(StreamingMixin, ThreadScopedView):
    THREAD_MODES = {"lifecycle": {"metadata", "end"}, "state_update": {"values"}}

    @extend_schema(parameters=[ThreadStreamQuerySerializer, LAST_EVENT_ID],
                   responses={(200, "text/event-stream"): SSE_RESPONSE})
    def get(self, request, thread_id):
        """The thread's stream: the events of all its runs (`run_modes`, the default),
        only their starts and ends (`lifecycle`) or its state (`state_update`), from
        now on or after `Last-Event-ID`. It lasts until the client leaves."""
        thread = self.thread()
        q = self.query(ThreadStreamQuerySerializer)
        modes = q.get("stream_mode") or {"run_modes"}
        events = None
        if "run_modes" not in modes:
            events = set().union(*(self.THREAD_MODES[m] for m in modes))
        after = self.last_event_id() or reachable(get_bus().last_id, thread_log(thread.pk))
        return self.event_stream(Follower(log=thread_log(thread.pk), after=after, events=events, thread_id=thread.pk,
                                          thread_created_at=thread.created_at))


class GlobalRunsCancelView(APIView):
    @extend_schema(request=GlobalRunsCancelSerializer,
                   parameters=[OpenApiParameter("action", OpenApiTypes.STR, enum=["interrupt", "rollback"])],
                   responses={200: OpenApiResponse(response=OpenApiTypes.OBJECT,
                                                   description='{"cancelled_count": n}')})
    def post(self, request):
        """Cancel runs: `thread_id` + `run_ids`, or every run with `status` (pending,
        running, all) of the thread `thread_id`, or without it of yours.
        `?action=interrupt|rollback`."""
        body = GlobalRunsCancelSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        v = body.validated_data
        action = request.query_params.get("action", "interrupt")
        threads = selectors.writable_threads_for(request.user)
        if v.get("thread_id"):
            thread = threads.filter(pk=v["thread_id"]).first()
            if thread is None:
                raise NotFound("Thread not found.")
            count = services.cancel_many(threads=threads.filter(pk=thread.pk), run_ids=v.get("run_ids") or None,
                                         status=v.get("status") or "all", action=action)
        else:
            count = services.cancel_many(threads=threads, status=v["status"], action=action)
        return Response({"cancelled_count": count})


# --- stateless runs: on a temporary thread, deleted when the run ends -------------------


class StatelessRunCreation(RunCreation):
    """`POST /runs...` without a thread: the run gets a temporary thread (in the
    caller's account's default project), which `on_completion: "delete"` (the
    default) removes through the deletion service once the run ended. A `command:
    {resume}` is a 409 here: nothing waits on a new thread."""

    def create_stateless_run(self, data=None, *, modes: tuple = ()) -> Run:
        account = tenancy.account_for_new_object(self.request.user, self.request.headers.get(tenancy.ACCOUNT_HEADER))
        with transaction.atomic():  # a refused body leaves no thread behind
            thread = services.create_thread(account=account, created_by=self.request.user)
            return self.create_run(thread, data, temporary=True, modes=modes)


class StatelessRunsView(StatelessRunCreation):
    @extend_schema(request=RunCreateSerializer, responses={201: RunSerializer, **errors(402, 409)})
    def post(self, request):
        """A background run on a temporary thread."""
        run = self.create_stateless_run()
        return located(Response(RunSerializer(Run.objects.filter(pk=run.pk).first() or run).data, status=201),
                       request, run)


class StatelessRunStreamView(StreamRunMixin, StatelessRunCreation):
    @extend_schema(request=RunCreateSerializer,
                   responses={(200, "text/event-stream"): SSE_RESPONSE, **errors(402, 409)})
    def post(self, request):
        """A run on a temporary thread, streamed until it ends."""
        return self.stream_new_run(self.create_stateless_run())


class StatelessRunWaitView(StreamRunMixin, StatelessRunCreation):
    @extend_schema(request=RunCreateSerializer, responses={200: VALUES_RESPONSE, **errors(402, 409)})
    def post(self, request):
        """A run on a temporary thread; its final `values` when it ends."""
        return self.wait_new_run(self.create_stateless_run(modes=("values",)))


class StatelessRunBatchView(StatelessRunCreation):
    pagination_class = None
    @extend_schema(request={"application/json": {"type": "array", "minItems": 1, "maxItems": 100,
                                                 "items": {"$ref": "#/components/schemas/RunCreateRequest"}}},
                   responses={201: RunSerializer(many=True), **errors(402, 404, 409)})
    def post(self, request):
        """Several background runs (at most 100), each on the thread its `thread_id`
        names (404 if you cannot write to it), or else on a temporary thread of its own."""
        if not isinstance(request.data, list) or not 1 <= len(request.data) <= 100:
            raise Invalid("The body must be a list of 1 to 100 run payloads.", errors={"body": ["1 to 100 runs."]})
        if not all(isinstance(item, dict) for item in request.data):
            raise Invalid("Each run payload must be an object.", errors={"body": ["Objects only."]})
        with transaction.atomic():  # all or none
            runs = [self.create_run(self.thread(write=True, thread_id=item["thread_id"]), item)
                    if item.get("thread_id") is not None else self.create_stateless_run(item)
                    for item in request.data]
        fresh = Run.objects.in_bulk([r.pk for r in runs])
        return Response(RunSerializer([fresh.get(r.pk, r) for r in runs], many=True).data, status=201)
