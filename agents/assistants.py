"""`/api/assistants`: LangGraph's assistants API over agents. An assistant is an
agent; its `graph_id` is a runtime name (`echo`), its `version` the agent's current
version. Thin views over `agents.services` and `agents.selectors`."""

from types import SimpleNamespace

from django.conf import settings
from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from config.errors import Conflict, NotFound
from config.schema import errors, selectable
from projects import selectors as tenancy
from threads.api.threads import ACCOUNT_HEADER_PARAMETER
from threads.selectors import filter_json_containment
from threads.serializers import select_fields

from . import services
from .models import AgentVersion
from .selectors import agents_for, graph_assistant_id, graph_named
from .serializers import (
    ASSISTANT_SORT_FIELDS,
    AssistantCountSerializer,
    AssistantCreateSerializer,
    AssistantDeleteQuerySerializer,
    AssistantLatestSerializer,
    AssistantSearchSerializer,
    AssistantSerializer,
    AssistantUpdateSerializer,
    AssistantVersionSerializer,
    AssistantVersionsQuerySerializer,
    GraphSchemaSerializer,
)

DEFAULT_NAME = "Untitled"
STARTED = timezone.now()


def graph_assistant(graph: str) -> SimpleNamespace:
    """A graph's default assistant, as LangGraph shows it: read-only, the graph's
    name, no configuration, version 1, `metadata.created_by` "system". Nothing is
    stored for it: a run given its id or the graph's name runs the graph."""
    assistant = SimpleNamespace(
        id=graph_assistant_id(graph), agent_id=graph_assistant_id(graph), graph_id=graph, config={}, context={},
        created_at=STARTED, updated_at=STARTED, metadata={"created_by": "system"}, current_version=1, number=1,
        name=graph, description=None, account_id=None, is_default=False,
    )
    assistant.agent = assistant  # its own one version
    return assistant


def model_of(config: dict | None, context: dict | None) -> str | None:
    """The model an assistant names (`config.configurable.model`, or `context.model`)."""
    configurable = (config or {}).get("configurable") or {}
    model = configurable.get("model") or (context or {}).get("model")
    return model if isinstance(model, str) and model.strip() else None


def body(request, serializer_class):
    data = serializer_class(data=request.data)
    data.is_valid(raise_exception=True)
    return data.validated_data


class AssistantView(APIView):
    def assistant(self, assistant_id, *, write=False):
        """The agent, or the default assistant of the graph `assistant_id` names (its
        name or its id), which cannot be changed (409)."""
        graph = graph_named(assistant_id)
        if graph is not None:
            if write:
                raise Conflict(f"'{assistant_id}' is graph {graph}'s default assistant, which cannot be changed"
                               " or deleted; create an assistant for the graph instead.")
            return graph_assistant(graph)
        agent = tenancy.get_visible(agents_for(self.request.user), self.request.user, assistant_id,
                                    name="assistant_id")
        if write:
            tenancy.ensure_can_write(self.request.user, agent)
        return agent

    def render(self, pk, status=200):
        return Response(AssistantSerializer(agents_for(self.request.user).get(pk=pk)).data, status=status)

    def filtered(self, v):
        qs = filter_json_containment(agents_for(self.request.user), "metadata", v.get("metadata"))
        if v.get("graph_id"):
            graph = v["graph_id"]
            qs = qs.filter(graph_id__in=[graph, ""]) if graph == settings.DEFAULT_RUNTIME else qs.filter(graph_id=graph)
        if v.get("name"):
            qs = qs.filter(name__icontains=v["name"])
        return qs


class AssistantsView(AssistantView):
    @extend_schema(request=AssistantCreateSerializer,
                   responses={200: AssistantSerializer, 201: AssistantSerializer, **errors(402, 404, 409)},
                   parameters=[ACCOUNT_HEADER_PARAMETER], summary="Create an assistant")
    def post(self, request):
        v = body(request, AssistantCreateSerializer)
        taken_by = graph_named(v["assistant_id"]) if v.get("assistant_id") else None
        if taken_by is not None:
            raise Conflict(f"{v['assistant_id']} is the id of graph {taken_by}'s default assistant; choose another id.")
        account = tenancy.account_for_new_object(request.user, request.headers.get(tenancy.ACCOUNT_HEADER))
        config, context = v.get("config") or {}, v.get("context") or {}
        agent = services.create_agent(
            account=account, created_by=request.user, agent_id=v.get("assistant_id"), if_exists=v["if_exists"],
            name=v.get("name") or DEFAULT_NAME, description=v.get("description") or "",
            metadata=v.get("metadata") or {}, graph_id=v.get("graph_id") or settings.DEFAULT_RUNTIME,
            config=config, context=context, model=model_of(config, context) or settings.DEFAULT_ASSISTANT_MODEL,
        )
        if agent.existed:
            # do_nothing: the existing assistant, if the caller may see it. Another
            # account's is not found, as every read of it (as a thread id, `POST /threads`).
            if not agents_for(request.user).filter(pk=agent.pk).exists():
                raise NotFound("Agent not found.")  # the words of a read of it
            return self.render(agent.pk)
        return self.render(agent.pk, status=201)


