"""Demo data in bulk: an account, a user, projects, agents, threads with messages,
runs and checkpoints. Used by new users to see real data and by the benchmarks."""

import argparse
import time
import uuid

from django.contrib.auth import get_user_model
from django.core.management.base import CommandError
from django.db import transaction

from agents.models import Agent, AgentVersion
from config.commands import OperatorCommand
from config.errors import ServiceError
from projects import services as project_services
from projects.models import Account, Role
from threads.models import Checkpoint, CheckpointWrite, Message, Run, RunStatus, Thread

BATCH = 5000


DEFAULT_PASSWORD = "demo-password"


def count(limit: int):
    """The type of an option that is a number of things to make: a whole number from 0
    to `limit` (a demo's size, checked before anything is made)."""

    def parse(value: str) -> int:
        try:
            n = int(value)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a whole number, got {value!r}")
        if not 0 <= n <= limit:
            raise argparse.ArgumentTypeError(f"must be from 0 to {limit:,}, got {n:,}")
        return n

    return parse


MAX_THREADS, MAX_PER_THREAD, MAX_OWNERS = 1_000_000, 100_000, 1_000
ROWS_PER_STEP = 50_000  # rows built in memory at a time (threads per step = this / rows per thread)


class Command(OperatorCommand):
    help = ("Create demo data (bulk inserts): an account owned by the user (created if missing), with projects, "
            "agents and threads. Run again, it adds to that user's account of the same name; an existing user "
            "keeps their password. Prints what it made and how to log in.")

    def add_arguments(self, parser):
        parser.add_argument("--threads", type=count(MAX_THREADS), default=20,
                            help=f"threads to make (default: 20; at most {MAX_THREADS:,})")
        parser.add_argument("--messages", type=count(MAX_PER_THREAD), default=20,
                            help=f"messages per thread (default: 20; at most {MAX_PER_THREAD:,})")
        parser.add_argument("--runs", type=count(MAX_PER_THREAD), default=None,
                            help="runs per thread (default: messages / 2)")
        parser.add_argument("--checkpoints", type=count(MAX_PER_THREAD), default=None,
                            help="checkpoints per thread (default: runs)")
        parser.add_argument("--projects", type=count(MAX_OWNERS), default=2,
                            help=f"projects the threads are spread over (default: 2; at least 1 is made; at most "
                                 f"{MAX_OWNERS:,})")
        parser.add_argument("--agents", type=count(MAX_OWNERS), default=2,
                            help=f"agents the threads are spread over (default: 2; at most {MAX_OWNERS:,})")
        parser.add_argument("--username", default="demo", help="the user who owns the account (default: demo)")
        parser.add_argument("--password", default=None,
                            help="the password of the user, when the command creates them (default: "
                                 f"{DEFAULT_PASSWORD}; a given one must pass the password validators); an "
                                 "existing user keeps theirs")
        parser.add_argument("--account-name", default="Demo account",
                            help="the account's name (default: Demo account); the user's own account of that "
                                 "name is reused")
        parser.add_argument("--staff", action="store_true", help="make the demo user a superuser (admin login)")
        parser.add_argument("--if-missing", action="store_true", help="do nothing if the demo user already exists")

    def handle(self, *args, **o):
        started = time.monotonic()
        username = o["username"]
        exists = get_user_model().objects.filter(username=username).exists()
        if o["if_missing"] and exists:
            self.stdout.write(f"Demo data exists. Log in as '{username}'.")
            return
        n_runs = o["runs"] if o["runs"] is not None else o["messages"] // 2
        n_cps = o["checkpoints"] if o["checkpoints"] is not None else n_runs
        try:
            if o["password"] is not None:  # an existing user's is refused, as create_account refuses it
                project_services.validate_new_password(username=username, password=o["password"])
            made = seed(
                username=username, password=None if exists else o["password"] or DEFAULT_PASSWORD,
                account_name=o["account_name"],
                n_projects=max(o["projects"], 1), n_agents=o["agents"], n_threads=o["threads"],
                n_messages=o["messages"], n_runs=n_runs, n_checkpoints=n_cps, progress=self.stdout.write,
            )
        except ServiceError as exc:
            raise CommandError(exc.detail)
        if o["staff"]:
            get_user_model().objects.filter(username=username).update(is_staff=True, is_superuser=True)
        self.stdout.write(self.style.SUCCESS(
            f"{'Added to' if made['reused'] else 'Made'} account {made['account'].id}: {made['projects']} projects, "
            f"{made['agents']} agents, {made['threads']} threads, {made['messages']} messages, {made['runs']} runs, "
            f"{made['checkpoints']} checkpoints in {time.monotonic() - started:.1f}s."
        ))
        if exists:
            self.stdout.write(f"Log in as '{username}' (an existing user: their password is unchanged).")
        else:
            self.stdout.write(f"Log in as '{username}' with password '{o['password'] or DEFAULT_PASSWORD}'.")


