"""Benchmark: the agent-thread detail vs the raw result sets it is made of, as the
thread's history grows (its time and queries must not grow with the turns).

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/threadkeeper_bench \\
        .venv/bin/python bench/detail_bench.py --turns 50,500,5000 --rounds 5

A thread of 10,000 messages (`--messages`) with T turns and 50 sub-threads (one
message and one turn each), under an agent with a current version. Each round calls,
`--calls` times each, in alternating order: the service — the thread loaded as the
view loads it (`load_thread`, by id and agent) and `threads.detail.build_detail` with the
default pages (100 messages, 50 turns) — and the fastest raw SQL for the same rows:
the thread row with the agent's prompt and the latest turns' facts, the page of
messages, the page of turns, the sub-threads with their counts (four result sets,
fetched as tuples, nothing built from them). Printed: min/median/max of the
per-round ratios, the service's median time per call and its queries, per T.
"""

import argparse
import statistics

from common import drop_accounts, new_account, new_project, prepare, report, run_in_turn, seed_thread, sql, vacuum
from django.db import connection
from django.test.utils import CaptureQueriesContext

from agents.models import Agent, AgentVersion
from threads.detail import build_detail, load_thread
from threads.models import Run, Thread

RAW = [
    """SELECT t.id, t.agent_id, t.status, t.depth, t.parent_thread_id, t.schedule_id, t.schedule_seq, t.instructions,
              t.model, t.result, t.error, t.created_at, t.updated_at, t.completed_at, t.tools,
              t.external_tool_namespaces, t.compaction_summary, t.compaction_through_seq, t.message_tokens,
              t.compacted_tokens,
              (SELECT v.system_prompt FROM agents_agentversion v JOIN agents_agent a ON a.id = v.agent_id
               WHERE v.agent_id = t.agent_id AND v.number = a.current_version LIMIT 1),
              (SELECT r.id FROM threads_run r WHERE r.thread_id = t.id ORDER BY r.seq DESC LIMIT 1),
              (SELECT r.message FROM threads_run r WHERE r.thread_id = t.id ORDER BY r.seq DESC LIMIT 1),
              (SELECT r.status FROM threads_run r WHERE r.thread_id = t.id
               AND r.status NOT IN ('pending', 'running') ORDER BY r.seq DESC LIMIT 1),
              (SELECT r.model FROM threads_run r WHERE r.thread_id = t.id
               AND r.status IN ('pending', 'running') ORDER BY r.seq LIMIT 1)
       FROM threads_thread t WHERE t.id = %(id)s""",
    "SELECT seq, content, created_at FROM threads_message WHERE thread_id = %(id)s ORDER BY seq DESC LIMIT 101",
    """SELECT id, thread_id, seq, start_message_seq, end_message_seq, started_at, completed_at, result, error,
              message, input_tokens, output_tokens
       FROM threads_run WHERE thread_id = %(id)s ORDER BY seq DESC LIMIT 51""",
    """SELECT t.id, t.parent_thread_id, t.tool_use_id,
              (SELECT count(*) FROM threads_message m WHERE m.thread_id = t.id),
              (SELECT count(*) FROM threads_run r WHERE r.thread_id = t.id),
              t.model, t.result, t.schedule_id, t.schedule_seq, t.created_at, t.completed_at
       FROM threads_thread t WHERE t.parent_thread_id = %(id)s ORDER BY t.created_at""",
]


def seed(project, agent, messages, turns):
    thread = seed_thread(project, messages=messages, runs=turns, checkpoints=1)
    for child in Thread.objects.bulk_create(
        Thread(account_id=project.account_id, project=project, parent_thread=thread, depth=1, model="echo-1",
               tool_use_id=f"tu_{i}") for i in range(50)
    ):
        sql("INSERT INTO threads_message (id, thread_id, seq, role, content, token_count, created_at)"
            " VALUES (gen_random_uuid(), %s, 1, 'user', '[]', 0, now())", [child.pk])
        Run.objects.create(thread=child, seq=1, status="success", model="echo-1")
    Thread.objects.filter(pk=thread.pk).update(agent=agent, instructions="Be brief.", tools=["get_time"])
    return thread


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--turns", default="50,500,5000")
    parser.add_argument("--messages", type=int, default=10_000)
    parser.add_argument("--calls", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    prepare()
    account = new_account("detail")
    try:
        project = new_project(account)
        agent = Agent.objects.create(account=account, name="bench")
        AgentVersion.objects.create(agent=agent, number=1, system_prompt="You are a bench.", model="echo-1")
        threads = {t: seed(project, agent, args.messages, t) for t in (int(x) for x in args.turns.split(","))}
        vacuum()
        medians, counts = {}, {}
        for turns, thread in threads.items():
            def service():
                for _ in range(args.calls):
                    build_detail(load_thread(thread.pk, agent_id=agent.pk))

            def raw():
                with connection.cursor() as cur:
                    for _ in range(args.calls):
                        for statement in RAW:
                            cur.execute(statement, {"id": thread.pk})
                            cur.fetchall()

            service(), raw()  # warm-up
            with CaptureQueriesContext(connection) as q:
                body = build_detail(load_thread(thread.pk, agent_id=agent.pk))
            counts[turns] = len(q.captured_queries)
            assert len(body["turns"]) == min(turns, 50) and len(body["subThreads"]) == 50
            rounds = [run_in_turn({"service": service, "raw": raw}, r) for r in range(args.rounds)]
            print(f"thread detail: {args.messages:,} messages, {turns:,} turns, 50 sub-threads;"
                  f" {args.calls} calls per round, {args.rounds} rounds", flush=True)
            report(f"{turns:>5,} turns", rounds, [("service", "raw")])
            medians[turns] = statistics.median(r["service"] for r in rounds) / args.calls
        first = min(medians)
        for turns, median in medians.items():
            print(f"  {turns:>5,} turns: service {median * 1000:.2f} ms per call ({median / medians[first]:.2f}x the"
                  f" {first:,}-turn thread), {counts[turns]} queries", flush=True)
    finally:
        drop_accounts([account])


if __name__ == "__main__":
    main()
