"""The Prometheus exposition at `/metrics`.

Two kinds of series:
- the process's own counters and histograms (`config.observability`: requests by
  route, objects deleted, destructive operations, prune batch durations). With
  `PROMETHEUS_MULTIPROC_DIR` set (the `Procfile` stack sets it) the web and worker
  processes of a machine write them to that directory and `/metrics` adds them up;
- the domain's state, read from the database at each scrape by `DomainCollector` in a
  few aggregate queries: runs pending/running, sandboxes by state, the sandbox
  deletion outbox (backlog, oldest age, failed attempts), embeddings left behind by
  deleted threads (the embedding-cleanup backlog of the database vector store).
"""

import logging
import os

from django.db.models import Count, Min, Q
from django.utils import timezone
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import REGISTRY

logger = logging.getLogger(__name__)

def _runs():
    from threads.models import ACTIVE_RUN_STATUSES, Run

    found = dict(Run.objects.filter(status__in=ACTIVE_RUN_STATUSES).order_by().values_list("status").annotate(n=Count("pk")))
    return [((str(status),), found.get(status, 0)) for status in ACTIVE_RUN_STATUSES]


def _sandboxes():
    from sandboxes.models import Sandbox, SandboxState

    found = dict(Sandbox.objects.order_by().values_list("state").annotate(n=Count("pk")))
    return [((str(state),), found.get(state, 0)) for state in SandboxState.values]


def _sandbox_outbox():
    from sandboxes.models import Sandbox, SandboxState

    row = Sandbox.objects.filter(state=SandboxState.PENDING_DELETION).aggregate(
        backlog=Count("pk"), failed=Count("pk", filter=Q(attempts__gt=0)), oldest=Min("deletion_requested_at"),
    )
    age = (timezone.now() - row["oldest"]).total_seconds() if row["oldest"] else 0.0
    return row["backlog"], row["failed"], age


def _orphan_embeddings():
    from django.conf import settings

    if settings.VECTOR_STORE_BACKEND != "threads.vectorstore.DatabaseVectorStore":
        return None
    from django.db.models import Exists, OuterRef

    from threads.models import Embedding, Thread

    return Embedding.objects.filter(~Exists(Thread.objects.filter(pk=OuterRef("thread_id")))).count()


class DomainCollector:
    def collect(self):
        try:
            runs = GaugeMetricFamily("threadkeeper_runs_active", "Runs pending or running.", labels=["status"])
            for labels, value in _runs():
                runs.add_metric(labels, value)
            yield runs
            sandboxes = GaugeMetricFamily("threadkeeper_sandboxes", "Sandboxes by state.", labels=["state"])
            for labels, value in _sandboxes():
                sandboxes.add_metric(labels, value)
            yield sandboxes
            backlog, failed, age = _sandbox_outbox()
            yield GaugeMetricFamily("threadkeeper_sandbox_outbox_backlog",
                                    "Sandboxes waiting for deletion at their provider.", value=backlog)
            yield GaugeMetricFamily("threadkeeper_sandbox_outbox_failed",
                                    "Sandboxes waiting for deletion whose provider call failed at least once.",
                                    value=failed)
            yield GaugeMetricFamily("threadkeeper_sandbox_outbox_oldest_age_seconds",
                                    "Age of the oldest sandbox waiting for deletion (0: none).", value=age)
            orphans = _orphan_embeddings()
            if orphans is not None:
                yield GaugeMetricFamily("threadkeeper_embedding_cleanup_backlog",
                                        "Embeddings whose thread is deleted, not yet removed.", value=orphans)
            up = 1
        except Exception as exc:  # the database being down must not take the scrape down
            logger.warning("domain metrics unavailable: %s: %s", type(exc).__name__, exc)
            up = 0
        yield GaugeMetricFamily("threadkeeper_domain_metrics_up",
                                "1 when the domain gauges could be read from the database.", value=up)


def render() -> tuple[bytes, str]:
    registry = CollectorRegistry()
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.MultiProcessCollector(registry)
        registry.register(DomainCollector())
        return generate_latest(registry), CONTENT_TYPE_LATEST
    registry.register(DomainCollector())
    return generate_latest(REGISTRY) + generate_latest(registry), CONTENT_TYPE_LATEST
