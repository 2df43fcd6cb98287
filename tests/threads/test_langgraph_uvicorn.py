"""Streaming under the production server (`uvicorn config.asgi:application`) with a
real Celery worker: the SDK streams, and waiting streams hold no server thread, so
other requests are answered meanwhile (PostgreSQL + Redis only)."""

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from django.db import connection
from langgraph_sdk import get_sync_client
from rest_framework_simplejwt.tokens import RefreshToken

from threads import services

from .test_langgraph_streaming import ask

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]
ROOT = Path(__file__).resolve().parents[2]
PORT = int(os.environ.get("TEST_UVICORN_PORT", "8121"))


@pytest.fixture
def uvicorn_url(celery_worker_process):
    db = connection.settings_dict
    env = dict(os.environ, DJANGO_SETTINGS_MODULE="config.settings_test", CELERY_TASK_ALWAYS_EAGER="0",
               DATABASE_URL=f"postgres://{db['USER']}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}")
    log = open(ROOT / "var" / "test-uvicorn.log", "ab")
    proc = subprocess.Popen([sys.executable, "-m", "uvicorn", "config.asgi:application", "--port", str(PORT),
                             "--log-level", "warning"], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{PORT}"
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            assert proc.poll() is None, "uvicorn exited; see var/test-uvicorn.log"
            try:
                httpx.get(f"{url}/api/schema/", timeout=1)
                break
            except httpx.HTTPError:
                time.sleep(0.2)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_sdk_streams_under_uvicorn_and_idle_streams_hold_no_thread(uvicorn_url, project, owner):
    thread = services.create_thread(project=project, created_by=owner)
    headers = {"Authorization": f"Bearer {RefreshToken.for_user(owner).access_token}"}
    client = get_sync_client(url=f"{uvicorn_url}/api", api_key=None, headers=headers, timeout=30)
    parts = list(client.runs.stream(str(thread.pk), "echo", input=ask("under uvicorn"), stream_mode="messages-tuple"))
    assert parts[0].event == "metadata" and parts[-1].event == "end"
    assert "".join(p.data[0]["content"] for p in parts if p.event == "messages") == "Echo: under uvicorn"
    # 40 clients follow the thread's stream and read nothing (more than the server's
    # thread pool): a run still streams, and plain requests are still answered.
    with httpx.Client(base_url=uvicorn_url, headers=headers, timeout=30) as http:
        idle = [http.stream("GET", f"/api/threads/{thread.pk}/stream").__enter__() for _ in range(40)]
        try:
            assert all(r.status_code == 200 for r in idle)
            assert http.get(f"/api/threads/{thread.pk}/runs").status_code == 200
            values = client.runs.wait(str(thread.pk), "echo", input=ask("still here"))
            assert values["messages"][-1]["content"] == "Echo: still here"
        finally:
            for r in idle:
                r.close()


def test_a_chunked_body_under_uvicorn_is_read_or_refused_over_the_limit(uvicorn_url, project, owner):
    """curl -H 'Transfer-Encoding: chunked' against the production server: the body is
    parsed (before, a thread was made in the default project with none of it), and a
    body over the limit (2.5 MB by default) is a 413 whatever its framing."""
    headers = {"Authorization": f"Bearer {RefreshToken.for_user(owner).access_token}",
               "Content-Type": "application/json"}

    def parts(*chunks):
        yield from chunks

    with httpx.Client(base_url=uvicorn_url, headers=headers, timeout=30) as http:
        made = http.post("/api/threads", content=parts(b'{"project_id": "', str(project.pk).encode(),
                                                       b'", "metadata": {"sent": "chunked"}}'))
        assert made.request.headers["transfer-encoding"] == "chunked"
        assert made.status_code == 201 and made.json()["metadata"] == {"sent": "chunked"}
        assert made.json()["project_id"] == str(project.pk)
        big = http.post("/api/threads", content=parts(*[b" " * 65536] * 160))  # 10 MB
        assert big.status_code == 413 and big.json()["detail"].startswith("Request body too large")
