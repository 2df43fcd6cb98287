"""The index each hot query uses, by `EXPLAIN`: the check behind the index clean-up
(no query lost its index when the single-column and duplicate indexes went).

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/threadkeeper_bench .venv/bin/python bench/explain_indexes.py

Seeds 200 threads of 1,000 messages, 10 runs and 100 checkpoints (a write each),
prints, per query, the index scans of its plan (or `SEQ SCAN` if there is one), and
removes what it seeded. Sequential scans are disabled for the check (`enable_seqscan
= off`): on this small, single-account data the planner would rightly prefer them
for the unselective queries; the question is whether an index serves each one.
Exits non-zero when a query has no index scan.
"""

import re
import sys

from common import drop_accounts, new_account, new_project, prepare, seed_threads, sql, vacuum

QUERIES = {
    "messages page of a thread": "SELECT seq FROM threads_message WHERE thread_id = %(t)s ORDER BY seq DESC LIMIT 100",
    "messages of a run (SET NULL on run delete)": "SELECT id FROM threads_message WHERE run_id = %(r)s",
    "runs of a thread (page, counts)": "SELECT seq FROM threads_run WHERE thread_id = %(t)s ORDER BY seq DESC LIMIT 50",
    "active run of a thread": "SELECT id FROM threads_run WHERE thread_id = %(t)s AND status IN ('pending', 'running')",
    "checkpoints of a thread (cascade)": "SELECT id FROM threads_checkpoint WHERE thread_id = %(t)s",
    "checkpoints of a run (cascade)": "SELECT id FROM threads_checkpoint WHERE run_id = %(r)s",
    "children of a checkpoint (re-link)": "SELECT id FROM threads_checkpoint WHERE thread_id = %(t)s"
                                          " AND parent_checkpoint_id = 'cp-000000050'",
    "writes of checkpoints (listing)": "SELECT id FROM threads_checkpointwrite WHERE checkpoint_id = ANY(%(c)s)",
    "writes of a thread (cascade)": "SELECT id FROM threads_checkpointwrite WHERE thread_id = %(t)s",
    "writes of a run (cascade)": "SELECT id FROM threads_checkpointwrite WHERE run_id = %(r)s",
    "approvals of a thread (cascade)": "SELECT id FROM threads_approval WHERE thread_id = %(t)s",
    "threads of an account": "SELECT id FROM threads_thread WHERE account_id = %(a)s ORDER BY created_at DESC LIMIT 20",
    "threads of a project (cascade, emptiness)": "SELECT 1 FROM threads_thread WHERE project_id = %(p)s LIMIT 1",
    "threads of an agent (SET NULL on agent delete)": "SELECT id FROM threads_thread WHERE agent_id = %(a)s",
    "sub-threads (recursive collection)": "SELECT id FROM threads_thread WHERE parent_thread_id = %(t)s",
}


def main():
    prepare()
    account = new_account("explain")
    try:
        projects = [new_project(account, f"p{i}") for i in range(5)]
        threads = seed_threads(projects, 200, messages=1000, runs=10, checkpoints=100)
        vacuum()
        t = threads[100]
        (r,), = sql("SELECT id FROM threads_run WHERE thread_id = %s LIMIT 1", [t.pk])
        c = [row[0] for row in sql("SELECT id FROM threads_checkpoint WHERE thread_id = %s LIMIT 20", [t.pk])]
        params = {"t": t.pk, "r": r, "c": c, "a": account.pk, "p": projects[0].pk}
        missing = []
        sql("SET enable_seqscan = off")
        for label, query in QUERIES.items():
            plan = "\n".join(row[0] for row in sql("EXPLAIN " + query, params))
            indexes = sorted(set(re.findall(r"Index(?: Only)? Scan (?:Backward )?using (\S+)", plan)))
            indexes += sorted(set(re.findall(r"Bitmap Index Scan on (\S+)", plan)))
            seq = "Seq Scan" in plan
            print(f"{label:48} {', '.join(indexes) or '-'}{'  SEQ SCAN' if seq else ''}")
            if not indexes or seq:
                missing.append(label)
        if missing:
            sys.exit(f"no index for: {', '.join(missing)}")
    finally:
        drop_accounts([account])


if __name__ == "__main__":
    main()
