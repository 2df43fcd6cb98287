"""`/healthz`, `/readyz` and `/metrics`.

In-process with Django's test client, and under uvicorn started with the Procfile's
own `web` command line, pointed at closed ports, for the 503s: a stopped Redis, a
stopped PostgreSQL.
"""

import json
import os
import re
import secrets
import shlex
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from django.db import connection
from django.test import Client, override_settings

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def thread(project, owner):
    from threads.services import create_thread

    return create_thread(project=project, created_by=owner, title="probe")


def closed_port() -> int:
    """A port nothing listens on (bound then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# --- in-process ------------------------------------------------------------------------


def test_healthz_answers_without_touching_anything(client):
    # No django_db mark: a query would raise here.
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}
    assert response["Cache-Control"] == "no-store"


@pytest.mark.django_db
def test_readyz_reports_each_dependency_with_its_latency(client):
    response = client.get("/readyz")
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["status"] == "ok"
    assert set(body["checks"]) == {"database", "cache", "broker"}
    for check in body["checks"].values():
        assert check["status"] == "ok"
        assert isinstance(check["latency_ms"], float)


@pytest.mark.django_db
def test_probes_answer_any_host_and_plain_http(settings):
    """Load balancers call by the machine's address, over HTTP, without a login."""
    settings.ALLOWED_HOSTS = ["tk.example.com"]
    settings.SECURE_SSL_REDIRECT = True
    client = Client()
    assert client.get("/healthz", HTTP_HOST="10.1.2.3:8000").status_code == 200
    assert client.get("/readyz", HTTP_HOST="10.1.2.3:8000").status_code == 200
    assert client.get("/api/threads", HTTP_HOST="10.1.2.3:8000").status_code == 400  # everything else checks


def test_probes_refuse_writes(client):
    response = client.post("/readyz")
    assert response.status_code == 405
    assert "detail" in response.json()


@pytest.mark.django_db
def test_readyz_names_a_stopped_cache_with_503():
    port = closed_port()
    caches = {"default": {"BACKEND": "django_redis.cache.RedisCache", "LOCATION": f"redis://127.0.0.1:{port}/0",
                          "OPTIONS": {"SOCKET_CONNECT_TIMEOUT": 1, "SOCKET_TIMEOUT": 1}}}
    with override_settings(CACHES=caches):
        response = Client().get("/readyz")
    assert response.status_code == 503
    body = response.json()
    assert body["failing"] == ["cache"]
    assert body["checks"]["cache"]["status"] == "error"
    assert body["checks"]["database"]["status"] == "ok"
    assert "cache" in body["detail"]


@pytest.mark.django_db
def test_readyz_names_a_stopped_broker_with_503():
    port = closed_port()
    with override_settings(CELERY_BROKER_URL=f"redis://127.0.0.1:{port}/0", CELERY_TASK_ALWAYS_EAGER=False):
        response = Client().get("/readyz")
    assert response.status_code == 503
    assert response.json()["failing"] == ["broker"]


# --- /metrics ----------------------------------------------------------------------------


@pytest.mark.django_db
def test_metrics_count_requests_by_route_and_read_the_domain(client, api, thread):
    api.get(f"/api/threads/{thread.pk}")
    text = client.get("/metrics").content.decode()
    assert re.search(r'threadkeeper_http_requests_total\{method="GET",route="thread-detail",status="200"\} \d', text)
    assert 'threadkeeper_http_request_duration_seconds_bucket{le="0.005",method="GET",route="thread-detail"}' in text
    assert 'threadkeeper_runs_active{status="pending"}' in text
    assert "threadkeeper_sandbox_outbox_backlog 0.0" in text
    assert "threadkeeper_domain_metrics_up 1.0" in text


@pytest.mark.django_db(transaction=True)
def test_metrics_count_a_deletion_after_commit(client, api, thread):
    def deleted_threads():
        text = client.get("/metrics").content.decode()
        found = re.search(r'^threadkeeper_deleted_total\{kind="threads"\} ([0-9.]+)$', text, re.M)
        return float(found.group(1)) if found else 0.0

    before = deleted_threads()
    assert api.delete(f"/api/threads/{thread.pk}").status_code == 200
    assert deleted_threads() == before + 1


