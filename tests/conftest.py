"""Shared fixtures: users in accounts with each role, an authenticated API client,
and the real parts (PostgreSQL detection, a real Celery worker) for the tests that
depend on them."""

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.db import connection
from rest_framework.test import APIClient
from rest_framework_simplejwt.tokens import RefreshToken

from projects import services as project_services
from projects.models import Role

ROOT = Path(__file__).resolve().parent.parent


def on_postgres() -> bool:
    return connection.vendor == "postgresql"


def redis_url() -> str:
    return os.environ.get("REDIS_URL", "")


def pytest_collection_modifyitems(config, items):
    """`@pytest.mark.postgres` tests (row locks, SKIP LOCKED, real concurrency) are
    skipped on the SQLite defaults; `worker` tests without REDIS_URL."""
    skip_pg = pytest.mark.skip(reason="needs PostgreSQL (DATABASE_URL=postgres://...)")
    skip_worker = pytest.mark.skip(reason="needs REDIS_URL for a real Celery worker")
    for item in items:
        if "postgres" in item.keywords and not on_postgres():
            item.add_marker(skip_pg)
        if "worker" in item.keywords and not (redis_url() and on_postgres()):
            item.add_marker(skip_worker)


@pytest.fixture(autouse=True)
def _clear_cache():
    from django.core.cache import cache

    try:
        cache.clear()
    except Exception:  # a stopped Redis must not break unrelated tests
        pass
    yield


@pytest.fixture
def make_user(django_user_model):
    counter = {"n": 0}

    def make(username=None, password="pw-1234"):
        counter["n"] += 1
        return project_services.ensure_user(username=username or f"user{counter['n']}", password=password)

    return make


@pytest.fixture
def owner(make_user):
    return make_user("owner")


@pytest.fixture
def account(owner):
    return project_services.create_account(name="Acme", owner=owner)


@pytest.fixture
def member_of(make_user):
    """member_of(account, role) -> a new user with that role in the account."""

    def make(account, role=Role.MEMBER, username=None):
        user = make_user(username)
        project_services.add_member(account=account, user=user, role=role)
        return user

    return make


@pytest.fixture
def project(account):
    return project_services.create_project(account=account, name="Main")


@pytest.fixture
def other_account(make_user):
    return project_services.create_account(name="Other", owner=make_user("stranger"))


def client_for(user) -> APIClient:
    client = APIClient()
    if user is not None:
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {RefreshToken.for_user(user).access_token}")
    return client


@pytest.fixture
def api(owner):
    """An API client authenticated as the account owner."""
    return client_for(owner)


@pytest.fixture
def anon():
    return APIClient()


@pytest.fixture
def celery_worker_process(transactional_db, settings):
    """A real Celery worker (a separate process) against Redis and the test database.

    The test process stops executing tasks in-process, so every `delay` goes through
    the broker to the worker, exactly as in production. Skipped without REDIS_URL.
    """
    url = redis_url()
    if not url:
        pytest.skip("needs REDIS_URL for a real Celery worker")
    from config.celery import app

    broker = os.environ.get("CELERY_BROKER_URL") or url
    db = connection.settings_dict
    if connection.vendor == "postgresql":
        database_url = f"postgres://{db['USER']}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"
    else:
        pytest.skip("a worker process cannot share the in-memory SQLite test database")
    env = dict(os.environ, DATABASE_URL=database_url, CELERY_TASK_ALWAYS_EAGER="0", CELERY_BROKER_URL=broker)
    env["DJANGO_SETTINGS_MODULE"] = "config.settings_test"
    env["SANDBOX_ROOT"] = str(settings.SANDBOX_ROOT)
    for key in ("SANDBOX_PROVIDER", "SANDBOX_API_URL", "SANDBOX_API_KEY"):
        if getattr(settings, key, None) is not None:
            env[key] = str(getattr(settings, key))
    app.control.purge()
    proc = start_worker(env)
    previous = app.conf.task_always_eager
    app.conf.task_always_eager = False
    settings.CELERY_TASK_ALWAYS_EAGER = False
    try:
        wait_for_worker(proc)
        proc.env = env  # for a test that restarts the worker: start_worker(proc.env)
        yield proc
    finally:
        app.conf.task_always_eager = previous
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()


def start_worker(env, name: str | None = None) -> subprocess.Popen:
    """A Celery worker process (solo pool) with `env`, named `name` (a new name by
    default); its output goes to var/test-worker.log."""
    (ROOT / "var").mkdir(exist_ok=True)
    log = open(ROOT / "var" / "test-worker.log", "ab")
    return subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "config", "worker", "-P", "solo", "--loglevel=INFO",
         "-n", name or f"test-{os.getpid()}-{time.monotonic_ns()}@%h"],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
    )


def wait_for_worker(proc: subprocess.Popen, timeout: float = 90, workers: int = 1) -> None:
    """Until the worker answers a ping (fails the test if it exits or stays silent);
    `workers`: until that many workers answer."""
    from config.celery import app

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail("the Celery worker exited at start; see var/test-worker.log")
        if len(app.control.ping(timeout=0.5) or []) >= workers:
            return
    pytest.fail(f"the Celery worker did not answer a ping within {timeout:.0f} s")


def wait_for(predicate, timeout=20.0, interval=0.1):
    """Poll until predicate() is truthy (for work done by a worker or a thread)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    return predicate()


# --- the broker down --------------------------------------------------------------

DEAD_BROKER = "redis://127.0.0.1:1/0"  # nothing listens on port 1


_configured_transport_options: list = []  # the broker's own options, while switched away


def switch_broker(url: str | None) -> None:
    """Point this process's task publishing at `url` (None: back to the configured
    broker), failing fast there: what the publisher thread holds is sent first (to
    the broker it was sent under), then pooled connections and producers are dropped,
    as Celery does after a fork."""
    import kombu.pools

    from config.celery import app
    from config.tasks import publisher

    publisher.flush()
    kombu.pools.reset()
    app._pool = None
    app.amqp._producer_pool = None
    app.conf.broker_write_url = url
    if url and not _configured_transport_options:
        _configured_transport_options.append(app.conf.broker_transport_options)
        app.conf.broker_transport_options = {"max_retries": 0, "socket_connect_timeout": 0.5}
    elif not url and _configured_transport_options:
        app.conf.broker_transport_options = _configured_transport_options.pop()


@pytest.fixture
def broker_down(settings):
    """Tasks go through the broker (not eager), and the broker is a closed port;
    calling the fixture's value brings the broker back (and tasks in-process as before)."""
    from config.celery import app

    eager = app.conf.task_always_eager
    switch_broker(DEAD_BROKER)
    app.conf.task_always_eager = False
    settings.CELERY_TASK_ALWAYS_EAGER = False

    def back_up():
        switch_broker(None)
        app.conf.task_always_eager = eager
        settings.CELERY_TASK_ALWAYS_EAGER = eager

    yield back_up
    back_up()