class AssistantDetailView(AssistantView):
    @extend_schema(responses=AssistantSerializer, summary="Get an assistant")
    def get(self, request, assistant_id):
        return Response(AssistantSerializer(self.assistant(assistant_id)).data)

    @extend_schema(request=AssistantUpdateSerializer, responses={200: AssistantSerializer, **errors(409)},
                   summary="Update an assistant")
    def patch(self, request, assistant_id):
        """A change of `graph_id`, `config` or `context` makes the next version (as
        `PATCH /api/agents/{id}` does for its configuration); `metadata` is merged."""
        agent = self.assistant(assistant_id, write=True)
        v = body(request, AssistantUpdateSerializer)
        fields = {k: v[k] for k in ("graph_id", "config", "context", "name") if k in v}
        if "description" in v:
            fields["description"] = v["description"] or ""
        if "metadata" in v:
            fields["metadata_merge"] = v["metadata"]
        model = model_of(v.get("config"), v.get("context"))
        if model:
            fields["model"] = model
        services.update_agent(agent=agent, **fields)
        return self.render(agent.pk)

    @extend_schema(parameters=[AssistantDeleteQuerySerializer], responses={204: None, **errors(400, 409)},
                   summary="Delete an assistant")
    def delete(self, request, assistant_id):
        """Through `delete_agent`: a default or system agent is refused (400); its
        history is kept — its threads stay open, unbound, and take runs of any other
        assistant (its busy ones are cancelled) — or with `delete_threads=true` its
        threads are deleted."""
        agent = self.assistant(assistant_id, write=True)
        q = AssistantDeleteQuerySerializer(data=request.query_params)
        q.is_valid(raise_exception=True)
        services.delete_agent(agent=agent, delete_threads=q.validated_data["delete_threads"], close_threads=False)
        return Response(status=204)


class AssistantSearchView(AssistantView):
    @extend_schema(request=AssistantSearchSerializer,
                   responses=selectable(AssistantSerializer, "AssistantSearchResult")(many=True),
                   summary="Search assistants")
    def post(self, request):
        v = body(request, AssistantSearchSerializer)
        field = ASSISTANT_SORT_FIELDS[v["sort_by"]]
        order = (f"-{field}", "-id") if v["sort_order"] == "desc" else (field, "id")
        rows = list(self.filtered(v).order_by(*order)[v["offset"]: v["offset"] + v["limit"] + 1])
        more = len(rows) > v["limit"]
        results = AssistantSerializer(rows[: v["limit"]], many=True).data
        if v.get("select"):
            results = [select_fields(r, v["select"]) for r in results]
        headers = {"X-Pagination-Next": str(v["offset"] + v["limit"])} if more else {}
        return Response(results, headers=headers)


class AssistantCountView(AssistantView):
    @extend_schema(request=AssistantCountSerializer, responses=OpenApiTypes.INT, summary="Count assistants")
    def post(self, request):
        return Response(self.filtered(body(request, AssistantCountSerializer)).order_by().count())


class AssistantVersionsView(AssistantView):
    @extend_schema(request=AssistantVersionsQuerySerializer, responses=AssistantVersionSerializer(many=True),
                   summary="List an assistant's versions")
    def post(self, request, assistant_id):
        agent = self.assistant(assistant_id)
        v = body(request, AssistantVersionsQuerySerializer)
        if isinstance(agent, SimpleNamespace):  # a graph's default assistant
            wanted = v.get("metadata") or {}
            versions = [agent] if all(agent.metadata.get(k) == val for k, val in wanted.items()) else []
        else:  # each version with the metadata it kept
            versions = filter_json_containment(AgentVersion.objects.filter(agent=agent), "metadata", v.get("metadata"))
            versions = versions.select_related("agent").order_by("-number")
        return Response(AssistantVersionSerializer(versions[v["offset"]: v["offset"] + v["limit"]], many=True).data)


class AssistantLatestView(AssistantView):
    @extend_schema(request=AssistantLatestSerializer, responses={200: AssistantSerializer, **errors(409)},
                   summary="Make a version the current one")
    def post(self, request, assistant_id):
        agent = self.assistant(assistant_id, write=True)
        services.set_current_version(agent=agent, version=body(request, AssistantLatestSerializer)["version"])
        return self.render(agent.pk)


def runtime_of(agent):
    from threads.runtime import get_runtime

    return get_runtime(agent.graph_id or settings.DEFAULT_RUNTIME)


class AssistantGraphView(AssistantView):
    @extend_schema(parameters=[OpenApiParameter("xray", str, required=False)],
                   responses=serializers.DictField(), summary="An assistant's graph")
    def get(self, request, assistant_id):
        return Response(runtime_of(self.assistant(assistant_id)).describe_graph())


class AssistantSchemasView(AssistantView):
    @extend_schema(responses=GraphSchemaSerializer, summary="An assistant's schemas")
    def get(self, request, assistant_id):
        agent = self.assistant(assistant_id)
        runtime = runtime_of(agent)
        return Response({"graph_id": runtime.name, "input_schema": runtime.input_schema,
                         "output_schema": runtime.state_schema, "state_schema": runtime.state_schema,
                         "config_schema": None, "context_schema": None})


class AssistantSubgraphsView(AssistantView):
    @extend_schema(responses=serializers.DictField(), summary="An assistant's subgraphs (none)")
    def get(self, request, assistant_id, namespace=None):
        self.assistant(assistant_id)
        return Response({})
