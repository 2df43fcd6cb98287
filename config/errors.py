"""The error contract: every error body is JSON with a string `detail`.

Validation errors are 422 with `detail` and, where a field is at fault,
`errors: {field: [messages]}`. One handler for the whole API, plus JSON 404/500
handlers for routes outside DRF.
"""

import logging

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import RequestDataTooBig
from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import Http404, JsonResponse
from django.views import defaults
from django.views.decorators.csrf import csrf_exempt
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from .parsers import too_large

logger = logging.getLogger(__name__)


class ServiceError(Exception):
    """Base of the errors services raise; each maps to one HTTP status."""

    status_code = status.HTTP_400_BAD_REQUEST
    default_detail = "Bad request."

    def __init__(self, detail: str | None = None, *, errors: dict | None = None):
        self.detail = detail or self.default_detail
        self.errors = errors
        super().__init__(self.detail)


class NotFound(ServiceError):
    status_code = status.HTTP_404_NOT_FOUND
    default_detail = "Not found."


class Forbidden(ServiceError):
    status_code = status.HTTP_403_FORBIDDEN
    default_detail = "You do not have permission to perform this action."


class Conflict(ServiceError):
    status_code = status.HTTP_409_CONFLICT
    default_detail = "The resource is in a state that does not allow this."


class LimitReached(ServiceError):
    status_code = status.HTTP_402_PAYMENT_REQUIRED
    default_detail = "Plan limit reached."


class Protected(ServiceError):
    status_code = status.HTTP_400_BAD_REQUEST
    default_detail = "This object is protected."


class Invalid(ServiceError):
    status_code = status.HTTP_422_UNPROCESSABLE_ENTITY
    default_detail = "Invalid input."


class Unavailable(ServiceError):
    """A service the request needs is unreachable (the run streams' bus): try again."""

    status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    default_detail = "A service this request needs is unreachable; try again shortly."


def _flatten(detail) -> str:
    if isinstance(detail, dict):
        for key, value in detail.items():
            text = _flatten(value)
            return text if key in ("non_field_errors", "detail") else f"{key}: {text}"
        return "Invalid input."
    if isinstance(detail, (list, tuple)):
        return _flatten(detail[0]) if detail else "Invalid input."
    return str(detail)


def _plain(detail):
    """ErrorDetail structures as plain JSON, keeping their nesting: a list field's item
    errors stay keyed by index ({"thread_ids": {"0": ["Must be a valid UUID."]}})."""
    if isinstance(detail, dict):
        return {str(k): _plain(v) for k, v in detail.items()}
    if isinstance(detail, (list, tuple)):
        return [_plain(m) for m in detail]
    return str(detail)


def _field_errors(detail) -> dict:
    if isinstance(detail, dict):
        return {str(k): _plain(v) if isinstance(v, (list, tuple, dict)) else [str(v)] for k, v in detail.items()}
    return {}


def concurrent_conflict(exc) -> bool:
    """A transaction PostgreSQL broke off because of another one (a deadlock it
    resolved, a serialization failure): the request may be sent again."""
    from django.db import OperationalError

    cause = getattr(exc, "__cause__", None)
    return isinstance(exc, OperationalError) and getattr(cause, "sqlstate", None) in ("40P01", "40001")


def again_on_conflict(func=None, *, attempts: int = 3):
    """Run a service again when PostgreSQL broke its transaction off for another one
    (`concurrent_conflict`: a deadlock between lock orders it cannot avoid, such as a
    deletion's cascade reaching rows a concurrent write locked first), up to
    `attempts` times, a few milliseconds apart — only as the outermost transaction,
    when nothing of a caller's is lost with it. Its after-commit work went with the
    rolled-back attempt. The last conflict is raised (the API's 409)."""
    import random
    import time
    from functools import wraps

    from django.db import OperationalError, connection

    def decorate(service):
        @wraps(service)
        def run(*args, **kwargs):
            for attempt in range(1, attempts):
                try:
                    return service(*args, **kwargs)
                except OperationalError as exc:
                    if connection.in_atomic_block or not concurrent_conflict(exc):
                        raise
                    logger.info("%s: a concurrent transaction won (%s); attempt %d of %d", service.__name__,
                                exc.__cause__, attempt + 1, attempts)
                    time.sleep(random.uniform(0.005, 0.02) * attempt)
            return service(*args, **kwargs)

        return run

    return decorate(func) if func is not None else decorate


def exception_handler(exc, context):
    if concurrent_conflict(exc):
        logger.warning("%s: a concurrent request won (%s)", context.get("view").__class__.__name__, exc.__cause__)
        return Response({"detail": "A concurrent change to the same data came first; send the request again.",
                         "code": "concurrent_conflict"}, status=status.HTTP_409_CONFLICT)
    if isinstance(exc, ServiceError):
        body = {"detail": exc.detail}
        if exc.errors:
            body["errors"] = exc.errors
        return Response(body, status=exc.status_code)
    if isinstance(exc, DjangoValidationError):
        exc = exceptions.ValidationError(exc.message_dict if hasattr(exc, "error_dict") else exc.messages)
    if isinstance(exc, exceptions.ValidationError):
        body = {"detail": _flatten(exc.detail)}
        errors = _field_errors(exc.detail)
        if errors:
            body["errors"] = errors
        return Response(body, status=status.HTTP_422_UNPROCESSABLE_ENTITY)
    if isinstance(exc, exceptions.ParseError):
        return Response({"detail": str(exc.detail)}, status=status.HTTP_422_UNPROCESSABLE_ENTITY)
    if isinstance(exc, RequestDataTooBig):
        exc = too_large()
    if isinstance(exc, DjangoPermissionDenied):
        exc = exceptions.PermissionDenied()
    if isinstance(exc, Http404):
        exc = exceptions.NotFound()
    response = drf_exception_handler(exc, context)
    if response is None:
        logger.exception("Unhandled error in %s", context.get("view").__class__.__name__)
        return Response({"detail": "Internal server error."}, status=status.HTTP_500_INTERNAL_SERVER_ERROR)
    if isinstance(response.data, dict) and "detail" in response.data:
        response.data = {"detail": str(response.data["detail"])}
    else:
        response.data = {"detail": _flatten(response.data)}
    return response


def in_admin(request) -> bool:
    """A page of the admin (a browser's): its errors are pages, not JSON."""
    from django.urls import reverse

    return request.path.startswith(reverse("admin:index"))


@csrf_exempt
def json_404(request, exception=None):
    """Any unknown route, whatever the method: a JSON 404 (never Django's CSRF page
    for a POST, PATCH or DELETE to a mistyped path); in the admin, Django's page."""
    if in_admin(request):
        return defaults.page_not_found(request, exception or Http404())
    return JsonResponse({"detail": "Not found."}, status=404)


@csrf_exempt
def store_404(request, exception=None):
    """LangGraph's store (`client.store.*`) is not part of this service: say so."""
    return JsonResponse({"detail": "This server has no LangGraph store: /api/store is not supported "
                                   "(threads, runs, assistants and crons are)."}, status=404)


def json_500(request):
    if in_admin(request):
        return defaults.server_error(request)
    return JsonResponse({"detail": "Internal server error."}, status=500)
