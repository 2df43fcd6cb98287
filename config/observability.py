"""What an operator sees: request ids, one log line per event (plain or JSON), one log
line per destructive operation, and the Prometheus metrics served at `/metrics`.

- `RequestIdMiddleware` gives every request an id (the caller's `X-Request-ID` when it
  is a sane token, else a new one), returns it in `X-Request-ID`, and puts it on every
  log line written while the request is handled (`RequestIdFilter`). It also writes the
  request's own line: method, path, status, duration, user.
- `destructive_operation(...)` / `record_destructive(...)`: the services report what
  they removed; the counts go to the Prometheus counters after commit and to one log
  line per operation — an operation that runs in batches (a prune command, a sweep)
  wraps itself in `destructive_operation` and logs once, with the totals, at the end.
- `MetricsMiddleware`: request counts and latencies by route (the URL name, never the
  raw path, so the label set stays bounded).
"""

import contextvars
import getpass
import json
import logging
import re
import sys
import time
import traceback
import uuid
from collections import Counter
from contextlib import contextmanager

from django.db import transaction
from prometheus_client import Counter as PromCounter
from prometheus_client import Histogram

request_id_var: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="-")
request_var: contextvars.ContextVar = contextvars.ContextVar("request", default=None)
operation_var: contextvars.ContextVar = contextvars.ContextVar("destructive_operation", default=None)

logger = logging.getLogger("threadkeeper")
request_logger = logging.getLogger("threadkeeper.request")
_SANE_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")

# --- Metrics ------------------------------------------------------------------------

