from django.urls import re_path

from config.routers import Router

from .api import AgentViewSet, TriggerDetailView, TriggerListView, WebhookView

router = Router()
router.register("agents", AgentViewSet, basename="agent")
urlpatterns = [
    re_path(r"^agents/(?P<agent_id>[^/]+)/triggers/?$", TriggerListView.as_view(), name="agent-triggers"),
    re_path(r"^agents/(?P<agent_id>[^/]+)/triggers/(?P<trigger_id>[^/]+)/?$", TriggerDetailView.as_view(),
            name="agent-trigger"),
    re_path(r"^webhooks/(?P<trigger_id>[^/]+)/(?P<secret>[^/]+)/?$", WebhookView.as_view(), name="webhook"),
    *router.urls,
]
