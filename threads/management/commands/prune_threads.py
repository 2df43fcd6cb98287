"""Prune threads in bulk, for operators.

Selects threads by filters, then prunes them in batches through the same service as
the API (`threads.services.pruning.prune_batch`). Each batch is one transaction, so
Ctrl-C between (or during) batches leaves no half-pruned batch. Ids are read in
keyset-paginated batches: memory stays flat however many threads match.
"""

import re
import sys
import time
from datetime import timedelta

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from config.errors import ServiceError
from projects.selectors import parse_uuid
from threads.models import Thread, ThreadStatus
from threads.selectors import deletion_impact, id_batches
from threads.services.pruning import STRATEGIES, prune_batch

DURATION = re.compile(r"^(\d+)([smhdw])$")
UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def parse_duration(text: str) -> timedelta:
    match = DURATION.match(text.strip())
    if not match:
        raise CommandError(f"--older-than takes a number and a unit (s, m, h, d, w), e.g. 30d or 12h; got '{text}'.")
    return timedelta(**{UNITS[match.group(2)]: int(match.group(1))})


class Command(BaseCommand):
    help = "Prune threads in bulk (delete them, or keep only their latest checkpoints)."

    def add_arguments(self, parser):
        parser.add_argument("--older-than", help="last activity older than this: 30d, 12h, 15m, 2w")
        parser.add_argument("--status", choices=ThreadStatus.values)
        parser.add_argument("--account", help="account id")
        parser.add_argument("--project", help="project id")
        parser.add_argument("--agent", help="agent id")
        parser.add_argument("--ids-file", help="a file with one thread id per line ('-' for stdin)")
        parser.add_argument("--strategy", choices=STRATEGIES, default="delete")
        parser.add_argument("--batch-size", type=int, default=500)
        parser.add_argument("--dry-run", action="store_true", help="print what would go and change nothing")
        parser.add_argument("--yes", "--no-input", action="store_true", dest="yes", help="do not ask for confirmation")

    def handle(self, *args, **o):
        if o["batch_size"] < 1 or o["batch_size"] > 5000:
            raise CommandError("--batch-size must be between 1 and 5000.")
        selection = self.select(o)
        if not any(o[k] for k in ("older_than", "status", "account", "project", "agent", "ids_file")):
            raise CommandError("Give at least one filter (--older-than, --status, --account, --project, --agent, --ids-file).")
        total = selection.count()
        if o["strategy"] == "delete":
            impact = deletion_impact(thread_ids_queryset=selection)
            summary = ", ".join(f"{v} {k}" for k, v in impact.items())
            self.stdout.write(f"{total} threads match; deleting them removes {summary}.")
        else:
            self.stdout.write(f"{total} threads match; their checkpoints older than the latest per namespace go.")
        if o["dry_run"] or total == 0:
            self.stdout.write("Dry run: nothing changed." if o["dry_run"] else "Nothing to do.")
            return
        if not o["yes"]:
            if not sys.stdin.isatty():
                raise CommandError("Refusing to prune without confirmation: pass --yes (or --no-input).")
            if input(f"Prune {total} threads with strategy '{o['strategy']}'? [y/N] ").strip().lower() not in ("y", "yes"):
                raise CommandError("Aborted.")
        self.run(selection, total, o)

    def select(self, o):
        qs = Thread.objects.all()
        if o["older_than"]:
            qs = qs.filter(last_activity_at__lt=timezone.now() - parse_duration(o["older_than"]))
        if o["status"]:
            qs = qs.filter(status=o["status"])
        try:
            for option, field in (("account", "account_id"), ("project", "project_id"), ("agent", "agent_id")):
                if o[option]:
                    qs = qs.filter(**{field: parse_uuid(o[option], name=option)})
            if o["ids_file"]:
                qs = qs.filter(pk__in=self.read_ids(o["ids_file"]))
        except ServiceError as exc:
            raise CommandError(exc.detail)
        return qs

    def read_ids(self, path):
        try:
            stream = sys.stdin if path == "-" else open(path)
        except OSError as exc:
            raise CommandError(f"Cannot read {path}: {exc}")
        with stream:
            return [parse_uuid(line.strip(), name="ids-file") for line in stream if line.strip()]

    def run(self, selection, total, o):
        started, done, pruned, failed = time.monotonic(), 0, 0, 0
        bar = None
        if sys.stdout.isatty():
            from tqdm import tqdm

            bar = tqdm(total=total, unit="thread", desc=o["strategy"])
        try:
            for ids in id_batches(selection, o["batch_size"]):
                try:
                    pruned += prune_batch(thread_ids=ids, strategy=o["strategy"])
                except Exception as exc:  # the batch rolled back; report and stop
                    failed += len(ids)
                    self.stderr.write(f"Batch starting at {ids[0]} failed and was rolled back: {exc}")
                    break
                done += len(ids)
                if bar is not None:
                    bar.update(len(ids))
                else:
                    self.stdout.write(f"  {done}/{total} threads processed, {pruned} pruned")
        except KeyboardInterrupt:
            self.stderr.write(f"Interrupted after {done} threads; every finished batch is complete, none is half done.")
            self.summary(done, pruned, started)
            raise SystemExit(130)
        finally:
            if bar is not None:
                bar.close()
        self.summary(done, pruned, started)
        if failed:
            raise CommandError(f"{failed} threads were not pruned (see the error above).")

    def summary(self, done, pruned, started):
        elapsed = time.monotonic() - started
        rate = done / elapsed if elapsed else 0
        self.stdout.write(self.style.SUCCESS(f"Pruned {pruned} of {done} threads processed in {elapsed:.1f}s ({rate:.0f}/s)."))
