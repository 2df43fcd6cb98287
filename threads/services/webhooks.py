"""LangGraph's run `webhook`: when a run ends, its final state is POSTed to the URL.

The run is read right after the commit that ends it (before a stateless run's thread
is deleted) and handed to a delivery task: it never delays the run nor decides its
outcome. A failed delivery (connection error, timeout, a 5xx, 408 or 429) is retried
with exponential backoff (`WEBHOOK_MAX_RETRIES`, `WEBHOOK_RETRY_BACKOFF`); any other
4xx is final and logged, and so is a redirect (3xx: never followed, so it could not
lead the POST anywhere the checks below did not vet). `WEBHOOK_TIMEOUT_SECONDS` bounds
the whole attempt, not each read: a receiver that trickles its answer a byte at a
time is cut off at the deadline (it held a worker for as long as it kept trickling).

A webhook never reaches a private network unless `WEBHOOK_ALLOW_PRIVATE` (on with
DEBUG, off in production): a URL naming a loopback, private, link-local or otherwise
non-public address (or `localhost`) is a 422 when the run is created, and at delivery
the host is resolved, every address it resolves to must be public, and the POST
connects to the address that was checked (no second lookup a DNS answer could change).
"""

import http.client
import ipaddress
import json
import logging
import socket
import threading
import urllib.parse
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


class WebhookRefused(Exception):
    """A webhook URL that points at a private network (never retried)."""


LOCAL_NAMES = ("localhost", "localhost.")


def public_address(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    ip = getattr(ip, "ipv4_mapped", None) or ip
    return ip.is_global and not ip.is_multicast


def refusal(url: str) -> str | None:
    """Why this webhook URL may not be used, judged from the URL alone (no DNS): it
    names a non-public address or `localhost`. None when it may (or when private
    networks are allowed)."""
    if settings.WEBHOOK_ALLOW_PRIVATE:
        return None
    host = (urllib.parse.urlsplit(url).hostname or "").lower()
    if host in LOCAL_NAMES or host.endswith(".localhost"):
        return "The webhook may not point at localhost."
    try:
        if not public_address(host):
            return "The webhook may not point at a private, loopback or link-local address."
    except ValueError:  # a host name: checked when it is resolved, at delivery
        pass
    return None


def vetted_address(host: str, port: int) -> str:
    """The address to connect to for `host`: every address it resolves to must be
    public (unless private networks are allowed)."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError as exc:
        raise WebhookFailed(f"{host}: {exc}") from exc
    addresses = [info[4][0] for info in infos]
    if not settings.WEBHOOK_ALLOW_PRIVATE:
        private = [a for a in addresses if not public_address(a)]
        if private:
            raise WebhookRefused(f"{host} resolves to a non-public address ({private[0]})")
    return addresses[0]


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
    background thread, so that nothing waits for the receiver). With the broker
    unreachable the webhooks are not sent: one warning names the runs (it raised out
    of the commit's callback, a traceback, and the other runs' webhooks were skipped
    unsaid), and the broker is tried once, not once per run."""
    from celery import current_app

    from ..tasks import deliver_run_webhook
    from .runs import run_in_process_later

    unsent = []
    for run in Run.objects.filter(pk__in=list(run_ids)):
        url = (run.kwargs or {}).get("webhook")
        if not url:
            continue
        if unsent:  # the broker is down: not tried again for each run
            unsent.append(str(run.pk))
            continue
        args = (url, run_document(run))
        if current_app.conf.task_always_eager:
            run_in_process_later(deliver_run_webhook, *args)
            continue
        try:
            deliver_run_webhook.delay(*args)
        except Exception as exc:  # the broker is unreachable: logged, never an error of the caller
            unsent.append(str(run.pk))
            reason = exc
    if unsent:
        logger.warning("Webhooks of runs %s not sent: the broker is unreachable (%s).", unsent, reason)


def deliver_webhook(*, url: str, run: dict) -> int | None:
    """POST the run to `url` once; returns the HTTP status (None when the URL is
    refused: a private network, logged, never retried). Raises `WebhookFailed` when
    trying again may help."""
    parts = urllib.parse.urlsplit(url)
    https = parts.scheme == "https"
    port = parts.port or (443 if https else 80)
    try:
        reason = refusal(url)
        if reason:
            raise WebhookRefused(reason)
        address = vetted_address(parts.hostname or "", port)
    except WebhookRefused as exc:
        logger.warning("Webhook of run %s not sent: %s", run.get("run_id"), exc)
        return None
    body = dict(run, webhook_sent_at=timezone.now())
    timeout = settings.WEBHOOK_TIMEOUT_SECONDS
    connection = (http.client.HTTPSConnection if https else http.client.HTTPConnection)(
        parts.hostname, port, timeout=timeout)
    # Connect to the address checked above; TLS still verifies the host name.
    connection._create_connection = lambda _, *args, **kwargs: socket.create_connection((address, port), *args,
                                                                                         **kwargs)
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    deadline = threading.Timer(timeout, _cut_off, args=(connection,))
    deadline.daemon = True
    try:
        # Connected first (bounded by `timeout` itself), so the deadline always has a
        # socket to shut: one firing mid-connect found none, and the trickled answer
        # that followed was bounded only per read.
        connection.connect()
        deadline.start()
        connection.request("POST", target, body=json.dumps(body, cls=DjangoJSONEncoder).encode(), headers={
            "Content-Type": "application/json", "User-Agent": "threadkeeper-webhook"})
        status = connection.getresponse().status
        if getattr(connection, "cut_off", False):  # (headers cut short read as complete)
            raise OSError("cut off")
    except (OSError, http.client.HTTPException) as exc:  # connection refused, timeout, TLS
        if getattr(connection, "cut_off", False):
            raise WebhookFailed(f"{url}: no complete answer within {timeout:g} s") from exc
        raise WebhookFailed(f"{url}: {exc}") from exc
    finally:
        deadline.cancel()
        connection.close()
    if status >= 500 or status in RETRY_STATUSES:
        raise WebhookFailed(f"{url} answered {status}")
    if status >= 400:
        logger.warning("Webhook of run %s refused by %s with %s; not retried.", run.get("run_id"), url, status)
    elif status >= 300:
        logger.warning("Webhook of run %s not delivered: %s answered %s (a redirect; not followed, not retried).",
                       run.get("run_id"), url, status)
    return status


def _cut_off(connection: http.client.HTTPConnection) -> None:
    """The attempt's deadline: shut the socket, so that a read waiting on it ends."""
    connection.cut_off = True
    try:
        if connection.sock is not None:
            connection.sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
