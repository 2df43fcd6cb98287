"""Refuse NUL characters in query strings and paths, for the API and the admin alike:
PostgreSQL cannot compare text with U+0000, so they would otherwise fail as a 500
deep in a query. JSON bodies are checked by `config.parsers.JSONParser`."""

from django.conf import settings
from django.http import JsonResponse

from .parsers import too_large


class RejectNulMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if "\x00" in request.path or any("\x00" in v for values in request.GET.lists() for v in values[1]) or any(
            "\x00" in k for k in request.GET
        ):
            return JsonResponse({"detail": "NUL characters are not allowed in the URL."}, status=422)
        return self.get_response(request)


class BodyLimitMiddleware:
    """A request whose declared body is over `DATA_UPLOAD_MAX_MEMORY_SIZE` bytes is a 413
    with a JSON `detail` before anything reads it (the API's JSON parser also stops
    reading one byte past the limit when no length is declared)."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        try:
            length = int(request.META.get("CONTENT_LENGTH") or 0)
        except ValueError:
            length = 0
        if limit is not None and length > limit and request.path.startswith("/api/"):
            return JsonResponse({"detail": str(too_large().detail)}, status=413)
        return self.get_response(request)


class SizedBody:
    """ASGI middleware (around the whole application, `config.asgi`): a request body
    sent without a `Content-Length` — `Transfer-Encoding: chunked` — is read here, at
    most one byte past `DATA_UPLOAD_MAX_MEMORY_SIZE`, then passed on with its length
    declared; over the limit it is a 413 with a JSON `detail`, and the rest is never
    read. Without this, Django's handler spools any such body whole and DRF, seeing
    no length, parses it as empty: `POST /api/threads` made a thread in the default
    project with none of what was sent."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        names = {name.lower() for name, _ in scope["headers"]} if scope["type"] == "http" else set()
        if b"transfer-encoding" not in names or b"content-length" in names:  # no body, or a declared one
            return await self.app(scope, receive, send)
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] != "http.request":  # the client went away
                return None
            chunks.append(message.get("body", b""))
            size += len(chunks[-1])
            if limit is not None and size > limit:
                return await self.refuse(send)
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        headers = [(name, value) for name, value in scope["headers"] if name.lower() != b"transfer-encoding"]
        scope = {**scope, "headers": [*headers, (b"content-length", str(len(body)).encode())]}
        sent = False

        async def replay():
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()  # then, as before: the client's disconnect

        return await self.app(scope, replay, send)

    @staticmethod
    async def refuse(send):
        import json

        body = json.dumps({"detail": str(too_large().detail)}).encode()
        await send({"type": "http.response.start", "status": 413,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                                (b"connection", b"close")]})
        await send({"type": "http.response.body", "body": body})
