"""Prune threads in bulk, for operators.

Selects threads by filters, then prunes them in batches through the same service as
the API and the TTL sweeper (`threads.services.pruning.prune_batch`). Each batch is
one transaction: Ctrl-C, or a failure, never leaves half a batch. Memory stays flat
however many threads match: ids are read batch by batch (keyset pagination), and the
ids of an `--ids-file` are streamed into a temporary table rather than into a list.

What is pruned is what was counted (and confirmed): the ids matching when the count
is taken are pinned in a temporary table, and the batches take only those (that
still match), never a thread created meanwhile.

The counters this command bumps (`threadkeeper_deleted`, ...) reach `/metrics` only
if it runs with the stack's `PROMETHEUS_MULTIPROC_DIR` exported (see
docs/operations.md#prune_threads).
"""

import re
import signal
import sys
import threading
import time
import uuid
from contextlib import contextmanager, nullcontext
from datetime import timedelta
from itertools import batched

from django.core.exceptions import EmptyResultSet
from django.core.management.base import CommandError
from django.db import DatabaseError, connection, transaction
from django.db.models.expressions import RawSQL
from django.utils import timezone

from config.admin_base import plural
from config.commands import OperatorCommand
from config.errors import ServiceError
from config.observability import destructive_operation
from projects.selectors import parse_uuid
from receipts.context import acting
from threads.models import Thread, ThreadStatus
from threads.selectors import deletion_impact, id_batches, keep_latest_impact
from threads.services.pruning import STRATEGIES, prune_batch

DURATION = re.compile(r"^([0-9]+)([smhdw])$")
UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
FILTERS = ("older_than", "status", "account", "project", "agent", "ids_file")
IDS_TABLE = "prune_threads_ids"
PINNED_TABLE = "prune_threads_pinned"
IDS_PROGRESS_EVERY = 100_000  # ids read from an ids file between two progress lines


def older_than_cutoff(text: str):
    """The last-activity time before which `--older-than` selects threads."""
    match = DURATION.match(text.strip())
    if not match or not match.group(1).strip("0"):
        raise CommandError(
            f"--older-than takes a positive number and a unit (s, m, h, d, w), e.g. 30d or 12h; got '{text[:60]}'."
        )
    try:
        return timezone.now() - timedelta(**{UNITS[match.group(2)]: int(match.group(1))})
    except (OverflowError, ValueError):  # beyond timedelta's range (or int's digits), or before year 1
        raise CommandError(f"--older-than {text[:60]} reaches back before year 1: give a shorter duration.")


@contextmanager
def temporary_ids_table(name: str):
    """A temporary table of thread ids, dropped on the way out: yields its quoted name."""
    table = connection.ops.quote_name(name)
    with connection.cursor() as cursor:
        cursor.execute(f"CREATE TEMPORARY TABLE {table} (id {Thread._meta.pk.db_type(connection)} PRIMARY KEY)")
    try:
        yield table
    finally:
        try:
            with connection.cursor() as cursor:
                cursor.execute(f"DROP TABLE IF EXISTS {table}")
        except DatabaseError:  # a lost connection took the table (and the real error) with it
            pass


