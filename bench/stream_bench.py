"""Benchmark: run streaming latency under the production server with a real worker.

Not a test. Needs PostgreSQL and Redis; it starts `uvicorn config.asgi:application`
and a Celery worker itself, on the database it is given (migrated; its bench account
is deleted at the end):

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/threadkeeper_bench \
    REDIS_URL=redis://127.0.0.1:6379/0 CELERY_BROKER_URL=redis://127.0.0.1:6379/1 \
        .venv/bin/python bench/stream_bench.py --clients 50 --tokens 20 --port 8120

Each client creates a run on its own thread with `POST /api/threads/{id}/runs/stream`
(`stream_mode: messages-tuple`) and reads the Server-Sent Events. Measured, per round
(one client alone, then `--clients` at once):

- first event: from sending the request to receiving `metadata`;
- first token: from sending the request to the first `messages` chunk (the run is
  queued, picked up by the worker, starts and produces its first token);
- token delivery: from the moment Redis stored a token (an event id is the Redis
  stream id, the server's millisecond clock on this machine) to the moment the client
  read it: what the bus and the web server add per token;
- token gap: between two tokens as the client sees them, against the runtime's own
  pace (`ECHO_TOKEN_DELAY`, printed): the ratio says what streaming adds.
"""

import argparse
import asyncio
import json
import logging
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
os.environ.setdefault("SECRET_KEY", "bench-only-secret-key-0123456789abcdefghijklmnopqrstuvwxyz")
os.environ["CELERY_TASK_ALWAYS_EAGER"] = "0"

import django  # noqa: E402

django.setup()

import httpx  # noqa: E402
from django.conf import settings  # noqa: E402
from django.core.management import call_command  # noqa: E402
from rest_framework_simplejwt.tokens import RefreshToken  # noqa: E402

from projects import services as project_services  # noqa: E402
from projects.models import Account  # noqa: E402
from threads import services  # noqa: E402


def pct(values, p):
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p / 100 * (len(values) - 1))))] if values else float("nan")


def summary(name, values, unit="ms"):
    return (f"{name:<16} p50 {pct(values, 50):8.1f} {unit}  p95 {pct(values, 95):8.1f} {unit}  "
            f"max {max(values):8.1f} {unit}  (n={len(values)})")


async def one_stream(http: httpx.AsyncClient, thread_id: str, words: str) -> dict:
    body = {"assistant_id": "echo", "input": {"messages": [{"role": "user", "content": words}]},
            "stream_mode": "messages-tuple"}
    out = {"tokens": [], "delivery": []}
    sent = time.perf_counter()
    async with http.stream("POST", f"/api/threads/{thread_id}/runs/stream", json=body,
                           headers={"Accept": "text/event-stream"}) as r:
        r.raise_for_status()
        event, event_id = None, None
        async for line in r.aiter_lines():
            if line.startswith("id: "):
                event_id = line[4:]
            elif line.startswith("event: "):
                event = line[7:]
            elif line.startswith("data: "):
                now, wall = time.perf_counter(), time.time()
                if event == "metadata":
                    out["first_event"] = (now - sent) * 1000
                elif event == "messages":
                    out["tokens"].append(now)
                    out["delivery"].append(wall * 1000 - int(event_id.split("-")[0]))
                elif event == "end":
                    out["status"] = json.loads(line[6:])["status"]
    out["first_token"] = (out["tokens"][0] - sent) * 1000 if out["tokens"] else float("nan")
    out["gaps"] = [(b - a) * 1000 for a, b in zip(out["tokens"], out["tokens"][1:])]
    out["total"] = (time.perf_counter() - sent) * 1000
    return out


async def round_(url, token, thread_ids, words):
    limits = httpx.Limits(max_connections=len(thread_ids) + 5)
    async with httpx.AsyncClient(base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=120,
                                 limits=limits) as http:
        return await asyncio.gather(*(one_stream(http, t, words) for t in thread_ids))


