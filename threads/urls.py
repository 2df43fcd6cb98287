from django.urls import re_path

from config.routers import Router

from .api import agent_threads, langgraph, runs, streaming
from .api.prune import PruneView
from .api.search import ThreadSearchView
from .api.threads import ThreadViewSet

router = Router()
router.register("threads", ThreadViewSet, basename="thread")
urlpatterns = [
    re_path(r"^threads/search/?$", ThreadSearchView.as_view(), name="thread-search"),
    re_path(r"^threads/prune/?$", PruneView.as_view(), name="thread-prune"),
    re_path(r"^threads/(?P<thread_id>[^/]+)/messages/?$", runs.MessagesView.as_view(), name="thread-messages"),
    re_path(r"^threads/(?P<thread_id>[^/]+)/checkpoints/?$", runs.CheckpointsView.as_view(), name="thread-checkpoints"),
    re_path(r"^threads/count/?$", langgraph.ThreadCountView.as_view(), name="thread-count"),
    re_path(r"^threads/(?P<thread_id>[^/]+)/copy/?$", langgraph.ThreadCopyView.as_view(), name="thread-copy"),
    re_path(r"^threads/(?P<thread_id>[^/]+)/state/?$", langgraph.ThreadStateView.as_view(), name="thread-state"),
    re_path(r"^threads/(?P<thread_id>[^/]+)/state/checkpoint/?$", langgraph.ThreadStateCheckpointView.as_view(),
            name="thread-state-checkpoint"),
    re_path(r"^threads/(?P<thread_id>[^/]+)/state/(?P<checkpoint_id>[^/]+)/?$", langgraph.ThreadStateAtView.as_view(),
            name="thread-state-at"),
    re_path(r"^threads/(?P<thread_id>[^/]+)/history/?$", langgraph.ThreadHistoryView.as_view(), name="thread-history"),
    re_path(r"^threads/(?P<thread_id>[^/]+)/runs/?$", runs.RunsView.as_view(), name="thread-runs"),
    re_path(r"^threads/(?P<thread_id>[^/]+)/runs/cancel/?$", runs.RunsCancelView.as_view(), name="thread-runs-cancel"),
    re_path(r"^threads/(?P<thread_id>[^/]+)/runs/stream/?$", streaming.RunStreamView.as_view(), name="thread-runs-stream"),
    re_path(r"^threads/(?P<thread_id>[^/]+)/runs/wait/?$", streaming.RunWaitView.as_view(), name="thread-runs-wait"),
    re_path(r"^threads/(?P<thread_id>[^/]+)/stream/?$", streaming.ThreadStreamView.as_view(), name="thread-stream"),
    re_path(r"^threads/(?P<thread_id>[^/]+)/runs/(?P<run_id>[^/]+)/?$", runs.RunDetailView.as_view(), name="run-detail"),
    re_path(r"^threads/(?P<thread_id>[^/]+)/runs/(?P<run_id>[^/]+)/cancel/?$", runs.RunCancelView.as_view(), name="run-cancel"),
    re_path(r"^threads/(?P<thread_id>[^/]+)/runs/(?P<run_id>[^/]+)/join/?$", streaming.RunJoinView.as_view(), name="run-join"),
    re_path(r"^threads/(?P<thread_id>[^/]+)/runs/(?P<run_id>[^/]+)/stream/?$", streaming.RunJoinStreamView.as_view(),
            name="run-join-stream"),
    re_path(r"^runs/cancel/?$", streaming.GlobalRunsCancelView.as_view(), name="runs-cancel"),
    re_path(r"^runs/?$", streaming.StatelessRunsView.as_view(), name="runs-stateless"),
    re_path(r"^runs/stream/?$", streaming.StatelessRunStreamView.as_view(), name="runs-stateless-stream"),
    re_path(r"^runs/wait/?$", streaming.StatelessRunWaitView.as_view(), name="runs-stateless-wait"),
    re_path(r"^runs/batch/?$", streaming.StatelessRunBatchView.as_view(), name="runs-stateless-batch"),
    re_path(r"^agents/(?P<agent_id>[^/]+)/threads/?$", agent_threads.AgentThreadsView.as_view(), name="agent-threads"),
    re_path(r"^agents/(?P<agent_id>[^/]+)/threads/(?P<thread_id>[^/]+)/?$", agent_threads.AgentThreadDetailView.as_view(),
            name="agent-thread"),
    re_path(r"^agents/(?P<agent_id>[^/]+)/threads/(?P<thread_id>[^/]+)/turns/?$", agent_threads.TurnsView.as_view(),
            name="agent-thread-turns"),
    re_path(r"^agents/(?P<agent_id>[^/]+)/threads/(?P<thread_id>[^/]+)/cancel/?$", agent_threads.CancelView.as_view(),
            name="agent-thread-cancel"),
    re_path(r"^agents/(?P<agent_id>[^/]+)/threads/(?P<thread_id>[^/]+)/close/?$", agent_threads.CloseView.as_view(),
            name="agent-thread-close"),
    re_path(r"^agents/(?P<agent_id>[^/]+)/threads/(?P<thread_id>[^/]+)/approvals/(?P<approval_id>[^/]+)/?$",
            agent_threads.ApprovalView.as_view(), name="agent-thread-approval"),
    *router.urls,
]