@contextmanager
def ids_table(path: str, progress=None):
    """The ids of an ids file (`-`: stdin) in a temporary table, inserted 1,000 at a
    time: yields `SELECT id FROM <table>` for a `pk__in`. Every line is checked
    before anything is pruned; a malformed one is a CommandError naming its line.
    UTF-8 (a byte-order mark is allowed); `progress(n)` every IDS_PROGRESS_EVERY ids."""
    column = Thread._meta.pk
    try:
        # undecodable bytes kept as surrogates, to name their line (`numbered`)
        stream = nullcontext(sys.stdin) if path == "-" else open(path, encoding="utf-8-sig", errors="surrogateescape")
    except OSError as exc:
        raise CommandError(f"Cannot read {path}: {exc}")
    with temporary_ids_table(IDS_TABLE) as table:
        read, line = 0, 0
        with stream as lines_read, connection.cursor() as cursor:

            def numbered():
                nonlocal line
                for line, text in enumerate(lines_read, 1):
                    try:
                        text.encode("utf-8")
                    except UnicodeEncodeError:
                        raise CommandError(f"The ids file {path} is not UTF-8 text: line {line} has undecodable "
                                           f"bytes.")
                    if text := text.strip().lstrip("\ufeff"):
                        yield line, text

            try:
                for chunk in batched(numbered(), 1000):
                    rows = [(column.get_db_prep_value(_line_id(n, text), connection),) for n, text in chunk]
                    cursor.executemany(f"INSERT INTO {table} (id) VALUES (%s) ON CONFLICT DO NOTHING", rows)
                    if progress is not None and (read + len(rows)) // IDS_PROGRESS_EVERY > read // IDS_PROGRESS_EVERY:
                        progress(read + len(rows))
                    read += len(rows)
            except UnicodeDecodeError:  # stdin, decoded a buffer at a time: the line is the last read whole
                raise CommandError(f"The ids file {path} is not UTF-8 text: undecodable bytes after line {line}.")
        yield RawSQL(f"SELECT id FROM {table}", [])


