"""LangGraph's run `webhook`: when a run ends, its final state is POSTed to the URL.

The run is read right after the commit that ends it (before a stateless run's thread
is deleted) and handed to a delivery task: it never delays the run nor decides its
outcome. A failed delivery (connection error, timeout, a 5xx, 408 or 429) is retried
with exponential backoff (`WEBHOOK_MAX_RETRIES`, `WEBHOOK_RETRY_BACKOFF`); any other
4xx is final and logged.
"""

import json
import logging
import urllib.error
import urllib.request
from functools import partial

from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from django.db import transaction
from django.utils import timezone

from ..models import Run

logger = logging.getLogger(__name__)

RETRY_STATUSES = {408, 429}


class WebhookFailed(Exception):
    """A delivery that may succeed if tried again."""


def run_document(run: Run) -> dict:
    """The run as LangGraph's `Run` shape, plus what it produced (JSON-ready)."""
    from ..serializers import RunSerializer

    return json.loads(json.dumps(RunSerializer(run).data, cls=DjangoJSONEncoder))


def schedule_webhooks(run_ids) -> None:
    """After commit, deliver these ended runs to their webhooks. `run_ids` may be a
    queryset: it is read after commit, never in the caller's transaction."""
    transaction.on_commit(partial(send_webhooks, run_ids), robust=True)


def send_webhooks(run_ids) -> None:
    """Read the ended runs now and hand each to a delivery task (in-process: a
    background thread, so that nothing waits for the receiver)."""
    from celery import current_app

    from ..tasks import deliver_run_webhook
    from .runs import run_in_process_later

    for run in Run.objects.filter(pk__in=list(run_ids)):
        url = (run.kwargs or {}).get("webhook")
        if not url:
            continue
        args = (url, run_document(run))
        if current_app.conf.task_always_eager:
            run_in_process_later(deliver_run_webhook, *args)
        else:
            deliver_run_webhook.delay(*args)


def deliver_webhook(*, url: str, run: dict) -> int:
    """POST the run to `url` once; returns the HTTP status. Raises `WebhookFailed`
    when trying again may help."""
    body = dict(run, webhook_sent_at=timezone.now())
    request = urllib.request.Request(
        url, data=json.dumps(body, cls=DjangoJSONEncoder).encode(), method="POST",
        headers={"Content-Type": "application/json", "User-Agent": "threadkeeper-webhook"},
    )
    try:
        with urllib.request.urlopen(request, timeout=settings.WEBHOOK_TIMEOUT_SECONDS) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        if exc.code >= 500 or exc.code in RETRY_STATUSES:
            raise WebhookFailed(f"{url} answered {exc.code}") from exc
        logger.warning("Webhook of run %s refused by %s with %s; not retried.", run.get("run_id"), url, exc.code)
        return exc.code
    except (OSError, ValueError) as exc:  # connection refused, DNS, timeout, TLS
        raise WebhookFailed(f"{url}: {exc}") from exc
