"""`/healthz`, `/readyz` and `/metrics`, answered by a middleware before host checks,
redirects, sessions and authentication: load balancers and Prometheus call them by the
machine's address, over plain HTTP, without a login.

- `GET /healthz`: liveness. The process answers; nothing else is touched.
- `GET /readyz`: readiness. The database, the cache and the Celery broker, each with its
  status and latency; 503 naming the failing ones when any is down.
- `GET /metrics`: Prometheus text format, allowed from `METRICS_ALLOWED_NETWORKS` or with
  `Authorization: Bearer <METRICS_TOKEN>`; 403 otherwise.
"""

import hmac
import ipaddress
import time

from django.conf import settings
from django.core.cache import caches
from django.db import connections
from django.http import HttpResponse, JsonResponse

from . import metrics

PROBE_PATHS = {"/healthz": "healthz", "/readyz": "readyz", "/metrics": "metrics"}


class ProbeMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        name = PROBE_PATHS.get(request.path.rstrip("/") or "/")
        if name is None:
            return self.get_response(request)
        if request.method not in ("GET", "HEAD"):
            return JsonResponse({"detail": f'Method "{request.method}" not allowed.'}, status=405,
                                headers={"Allow": "GET, HEAD"})
        response = {"healthz": healthz, "readyz": readyz, "metrics": metrics_view}[name](request)
        response["Cache-Control"] = "no-store"
        return response


def healthz(request):
    return JsonResponse({"status": "ok"})


def _timed(check):
    started = time.perf_counter()
    try:
        detail = check()
        result = {"status": "ok"}
        if detail:
            result["detail"] = detail
    except Exception as exc:  # any failure of a dependency is the answer, not a 500
        result = {"status": "error", "error": f"{type(exc).__name__}: {exc}"[:300]}
    result["latency_ms"] = round((time.perf_counter() - started) * 1000, 1)
    return result


def check_database():
    connection = connections["default"]
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    finally:
        # A probe never keeps a connection open that the next one could find broken.
        if not connection.in_atomic_block:
            connection.close_if_unusable_or_obsolete()
    return None


def check_cache():
    cache = caches["default"]
    key = "readyz:probe"
    cache.set(key, "1", 10)
    if cache.get(key) != "1":
        raise RuntimeError("the value written was not read back")
    return None


def check_broker():
    url = settings.CELERY_BROKER_URL
    if settings.CELERY_TASK_ALWAYS_EAGER or url.startswith("memory://"):
        return "tasks run in-process"
    from kombu import Connection

    timeout = settings.READYZ_TIMEOUT
    with Connection(url, connect_timeout=timeout, transport_options={"socket_timeout": timeout}) as conn:
        conn.ensure_connection(max_retries=1, interval_start=0, interval_step=0, timeout=timeout)
    return None


CHECKS = {"database": check_database, "cache": check_cache, "broker": check_broker}


def readyz(request):
    checks = {name: _timed(check) for name, check in CHECKS.items()}
    failing = [name for name, result in checks.items() if result["status"] != "ok"]
    body = {"status": "unavailable" if failing else "ok", "checks": checks}
    if failing:
        body["failing"] = failing
        body["detail"] = f"Not ready: {', '.join(failing)} unavailable."
    return JsonResponse(body, status=503 if failing else 200)


def _client_allowed(request) -> bool:
    token = settings.METRICS_TOKEN
    if token:
        given = request.headers.get("Authorization", "")
        if given.startswith("Bearer ") and hmac.compare_digest(given[7:].encode(), token.encode()):
            return True
    try:
        address = ipaddress.ip_address(request.META.get("REMOTE_ADDR", ""))
    except ValueError:
        return False
    return any(address in ipaddress.ip_network(net, strict=False) for net in settings.METRICS_ALLOWED_NETWORKS)


def metrics_view(request):
    if not _client_allowed(request):
        return JsonResponse({"detail": "Metrics are not available to this client."}, status=403)
    body, content_type = metrics.render()
    return HttpResponse(body, content_type=content_type)