HTTP_REQUESTS = PromCounter(
    "threadkeeper_http_requests", "HTTP requests handled, by route, method and status.", ["route", "method", "status"]
)
HTTP_LATENCY = Histogram(
    "threadkeeper_http_request_duration_seconds", "Time to the response's headers, by route and method.",
    ["route", "method"], buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
DELETED = PromCounter(
    "threadkeeper_deleted", "Objects removed by destructive operations (counted after commit), by kind.", ["kind"]
)
DESTRUCTIVE_OPS = PromCounter(
    "threadkeeper_destructive_operations", "Destructive service calls committed, by operation.", ["operation"]
)
PRUNE_BATCH_SECONDS = Histogram(
    "threadkeeper_prune_batch_duration_seconds", "Duration of one prune batch (one transaction), by strategy.",
    ["strategy"], buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
)


# --- Request id and the request line ---------------------------------------------------


def current_actor() -> str:
    """Who is doing what is being done: the request's user, else the OS user of a
    command or worker process."""
    request = request_var.get()
    if request is not None:
        user = getattr(request, "user", None)
        if user is not None and getattr(user, "is_authenticated", False):
            return f"user:{user.pk}:{user.get_username()}"
        return "anonymous"
    try:
        return f"process:{getpass.getuser()}"
    except Exception:  # no user name (containers)
        return "process"


def current_source() -> str:
    request = request_var.get()
    if request is not None:
        return "admin" if request.path.startswith("/admin/") else "api"
    argv0 = sys.argv[0] if sys.argv else ""
    if argv0.endswith("celery") or "celery" in sys.argv[:2]:
        return "worker"
    if argv0.endswith("manage.py") and len(sys.argv) > 1:
        return f"command:{sys.argv[1]}"
    return "process"


class RequestIdMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        incoming = request.headers.get("X-Request-ID", "")
        rid = incoming if _SANE_ID.match(incoming) else uuid.uuid4().hex
        request.request_id = rid
        # Set, not reset: under ASGI a streamed body is sent after this returns, in the
        # same context, and its lines keep the id; every request sets its own.
        request_id_var.set(rid)
        request_var.set(request)
        started = time.perf_counter()
        response = self.get_response(request)
        response["X-Request-ID"] = rid
        request_logger.info(
            "%s %s %s %.1fms", request.method, request.path, response.status_code,
            (time.perf_counter() - started) * 1000,
            extra={"method": request.method, "path": request.path, "status": response.status_code,
                   "duration_ms": round((time.perf_counter() - started) * 1000, 1), "user": current_actor()},
        )
        request_var.set(None)
        return response


class MetricsMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        started = time.perf_counter()
        response = self.get_response(request)
        match = getattr(request, "resolver_match", None)
        route = (match.view_name or match.route) if match else "unmatched"
        HTTP_LATENCY.labels(route, request.method).observe(time.perf_counter() - started)
        HTTP_REQUESTS.labels(route, request.method, str(response.status_code)).inc()
        return response


class RequestIdFilter(logging.Filter):
    def filter(self, record):
        if not hasattr(record, "request_id"):
            record.request_id = request_id_var.get()
        return True


# --- Formatters: one line per event ----------------------------------------------------

_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message", "asctime", "request_id"}


class PlainFormatter(logging.Formatter):
    """`time level logger [request id] message`, a traceback folded onto the same line."""

    def __init__(self):
        super().__init__("%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s")

    def formatException(self, ei):
        return " | ".join(line for chunk in traceback.format_exception(*ei) for line in chunk.rstrip().splitlines())

    def format(self, record):
        return super().format(record).replace("\n", " | ")


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ts, level, logger, message, request_id, the record's
    extra fields, and `exc` (the traceback) when there is one."""

    def format(self, record):
        entry = {
            "ts": self.formatTime(record, "%Y-%m-%dT%H:%M:%S") + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "request_id": getattr(record, "request_id", "-"),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_"):
                entry[key] = value
        if record.exc_info:
            entry["exc"] = "".join(traceback.format_exception(*record.exc_info))
        return json.dumps(entry, default=str)


JsonFormatter.converter = time.gmtime
PlainFormatter.converter = time.gmtime


# --- Destructive operations ------------------------------------------------------------


class _Operation:
    def __init__(self, name: str, details: dict):
        self.name = name
        self.details = details
        self.counts: Counter = Counter()
        self.calls = 0


@contextmanager
def destructive_operation(name: str, **details):
    """Group the destructive service calls made inside into one operation, logged once
    when it ends with the totals committed meanwhile. Nested scopes join the outer one."""
    if operation_var.get() is not None:
        yield operation_var.get()
        return
    op = _Operation(name, details)
    token = operation_var.set(op)
    started = time.perf_counter()
    try:
        yield op
    finally:
        operation_var.reset(token)
        if op.calls:
            _log_operation(op.name, dict(op.counts), {**op.details, "duration_s": round(time.perf_counter() - started, 3)})


def record_destructive(operation: str, counts: dict, **details) -> None:
    """Report what a destructive service call removed (or changed). Counted and logged
    after commit (nothing if it rolls back): counters `threadkeeper_deleted{kind}` and
    one log line naming who, through what, and the counts — or, inside a
    `destructive_operation`, added to that operation's single line."""
    counts = {k: int(v) for k, v in counts.items() if v}
    op = operation_var.get()
    actor, source = current_actor(), current_source()

    def commit():
        DESTRUCTIVE_OPS.labels(operation).inc()
        count_deleted(counts)
        if op is not None:
            op.calls += 1
            op.counts.update(counts)
        else:
            _log_operation(operation, counts, details, actor=actor, source=source)

    transaction.on_commit(commit)


def count_deleted(counts: dict) -> None:
    """Add to `threadkeeper_deleted_total{kind}` ({kind: n}; zeros skipped), now: for
    what is removed outside a transaction (the embeddings, by the cleanup task)."""
    for kind, n in counts.items():
        if n:
            DELETED.labels(kind).inc(n)


def _log_operation(operation, counts, details, *, actor=None, source=None):
    actor = actor or current_actor()
    source = source or current_source()
    summary = ", ".join(f"{n} {kind}" for kind, n in sorted(counts.items())) or "nothing"
    logger.info(
        "%s by %s via %s: %s", operation, actor, source, summary,
        extra={"event": "destructive_operation", "operation": operation, "actor": actor, "source": source,
               "counts": counts, **details},
    )


@contextmanager
def timed_prune_batch(strategy: str):
    started = time.perf_counter()
    try:
        yield
    finally:
        PRUNE_BATCH_SECONDS.labels(strategy).observe(time.perf_counter() - started)