@pytest.mark.django_db
def test_metrics_are_protected_by_network_or_token(settings):
    settings.METRICS_ALLOWED_NETWORKS = ["10.0.0.0/8"]
    settings.METRICS_TOKEN = "scrape-secret"
    client = Client()
    refused = client.get("/metrics", REMOTE_ADDR="192.0.2.7")
    assert refused.status_code == 403 and "detail" in refused.json()
    assert client.get("/metrics", REMOTE_ADDR="192.0.2.7", HTTP_AUTHORIZATION="Bearer wrong").status_code == 403
    assert client.get("/metrics", REMOTE_ADDR="192.0.2.7",
                      HTTP_AUTHORIZATION="Bearer scrape-secret").status_code == 200
    assert client.get("/metrics", REMOTE_ADDR="10.4.5.6").status_code == 200


# --- under uvicorn, with the Procfile's web command, dependencies on closed ports ---------


def procfile_web(port: int) -> list[str]:
    line = next(line for line in (ROOT / "Procfile").read_text().splitlines() if line.startswith("web:"))
    command = line.split(":", 1)[1].replace("${HOST:-127.0.0.1}", "127.0.0.1").replace("${PORT:-8000}", str(port))
    command = re.sub(r"\$\{WEB_CONCURRENCY:-(\d+)\}", "1", command)
    assert "$" not in command, command
    return shlex.split(command)


def get(url, headers=None):
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()


def serve(env_overrides: dict):
    port = closed_port()
    env = {k: v for k, v in os.environ.items() if k not in {"DJANGO_SETTINGS_MODULE", "PROMETHEUS_MULTIPROC_DIR"}}
    env.update({"DEBUG": "0", "SECRET_KEY": secrets.token_urlsafe(50), "ENV_FILE": "", "ALLOWED_HOSTS": "127.0.0.1",
                **env_overrides})
    process = subprocess.Popen(procfile_web(port), cwd=ROOT, env=env, start_new_session=True,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        assert process.poll() is None, process.stdout.read()
        try:
            if get(f"{base}/healthz")[0] == 200:
                return process, base
        except OSError:
            pass
        assert time.monotonic() < deadline, "uvicorn did not start within 60 s"
        time.sleep(0.3)


def stop(process):
    os.killpg(process.pid, signal.SIGTERM)
    try:
        return process.communicate(timeout=30)[0]
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        return process.communicate()[0]


def test_readyz_under_uvicorn_names_stopped_redis_and_postgresql():
    redis_port, pg_port = closed_port(), closed_port()
    process, base = serve({
        "DATABASE_URL": f"postgres://postgres@127.0.0.1:{pg_port}/threadkeeper",
        "REDIS_URL": f"redis://127.0.0.1:{redis_port}/0", "CELERY_BROKER_URL": "",
    })
    try:
        status, headers, body = get(f"{base}/healthz")
        assert status == 200  # alive, whatever its dependencies
        assert "server" not in {k.lower() for k in headers}, "no server banner"
        started = time.monotonic()
        status, headers, body = get(f"{base}/readyz")
        elapsed = time.monotonic() - started
        body = json.loads(body)
        assert status == 503, body
        assert body["failing"] == ["database", "cache", "broker"]
        assert all(body["checks"][name]["status"] == "error" for name in body["failing"])
        assert "database, cache, broker" in body["detail"]
        assert elapsed < 10, "a closed port fails fast"
        assert {k.lower(): v for k, v in headers.items()}.get("x-request-id")
    finally:
        output = stop(process)
    assert "Traceback" not in output


@pytest.mark.postgres
def test_readyz_under_uvicorn_with_postgresql_up_and_redis_stopped(django_db_setup, django_db_blocker):
    redis_port = closed_port()
    with django_db_blocker.unblock():
        db = connection.settings_dict  # the suite's test database (the server only runs SELECT 1)
    url = f"postgres://{db['USER']}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"
    process, base = serve({"DATABASE_URL": url, "REDIS_URL": f"redis://127.0.0.1:{redis_port}/0",
                           "CELERY_BROKER_URL": ""})
    try:
        status, _, body = get(f"{base}/readyz")
        body = json.loads(body)
        assert status == 503, body
        assert body["failing"] == ["cache", "broker"]
        assert body["checks"]["database"]["status"] == "ok"
    finally:
        stop(process)