def report(title, results, delay_ms):
    print(f"\n{title}")
    assert all(r.get("status") == "success" for r in results), [r.get("status") for r in results]
    print(summary("first event", [r["first_event"] for r in results]))
    print(summary("first token", [r["first_token"] for r in results]))
    print(summary("token delivery", [d for r in results for d in r["delivery"]]))
    gaps = [g for r in results for g in r["gaps"]]
    print(summary("token gap", gaps))
    print(f"{'gap / pace':<16} {statistics.median(gaps) / delay_ms:.2f} (median gap over ECHO_TOKEN_DELAY "
          f"{delay_ms:.0f} ms)")
    print(summary("whole stream", [r["total"] for r in results]))


def start(cmd, env, log):
    return subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--tokens", type=int, default=20, help="words in each answer")
    parser.add_argument("--port", type=int, default=8120)
    parser.add_argument("--worker-concurrency", type=int, default=16,
                        help="threads of the Celery worker (-P threads): runs executing at once (each holds a "
                             "database connection while it runs)")
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    logging.getLogger("httpx").setLevel(logging.WARNING)
    if connection_vendor() != "postgresql" or not settings.REDIS_URL:
        sys.exit("Needs DATABASE_URL=postgres://... and REDIS_URL (the bus and the broker).")
    call_command("migrate", verbosity=0)
    owner = project_services.ensure_user(username="stream-bench", password="stream-bench-pw")
    Account.objects.filter(name="stream-bench").delete()
    account = project_services.create_account(name="stream-bench", owner=owner, thread_limit=100_000)
    project = project_services.create_project(account=account, name="bench")
    threads = [str(services.create_thread(project=project, created_by=owner).pk)
               for _ in range(args.clients * args.rounds + args.rounds + 1)]
    token = str(RefreshToken.for_user(owner).access_token)
    words = " ".join(f"w{i}" for i in range(args.tokens - 1))  # + "Echo:" = --tokens tokens
    env = dict(os.environ)
    (ROOT / "var").mkdir(exist_ok=True)
    log = open(ROOT / "var" / "stream-bench.log", "ab")
    worker = start([sys.executable, "-m", "celery", "-A", "config", "worker", "-P", "threads", "-c",
                    str(args.worker_concurrency), "--loglevel=WARNING", "-n", f"bench-{os.getpid()}@%h"], env, log)
    server = start([sys.executable, "-m", "uvicorn", "config.asgi:application", "--port", str(args.port),
                    "--log-level", "warning"], env, log)
    url = f"http://127.0.0.1:{args.port}"
    try:
        wait_ready(url, server, worker)
        delay_ms = settings.ECHO_TOKEN_DELAY * 1000
        print(f"uvicorn config.asgi:application (1 process) + celery worker -P threads "
              f"-c {args.worker_concurrency}; {args.tokens} tokens per answer, ECHO_TOKEN_DELAY {delay_ms:.0f} ms")
        asyncio.run(round_(url, token, [threads.pop()], words))  # warm-up: imports, connections
        for n in range(args.rounds):
            single = asyncio.run(round_(url, token, [threads.pop()], words))
            report(f"round {n + 1}: 1 client", single, delay_ms)
            batch, threads = threads[: args.clients], threads[args.clients:]
            many = asyncio.run(round_(url, token, batch, words))
            report(f"round {n + 1}: {args.clients} concurrent clients", many, delay_ms)
    finally:
        for proc in (server, worker):
            proc.terminate()
        for proc in (server, worker):
            proc.wait(timeout=30)
        Account.objects.filter(pk=account.pk).delete()


def connection_vendor():
    from django.db import connection

    return connection.vendor


def wait_ready(url, server, worker):
    from config.celery import app

    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if server.poll() is not None or worker.poll() is not None:
            sys.exit("uvicorn or the worker exited; see var/stream-bench.log")
        try:
            httpx.get(f"{url}/api/schema/", timeout=2)
            if app.control.ping(timeout=0.5):
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    sys.exit("uvicorn or the worker did not start within 60 s")


if __name__ == "__main__":
    main()