def _bulk(model, rows):
    for i in range(0, len(rows), BATCH):
        model.objects.bulk_create(rows[i : i + BATCH], batch_size=BATCH)


def seed(*, username, password, account_name, n_projects, n_agents, n_threads, n_messages, n_runs,
         n_checkpoints, progress=lambda s: None) -> dict:
    """Make the data; `password` (None: unusable) is set on a user this creates, an
    existing user keeps theirs. The user's own account named `account_name` (owned, the
    oldest) is reused, its projects and agents too."""
    user = project_services.ensure_user(username=username, password=password)
    account = (Account.objects.filter(name=account_name, memberships__user=user, memberships__role=Role.OWNER)
               .order_by("created_at").first())
    reused = account is not None
    if not reused:
        account = project_services.create_account(name=account_name, owner=user)
    projects = list(account.projects.order_by("created_at")[:n_projects]) if reused else []
    projects += [project_services.create_project(account=account, name=f"Demo project {i + 1}")
                 for i in range(len(projects), n_projects)]
    agents = list(Agent.objects.filter(account=account).order_by("created_at")[:n_agents]) if reused else []
    with transaction.atomic():
        for i in range(len(agents), n_agents):
            agent = Agent.objects.create(account=account, name=f"Demo agent {i + 1}", created_by=user)
            AgentVersion.objects.create(agent=agent, number=1, system_prompt="You are helpful.", model="echo-1")
            agents.append(agent)
    totals = {"messages": 0, "runs": 0, "checkpoints": 0}
    step = max(1, min(n_threads, 50, ROWS_PER_STEP // max(n_messages + n_runs + 2 * n_checkpoints, 1)))
    for start in range(0, n_threads, step):
        with transaction.atomic():
            threads = [
                Thread(
                    account=account, project=projects[i % len(projects)], created_by=user,
                    agent=agents[i % len(agents)] if agents else None, title=f"Demo thread {i + 1}",
                    model="echo-1", last_message_seq=n_messages, last_run_seq=n_runs,
                    message_tokens=6 * n_messages,
                )
                for i in range(start, min(start + step, n_threads))
            ]
            _bulk(Thread, threads)
            runs, messages, checkpoints = [], [], []
            for t in threads:
                t_runs = [
                    Run(id=uuid.uuid4(), thread=t, agent=t.agent, seq=r + 1, status=RunStatus.SUCCESS,
                        input_tokens=10, output_tokens=12)
                    for r in range(n_runs)
                ]
                runs += t_runs
                for m in range(n_messages):
                    run = t_runs[min(m // 2, len(t_runs) - 1)] if t_runs else None
                    messages.append(Message(
                        thread=t, seq=m + 1, role="user" if m % 2 == 0 else "assistant", run=run,
                        content=[{"type": "text", "text": f"demo message {m + 1} of {t.title}"}], token_count=6,
                    ))
                parent = None
                for c in range(n_checkpoints):
                    cid = f"{c + 1:08d}-{uuid.uuid4()}"
                    checkpoints.append(Checkpoint(
                        thread=t, checkpoint_ns="", checkpoint_id=cid, parent_checkpoint_id=parent,
                        checkpoint={"v": 1, "step": c}, metadata={"source": "loop", "step": c},
                        run=t_runs[c % len(t_runs)] if t_runs else None,
                    ))
                    parent = cid
            _bulk(Run, runs)
            _bulk(Message, messages)
            _bulk(Checkpoint, checkpoints)
            # bulk_create sets primary keys on PostgreSQL and SQLite: give each
            # thread's latest checkpoint a pending write.
            latest = {cp.thread_id: cp for cp in checkpoints}
            _bulk(CheckpointWrite, [
                CheckpointWrite.for_checkpoint(cp, task_id="task-1", idx=0, channel="messages", value={"n": 1})
                for cp in latest.values()
            ])
        totals["messages"] += len(messages)
        totals["runs"] += len(runs)
        totals["checkpoints"] += len(checkpoints)
        progress(f"  {min(start + step, n_threads)}/{n_threads} threads")
    return {"account": account, "reused": reused, "projects": len(projects), "agents": len(agents),
            "threads": n_threads, **totals}