@contextmanager
def stop_between_batches(stderr):
    """SIGINT (Ctrl-C) and SIGTERM (systemd, Kubernetes, a cron timeout) while the
    batches run: the batch under way finishes, then the run stops, so what it reports
    is what was committed. Yields the list the first signal's number is put in. A
    second signal stops at once (KeyboardInterrupt: that batch is rolled back). Only
    in the main thread, where Python delivers signals."""
    received = []
    if threading.current_thread() is not threading.main_thread():
        yield received
        return

    def handler(signum, frame):
        if received:
            raise KeyboardInterrupt
        received.append(signum)
        stderr.write(f"{signal.Signals(signum).name}: stopping after the batch under way "
                     f"(send it again to stop at once, rolling that batch back).")

    previous = {signum: signal.signal(signum, handler) for signum in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield received
    finally:
        for signum, old in previous.items():
            signal.signal(signum, old)


def _line_id(number: int, text: str):
    try:
        return parse_uuid(text)
    except ServiceError:
        raise CommandError(f"Line {number} of the ids file is not a thread id: '{text[:60]}'.")


class Command(OperatorCommand):
    help = ("Prune threads in bulk: delete them, or keep only their latest checkpoints (keep_latest). Only the "
            "threads counted (and confirmed) are pruned. Run beside the stack, export its PROMETHEUS_MULTIPROC_DIR "
            "for the prune to count in /metrics.")

    def add_arguments(self, parser):
        parser.add_argument("--older-than", help="last activity older than this: 15m, 12h, 30d, 2w")
        parser.add_argument("--status", choices=ThreadStatus.values)
        parser.add_argument("--account", help="account id")
        parser.add_argument("--project", help="project id")
        parser.add_argument("--agent", help="agent id")
        parser.add_argument("--ids-file", help="a file with one thread id per line ('-' for stdin)")
        parser.add_argument("--strategy", choices=STRATEGIES, default="delete")
        parser.add_argument("--batch-size", type=int, default=500, help="threads per transaction (1-5000)")
        parser.add_argument("--dry-run", action="store_true", help="print what would go and change nothing")
        parser.add_argument("--yes", "--no-input", action="store_true", dest="yes", help="do not ask for confirmation")
        parser.add_argument("--background", action="store_true",
                            help="submit a background job (run by the Celery worker, followed in the admin) "
                                 "instead of pruning here")

    def handle(self, *args, **o):
        if not 1 <= o["batch_size"] <= 5000:
            raise CommandError("--batch-size must be between 1 and 5000.")
        for key in FILTERS:  # an empty filter must not silently widen the selection to everything
            if o[key] is not None and not o[key].strip():
                raise CommandError(f"--{key.replace('_', '-')} is empty.")
        if all(o[key] is None for key in FILTERS):
            raise CommandError("Give at least one filter: --older-than, --status, --account, --project, --agent "
                               "or --ids-file.")
        if o["ids_file"] == "-" and not (o["yes"] or o["dry_run"]):
            raise CommandError("With ids on stdin there is no terminal to confirm on: pass --yes (or --no-input).")
        selection = self.select(o)
        try:
            # One log line for the whole run, with its totals, after the progress bar.
            with destructive_operation("prune_threads", strategy=o["strategy"]):
                if o["ids_file"] is not None:
                    progress = lambda n: self.stdout.write(f"{n:,} ids read from {o['ids_file']}")  # noqa: E731
                    with ids_table(o["ids_file"], progress=progress) as ids:
                        self.prune(selection.filter(pk__in=ids), o)
                else:
                    self.prune(selection, o)
        except KeyboardInterrupt:  # before any batch (a batch's own Ctrl-C is handled in run_batches)
            self.stderr.write("Interrupted: nothing changed.")
            raise SystemExit(130)

    def select(self, o):
        selection = Thread.objects.all()
        if o["older_than"] is not None:
            selection = selection.filter(last_activity_at__lt=older_than_cutoff(o["older_than"]))
        if o["status"] is not None:
            selection = selection.filter(status=o["status"])
        from agents.models import Agent
        from projects.models import Account, Project

        given = {}
        for option, field, model in (("account", "account_id", Account), ("project", "project_id", Project),
                                     ("agent", "agent_id", Agent)):
            if o[option] is not None:
                try:
                    pk = parse_uuid(o[option], name=f"--{option}")
                except ServiceError as exc:
                    raise CommandError(exc.detail)
                found = model.objects.filter(pk=pk).values("pk", *(["account_id"] if model is not Account else []))
                if not found:  # a mistyped id would match nothing, silently, in a cron job
                    raise CommandError(f"No {option} {pk}.")
                given[option] = found[0]
                selection = selection.filter(**{field: pk})
        account = given.get("account")
        for option in ("project", "agent"):
            if account is not None and option in given and given[option]["account_id"] != account["pk"]:
                raise CommandError(f"The {option} {given[option]['pk']} is not in the account {account['pk']}.")
        return selection

    def prune(self, selection, o):
        """Pin the matching ids, then count, confirm and prune those only."""
        with temporary_ids_table(PINNED_TABLE) as table:
            try:
                select, params = selection.order_by().values("pk").query.sql_with_params()
            except EmptyResultSet:  # nothing can match: the table stays empty
                select = None
            if select is not None:
                with connection.cursor() as cursor:
                    cursor.execute(f"INSERT INTO {table} (id) SELECT selected.* FROM ({select}) selected", params)
            # The selection's filters still apply at prune time: a pinned thread that
            # stopped matching (or was deleted) meanwhile is left out, so never more.
            self.prune_pinned(selection.filter(pk__in=RawSQL(f"SELECT id FROM {table}", [])), o)

    def prune_pinned(self, selection, o):
        if o["strategy"] == "delete":
            impact = deletion_impact(thread_ids_queryset=selection)
            total = selection.count()
            self.stdout.write(
                f"{plural(total, 'thread')} match. Deleting them removes {plural(impact['threads'], 'thread')} "
                f"(with their sub-threads), {plural(impact['messages'], 'message')}, "
                f"{plural(impact['runs'], 'run')}, {plural(impact['checkpoints'], 'checkpoint')}, "
                f"{plural(impact['projects'], 'project')} left empty and {plural(impact['sandboxes'], 'sandbox', 'sandboxes')}."
            )
        else:
            impact = keep_latest_impact(thread_ids_queryset=selection)
            total = impact["threads"]
            self.stdout.write(
                f"{plural(total, 'thread')} match ({impact['skipped_active_run']} with an active run and "
                f"{impact['skipped_nothing_to_prune']} with nothing older than their latest checkpoint will be "
                f"skipped). Keeping their latest checkpoint per namespace removes "
                f"{plural(impact['checkpoints'], 'checkpoint')} with their pending writes."
            )
        if o["dry_run"]:
            self.stdout.write("Dry run: nothing changed.")
            return
        if total == 0:
            self.stdout.write("Nothing to do.")
            return
        if not o["yes"]:
            self.confirm(f"Prune {plural(total, 'thread')} with strategy '{o['strategy']}'? [y/N] ")
        if o["background"]:
            self.submit(selection, total, o)
        else:
            self.run_batches(selection, total, o)

    def submit(self, selection, total, o):
        """The same job the admin starts above its threshold, through the same service."""
        from django.urls import reverse

        from jobs.models import JobKind
        from jobs.services import submit_job

        kind = JobKind.DELETE_THREADS if o["strategy"] == "delete" else JobKind.PRUNE_KEEP_LATEST
        verb = "Delete" if o["strategy"] == "delete" else "Prune old checkpoints of"
        with transaction.atomic():  # the job and its targets, or nothing (Ctrl-C)
            job = submit_job(kind=kind, targets=selection, total=total, description=f"{verb} {total:,} threads",
                             source="command", batch_size=o["batch_size"])
        self.stdout.write(self.style.SUCCESS(
            f"Job {job.pk} submitted: {total} threads in batches of {o['batch_size']}. Follow it (and cancel it) "
            f"in the admin at {reverse('admin:jobs_job_change', args=[job.pk])}"
        ))

    def confirm(self, question):
        if not sys.stdin.isatty():
            raise CommandError("No terminal to confirm on: pass --yes (or --no-input).")
        try:
            answer = input(question)
        except EOFError:  # Ctrl-D: no answer is not a yes
            answer = ""
            self.stdout.write("")
        if answer.strip().lower() not in ("y", "yes"):
            raise CommandError("Aborted: nothing changed.")

    def run_batches(self, selection, total, o):
        started, done, pruned = time.monotonic(), 0, 0
        operation = uuid.uuid4()
        bar = None
        if sys.stderr.isatty():
            from tqdm import tqdm

            bar = tqdm(total=total, unit="thread", desc=o["strategy"], file=sys.stderr)
        try:
            with stop_between_batches(self.stderr) as stop, acting(source="command", operation_id=operation):
                for ids in id_batches(selection, o["batch_size"]):  # one receipt per batch, one operation
                    try:
                        pruned += prune_batch(thread_ids=ids, strategy=o["strategy"])
                    except Exception as exc:  # the batch was rolled back whole
                        self.summary(done, pruned, started)
                        raise CommandError(f"The batch of {len(ids)} threads from {ids[0]} failed and was rolled "
                                           f"back: {exc}") from exc
                    done += len(ids)
                    if bar is not None:
                        bar.update(len(ids))
                    else:
                        self.stdout.write(f"{done}/{total} threads processed, {pruned} pruned")
                    if stop:
                        break
        except KeyboardInterrupt:  # a second signal, or Ctrl-C outside the main thread: at once
            self.stderr.write(f"Stopped at once: {done} threads processed in whole batches; the batch under way "
                              f"was rolled back, unless it had just committed (the deletion receipts of operation "
                              f"{operation} list every batch done). Run the command again to finish.")
            self.summary(done, pruned, started)
            raise SystemExit(130)
        finally:
            if bar is not None:
                bar.close()
        if stop:
            name = signal.Signals(stop[0]).name
            self.stderr.write(f"Interrupted ({name}): {done} threads processed in whole batches, nothing half "
                              f"done. Run the command again to finish.")
            self.summary(done, pruned, started)
            raise SystemExit(128 + stop[0])
        if done < total:  # went with a parent thread pruned in an earlier batch, or deleted meanwhile
            gone = total - done
            self.stdout.write(f"{plural(gone, 'thread')} of the {total:,} counted {'was' if gone == 1 else 'were'} "
                              f"gone when {'its' if gone == 1 else 'their'} batch came (deleted with a parent "
                              f"thread pruned before, or meanwhile).")
        self.summary(done, pruned, started)

    def summary(self, done, pruned, started):
        elapsed = time.monotonic() - started
        rate = done / elapsed if elapsed else 0
        self.stdout.write(self.style.SUCCESS(
            f"Pruned {pruned} of {done} threads processed ({done - pruned} skipped) in {elapsed:.1f}s ({rate:.0f}/s)."
        ))
