from django.urls import re_path

from config.routers import Router

from . import assistants, crons_api
from .api import AgentViewSet, TriggerDetailView, TriggerListView, WebhookView

router = Router()
router.register("agents", AgentViewSet, basename="agent")
urlpatterns = [
    # LangGraph crons (before the threads' `runs/<run_id>` routes, which would match `crons`)
    re_path(r"^threads/(?P<thread_id>[^/]+)/runs/crons/?$", crons_api.ThreadCronsView.as_view(), name="thread-crons"),
    re_path(r"^runs/crons/search/?$", crons_api.CronSearchView.as_view(), name="cron-search"),
    re_path(r"^runs/crons/count/?$", crons_api.CronCountView.as_view(), name="cron-count"),
    re_path(r"^runs/crons/(?P<cron_id>[^/]+)/?$", crons_api.CronDetailView.as_view(), name="cron-detail"),
    re_path(r"^agents/(?P<agent_id>[^/]+)/triggers/?$", TriggerListView.as_view(), name="agent-triggers"),
    re_path(r"^agents/(?P<agent_id>[^/]+)/triggers/(?P<trigger_id>[^/]+)/?$", TriggerDetailView.as_view(),
            name="agent-trigger"),
    re_path(r"^webhooks/(?P<trigger_id>[^/]+)/(?P<secret>[^/]+)/?$", WebhookView.as_view(), name="webhook"),
    re_path(r"^assistants/?$", assistants.AssistantsView.as_view(), name="assistants"),
    re_path(r"^assistants/search/?$", assistants.AssistantSearchView.as_view(), name="assistant-search"),
    re_path(r"^assistants/count/?$", assistants.AssistantCountView.as_view(), name="assistant-count"),
    re_path(r"^assistants/(?P<assistant_id>[^/]+)/?$", assistants.AssistantDetailView.as_view(), name="assistant"),
    re_path(r"^assistants/(?P<assistant_id>[^/]+)/versions/?$", assistants.AssistantVersionsView.as_view(),
            name="assistant-versions"),
    re_path(r"^assistants/(?P<assistant_id>[^/]+)/latest/?$", assistants.AssistantLatestView.as_view(),
            name="assistant-latest"),
    re_path(r"^assistants/(?P<assistant_id>[^/]+)/graph/?$", assistants.AssistantGraphView.as_view(),
            name="assistant-graph"),
    re_path(r"^assistants/(?P<assistant_id>[^/]+)/schemas/?$", assistants.AssistantSchemasView.as_view(),
            name="assistant-schemas"),
    re_path(r"^assistants/(?P<assistant_id>[^/]+)/subgraphs(?:/(?P<namespace>[^/]+))?/?$",
            assistants.AssistantSubgraphsView.as_view(), name="assistant-subgraphs"),
    *router.urls,
]
