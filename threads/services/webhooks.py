"""LangGraph's run `webhook`: when a run ends, its final state is POSTed to the URL.

The delivery is a task sent after the commit that ends the run: it never delays the
run nor decides its outcome. A failed delivery (connection error, timeout, a 5xx,
408 or 429) is retried with exponential backoff (`WEBHOOK_MAX_RETRIES`,
`WEBHOOK_RETRY_BACKOFF`); any other 4xx is final and logged.
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
    """The run as LangGraph's `Run` shape, plus what the run produced."""
    return {
        "run_id": str(run.pk),
        "thread_id": str(run.thread_id),
        "assistant_id": str(run.agent_id) if run.agent_id else None,
        "created_at": run.created_at,
        "updated_at": run.updated_at,
        "status": run.status,
        "metadata": run.metadata,
        "multitask_strategy": run.kwargs.get("multitask_strategy", "reject"),
        "kwargs": run.kwargs,
        "result": run.result,
        "error": run.error,
    }


def schedule_webhook(run: Run) -> None:
    """After commit, deliver the ended run to its webhook (if it has one)."""
    if (run.kwargs or {}).get("webhook"):
        schedule_webhooks([run.pk])


def schedule_webhooks(run_ids) -> None:
    """After commit, deliver these ended runs to their webhooks. `run_ids` may be a
    queryset: it is read after commit, never in the caller's transaction."""
    transaction.on_commit(partial(send_webhooks, run_ids), robust=True)


def send_webhooks(run_ids) -> None:
    from celery import current_app

    from ..tasks import deliver_run_webhook
    from .runs import run_in_process_later

    for run_id in run_ids:
        if current_app.conf.task_always_eager:
            run_in_process_later(deliver_run_webhook, str(run_id))
        else:
            deliver_run_webhook.delay(str(run_id))


def deliver_webhook(*, run_id) -> int | None:
    """POST the run to its webhook once; returns the HTTP status. Raises
    `WebhookFailed` when trying again may help. A run deleted meanwhile: nothing."""
    run = Run.objects.filter(pk=run_id).first()
    url = (run.kwargs or {}).get("webhook") if run is not None else None
    if not url:
        return None
    body = dict(run_document(run), webhook_sent_at=timezone.now())
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
        logger.warning("Webhook of run %s refused by %s with %s; not retried.", run_id, url, exc.code)
        return exc.code
    except (OSError, ValueError) as exc:  # connection refused, DNS, timeout, TLS
        raise WebhookFailed(f"{url}: {exc}") from exc
