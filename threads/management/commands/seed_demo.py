"""Demo data in bulk: an account, a user, projects, agents, threads with messages,
runs and checkpoints. Used by new users to see real data and by the benchmarks."""

import time
import uuid

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand
from django.db import transaction

from agents.models import Agent, AgentVersion
from projects import services as project_services
from threads.models import Checkpoint, CheckpointWrite, Message, Run, RunStatus, Thread

BATCH = 5000


class Command(BaseCommand):
    help = "Create demo data (bulk inserts). Prints what it made and how to log in."

    def add_arguments(self, parser):
        parser.add_argument("--threads", type=int, default=20)
        parser.add_argument("--messages", type=int, default=20, help="messages per thread")
        parser.add_argument("--runs", type=int, default=None, help="runs per thread (default: messages / 2)")
        parser.add_argument("--checkpoints", type=int, default=None, help="checkpoints per thread (default: runs)")
        parser.add_argument("--projects", type=int, default=2)
        parser.add_argument("--agents", type=int, default=2)
        parser.add_argument("--username", default="demo")
        parser.add_argument("--password", default="demo-password")
        parser.add_argument("--account-name", default="Demo account")
        parser.add_argument("--staff", action="store_true", help="make the demo user a superuser (admin login)")
        parser.add_argument("--if-missing", action="store_true", help="do nothing if the demo user already exists")

    def handle(self, *args, **o):
        started = time.monotonic()
        if o["if_missing"] and get_user_model().objects.filter(username=o["username"]).exists():
            self.stdout.write(f"Demo data exists. Log in as '{o['username']}' with password '{o['password']}'.")
            return
        n_runs = o["runs"] if o["runs"] is not None else max(o["messages"] // 2, 0)
        n_cps = o["checkpoints"] if o["checkpoints"] is not None else n_runs
        made = seed(
            username=o["username"], password=o["password"], account_name=o["account_name"],
            n_projects=max(o["projects"], 1), n_agents=o["agents"], n_threads=o["threads"],
            n_messages=o["messages"], n_runs=n_runs, n_checkpoints=n_cps, progress=self.stdout.write,
        )
        if o["staff"]:
            get_user_model().objects.filter(username=o["username"]).update(is_staff=True, is_superuser=True)
        self.stdout.write(self.style.SUCCESS(
            f"Made account {made['account'].id} with {made['projects']} projects, {made['agents']} agents, "
            f"{made['threads']} threads, {made['messages']} messages, {made['runs']} runs, "
            f"{made['checkpoints']} checkpoints in {time.monotonic() - started:.1f}s."
        ))
        self.stdout.write(f"Log in as '{o['username']}' with password '{o['password']}'.")


def _bulk(model, rows):
    for i in range(0, len(rows), BATCH):
        model.objects.bulk_create(rows[i : i + BATCH], batch_size=BATCH)


def seed(*, username, password, account_name, n_projects, n_agents, n_threads, n_messages, n_runs,
         n_checkpoints, progress=lambda s: None) -> dict:
    user = project_services.ensure_user(username=username, password=password)
    account = project_services.create_account(name=account_name, owner=user)
    projects = [project_services.create_project(account=account, name=f"Demo project {i + 1}") for i in range(n_projects)]
    agents = []
    with transaction.atomic():
        for i in range(n_agents):
            agent = Agent.objects.create(account=account, name=f"Demo agent {i + 1}", created_by=user)
            AgentVersion.objects.create(agent=agent, number=1, system_prompt="You are helpful.", model="echo-1")
            agents.append(agent)
    totals = {"messages": 0, "runs": 0, "checkpoints": 0}
    step = max(1, min(n_threads, 50))
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
    return {"account": account, "projects": len(projects), "agents": len(agents), "threads": n_threads, **totals}

