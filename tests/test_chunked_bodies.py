"""A request body sent chunked (no Content-Length), through the ASGI application the
production server runs (`config.asgi:application`), by a real HTTP client: it is
read and parsed like any other, and refused with a 413 over the size limit. Before,
DRF saw no length and parsed it as empty (a thread made in the default project, with
none of what was sent)."""

import httpx
import pytest
from asgiref.sync import async_to_sync
from django.core.signals import request_finished, request_started
from django.db import close_old_connections
from rest_framework_simplejwt.tokens import RefreshToken

from threads.models import Thread

pytestmark = pytest.mark.django_db


def chunked(*parts: bytes):
    async def body():
        for part in parts:
            yield part
    return body()


def post(path: str, user, content, **headers):
    from config.asgi import application

    token = str(RefreshToken.for_user(user).access_token)

    async def go():
        transport = httpx.ASGITransport(app=application)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            return await client.post(path, content=content, headers={
                "Authorization": f"Bearer {token}",
                "Content-Type": "application/json", **headers})

    # As Django's own test clients do: the handler must not close the test's connection.
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    try:
        return async_to_sync(go)()
    finally:
        request_started.connect(close_old_connections)
        request_finished.connect(close_old_connections)


def test_a_chunked_body_is_read_like_any_other(owner, project):
    response = post("/api/threads", owner, chunked(b'{"project_id": "', str(project.pk).encode(),
                                                    b'", "metadata": {"sent": "chunked"}}'))
    assert response.request.headers.get("transfer-encoding") == "chunked"
    assert "content-length" not in response.request.headers
    assert response.status_code == 201, response.text
    thread = Thread.objects.get(pk=response.json()["thread_id"])
    assert thread.project_id == project.pk and thread.metadata == {"sent": "chunked"}


def test_a_chunked_body_over_the_limit_is_a_413_read_no_further(owner, project, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1000
    read = []

    async def big():
        for _ in range(1000):  # 100 kB offered, 1 kB allowed
            read.append(1)
            yield b" " * 100

    response = post("/api/threads", owner, big())
    assert response.status_code == 413
    assert response.json() == {"detail": "Request body too large: the limit is 1000 bytes."}
    assert len(read) < 1000 and not Thread.objects.exists()


def test_a_body_with_its_length_declared_is_untouched(owner, project):
    response = post("/api/threads", owner, f'{{"project_id": "{project.pk}"}}'.encode())
    assert "content-length" in response.request.headers
    assert response.status_code == 201 and Thread.objects.get().project_id == project.pk
