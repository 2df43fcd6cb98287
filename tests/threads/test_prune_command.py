"""`manage.py prune_threads`: selection, dry run, confirmation, batches that are
whole or not at all (Ctrl-C, failures), and flat memory."""

import io
import os
import signal
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command
from django.db import DatabaseError, connection
from django.utils import timezone

from agents.models import Agent
from config.prepared import compiled
from projects.services import create_project
from threads.models import Checkpoint, Message, Run, Thread, ThreadStatus
from threads.services.deletion import delete_subtrees_sql
from tests.threads.test_prune import make_threads

pytestmark = pytest.mark.django_db
ROOT = Path(__file__).resolve().parents[2]


def run(*args, stdout=None, stderr=None):
    out = stdout or io.StringIO()
    call_command("prune_threads", *args, stdout=out, stderr=stderr or io.StringIO())
    return out.getvalue()


def ids(threads):
    return {t.pk for t in threads}


def remaining():
    return set(Thread.objects.values_list("pk", flat=True))


class Terminal(io.StringIO):
    """What the operator types, on a terminal."""

    def isatty(self):
        return True


# --- selection and dry run ---------------------------------------------------------------


def test_dry_run_prints_what_would_go_and_changes_nothing(project):
    make_threads(project, 3, messages=2, checkpoints=4)

    out = run("--project", str(project.pk), "--dry-run")
    assert "3 threads match" in out and "6 messages" in out and "12 checkpoints" in out
    assert "1 project left empty" in out and "Dry run: nothing changed." in out

    out = run("--project", str(project.pk), "--strategy", "keep_latest", "--dry-run")
    assert "3 threads match" in out and "removes 9 checkpoints" in out
    assert Thread.objects.count() == 3 and Message.objects.count() == 6 and Checkpoint.objects.count() == 12


def test_older_than_prunes_only_threads_idle_longer(project):
    old, recent = make_threads(project, 4), make_threads(project, 2)
    Thread.objects.filter(pk__in=ids(old)).update(last_activity_at=timezone.now() - timedelta(days=31))
    Thread.objects.filter(pk__in=ids(recent)).update(last_activity_at=timezone.now() - timedelta(days=29))

    out = run("--older-than", "30d", "--yes", "--batch-size", "3")

    assert remaining() == ids(recent)
    assert "4/4 threads processed" in out and "Pruned 4 of 4 threads processed (0 skipped)" in out


@pytest.mark.parametrize("older_than, pruned", [("12h", 2), ("15m", 3), ("2w", 1), ("90s", 3)])
def test_older_than_units(project, older_than, pruned):
    now = timezone.now()
    for age in (timedelta(days=20), timedelta(days=1), timedelta(minutes=20), timedelta(seconds=10)):
        Thread.objects.filter(pk=make_threads(project, 1)[0].pk).update(last_activity_at=now - age)
    run("--older-than", older_than, "--yes")
    assert Thread.objects.count() == 4 - pruned


def test_filters_combine(account, project, other_account):
    agent = Agent.objects.create(account=account, name="helper")
    other_project = create_project(account=account, name="other")
    target = make_threads(project, 2, status=ThreadStatus.CLOSED, agent=agent)
    make_threads(project, 1, status=ThreadStatus.IDLE, agent=agent)  # another status
    make_threads(project, 1, status=ThreadStatus.CLOSED)  # no agent
    make_threads(other_project, 1, status=ThreadStatus.CLOSED, agent=agent)  # another project
    foreign = make_threads(create_project(account=other_account, name="x"), 1, status=ThreadStatus.CLOSED)

    run("--account", str(account.pk), "--project", str(project.pk), "--agent", str(agent.pk),
        "--status", "closed", "--yes")
    assert Thread.objects.count() == 6 - len(target) and not remaining() & ids(target)

    run("--account", str(other_account.pk), "--yes")
    assert not remaining() & ids(foreign) and Thread.objects.count() == 3


def test_ids_file_and_stdin(project, tmp_path, monkeypatch):
    threads = make_threads(project, 4, checkpoints=3)
    ids_file = tmp_path / "ids.txt"
    ids_file.write_text(f"{threads[0].pk}\n\n  {threads[1].pk}  \n{threads[0].pk}\n")

    run("--ids-file", str(ids_file), "--strategy", "keep_latest", "--yes")
    assert [Checkpoint.objects.filter(thread=t).count() for t in threads] == [1, 1, 3, 3]

    monkeypatch.setattr(sys, "stdin", io.StringIO(f"{threads[2].pk}\n"))
    out = run("--ids-file", "-", "--project", str(project.pk), "--yes")
    assert remaining() == ids(threads) - {threads[2].pk} and "Pruned 1 of 1" in out


def test_a_malformed_ids_file_prunes_nothing(project, tmp_path):
    threads = make_threads(project, 2)
    ids_file = tmp_path / "ids.txt"
    ids_file.write_text(f"{threads[0].pk}\n{threads[1].pk}\nnot-an-id\n")
    with pytest.raises(CommandError, match="Line 3"):
        run("--ids-file", str(ids_file), "--yes")
    assert remaining() == ids(threads)
    with pytest.raises(CommandError, match="Cannot read"):
        run("--ids-file", str(tmp_path / "missing.txt"), "--yes")


@pytest.mark.parametrize("args", [
    ["--yes"],  # no filter: never everything by accident
    ["--older-than", "soon", "--yes"],
    ["--older-than", "0d", "--yes"],
    ["--account", "nope", "--yes"],
    ["--agent", "123", "--yes"],
    ["--older-than", "1d", "--batch-size", "0", "--yes"],
    ["--ids-file", "-"],  # ids on stdin and no --yes: nothing to confirm on
])
def test_bad_options_are_errors(project, args):
    make_threads(project, 1)
    with pytest.raises(CommandError):
        run(*args)
    assert Thread.objects.count() == 1


# --- confirmation ---------------------------------------------------------------------------


def test_asks_for_confirmation_and_refuses_without_a_terminal(project, monkeypatch):
    make_threads(project, 2)
    monkeypatch.setattr(sys, "stdin", io.StringIO("y\n"))  # piped, not a terminal
    with pytest.raises(CommandError, match="--yes"):
        run("--project", str(project.pk))
    monkeypatch.setattr(sys, "stdin", Terminal("n\n"))
    with pytest.raises(CommandError, match="Aborted"):
        run("--project", str(project.pk))
    assert Thread.objects.count() == 2
    monkeypatch.setattr(sys, "stdin", Terminal("y\n"))
    run("--project", str(project.pk))
    assert Thread.objects.count() == 0


# --- whole batches: Ctrl-C and failures ------------------------------------------------------


class CtrlCOnFirstProgressLine(io.StringIO):
    """The operator presses Ctrl-C as the first batch is reported: between batches."""

    pressed = False

    def write(self, text):
        if "threads processed," in text and not self.pressed:
            self.pressed = True
            raise KeyboardInterrupt
        return super().write(text)


def test_ctrl_c_between_batches_stops_after_whole_batches(project):
    threads = sorted(make_threads(project, 6, messages=2), key=lambda t: t.pk)
    with pytest.raises(SystemExit) as exit_:
        run("--project", str(project.pk), "--yes", "--batch-size", "2", stdout=CtrlCOnFirstProgressLine())
    assert exit_.value.code == 130
    assert remaining() == ids(threads[2:])
    assert Message.objects.count() == 8


def fail_on_second_batch(exception):
    """A database-level hook: the second batch's thread DELETE runs, then `exception`
    is raised inside that batch's transaction (Ctrl-C or an error mid-batch)."""
    seen = {"deletes": 0}
    prepared_delete = f"EXECUTE {compiled(delete_subtrees_sql('')[-1]).name}("  # (config.prepared)

    def wrapper(execute, sql, params, many, context):
        result = execute(sql, params, many, context)
        if 'DELETE FROM "threads_thread"' in sql or prepared_delete in sql:
            seen["deletes"] += 1
            if seen["deletes"] == 2:
                raise exception
        return result

    return wrapper


def test_ctrl_c_during_a_batch_rolls_that_batch_back_whole(project):
    threads = sorted(make_threads(project, 6, messages=2), key=lambda t: t.pk)
    stderr = io.StringIO()
    with connection.execute_wrapper(fail_on_second_batch(KeyboardInterrupt())), pytest.raises(SystemExit) as exit_:
        run("--project", str(project.pk), "--yes", "--batch-size", "2", stderr=stderr)
    assert exit_.value.code == 130 and "rolled back" in stderr.getvalue()
    assert remaining() == ids(threads[2:])  # batch 1 gone, batch 2 back whole, batch 3 untouched
    assert Message.objects.filter(thread_id__in=ids(threads[2:])).count() == 8


def test_a_failed_batch_is_rolled_back_and_the_command_fails(project):
    threads = sorted(make_threads(project, 6), key=lambda t: t.pk)
    out = io.StringIO()
    with connection.execute_wrapper(fail_on_second_batch(DatabaseError("disk full"))):
        with pytest.raises(CommandError, match="disk full"):
            run("--project", str(project.pk), "--yes", "--batch-size", "2", stdout=out)
    assert remaining() == ids(threads[2:]) and "Pruned 2 of 2" in out.getvalue()


def test_keep_latest_reports_the_skipped(project):
    threads = make_threads(project, 3, checkpoints=2)
    Run.objects.create(thread=threads[0], seq=1, status="running")
    out = run("--project", str(project.pk), "--strategy", "keep_latest", "--yes")
    assert "(1 with an active run and 0 with nothing older than their latest checkpoint will be skipped)" in out
    assert "Pruned 2 of 3 threads processed (1 skipped)" in out
    assert Checkpoint.objects.count() == 4

    out = run("--project", str(project.pk), "--strategy", "keep_latest", "--yes")  # again: nothing left to prune
    assert "(1 with an active run and 2 with nothing older than their latest checkpoint will be skipped)" in out
    assert "removes 0 checkpoints" in out and "Pruned 0 of 3 threads processed (3 skipped)" in out


# --- memory ---------------------------------------------------------------------------------


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_memory_stays_flat_on_10000_threads(project):
    """The command in a process of its own; its peak RSS stays under 200 MB. The peak is
    the process's own (VmHWM): getrusage's ru_maxrss also keeps the peak of the pytest
    process it was forked from, which grows with the suite."""
    make_threads(project, 10_000, messages=1)
    db = connection.settings_dict
    url = f"postgres://{db['USER']}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"
    env = dict(os.environ, DATABASE_URL=url)
    script = (
        "import re, django; django.setup();"
        "hwm = lambda: re.search(r'VmHWM:\\s+(\\d+)', open('/proc/self/status').read()).group(1);"
        "from django.core.management import call_command;"
        "print('SETUP_KB', hwm());"
        f"call_command('prune_threads', '--project', '{project.pk}', '--yes', '--batch-size', '1000');"
        "print('MAXRSS_KB', hwm())"
    )
    result = subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True,
                            timeout=600)
    assert result.returncode == 0, result.stderr
    setup_kb = int(result.stdout.split("SETUP_KB")[1].split()[0])
    peak_kb = int(result.stdout.split("MAXRSS_KB")[1].split()[0])
    print(f"prune_threads on 10,000 threads: {setup_kb / 1024:.0f} MB after setup, peak {peak_kb / 1024:.0f} MB")
    assert "Pruned 10000 of 10000" in result.stdout
    assert peak_kb < 200 * 1024
    assert not Thread.objects.exists() and not Message.objects.exists()


def test_a_progress_bar_on_a_terminal_plain_lines_otherwise(project, monkeypatch):
    make_threads(project, 6)
    terminal = Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    out = run("--project", str(project.pk), "--yes", "--batch-size", "2")
    assert "6/6" in terminal.getvalue() and "threads processed," not in out  # the bar, not the lines
    assert "Pruned 6 of 6" in out


# --- what an operator relies on: no widened selection, no surprise, no traceback -----------


@pytest.mark.parametrize("option", ["--account", "--project", "--agent", "--ids-file", "--older-than"])
@pytest.mark.parametrize("value", ["", "  "])
def test_an_empty_filter_is_an_error_not_everything(project, other_account, option, value):
    threads = make_threads(project, 2, status=ThreadStatus.IDLE)
    threads += make_threads(create_project(account=other_account, name="x"), 2, status=ThreadStatus.IDLE)
    with pytest.raises(CommandError, match=f"^{option} is empty"):
        run(option, value, "--status", "idle", "--yes")
    assert remaining() == ids(threads)


@pytest.mark.parametrize("strategy", ["delete", "keep_latest"])
def test_threads_created_after_the_count_are_not_pruned(project, monkeypatch, strategy):
    """What is pruned is what was announced and confirmed, never more."""
    from threads.management.commands.prune_threads import Command

    counted = make_threads(project, 3, checkpoints=2)
    late = []

    def confirm_while_threads_arrive(self, question):
        assert "Prune 3 threads" in question
        late.extend(make_threads(project, 4, checkpoints=2))  # created between the count and the prune

    monkeypatch.setattr(Command, "confirm", confirm_while_threads_arrive)
    out = run("--project", str(project.pk), "--strategy", strategy, "--batch-size", "2")
    assert "3 threads match" in out and "Pruned 3 of 3 threads processed" in out
    if strategy == "delete":
        assert remaining() == ids(late)
    else:
        assert Checkpoint.objects.filter(thread__in=counted).count() == 3
        assert Checkpoint.objects.filter(thread__in=late).count() == 8


def test_a_thread_deleted_after_the_count_makes_it_fewer(project, monkeypatch):
    from threads.management.commands.prune_threads import Command

    threads = make_threads(project, 3)
    monkeypatch.setattr(Command, "confirm", lambda self, question: Thread.objects.filter(pk=threads[0].pk).delete())
    out = run("--project", str(project.pk))
    assert "Pruned 2 of 2 threads processed" in out and not remaining()


@pytest.mark.parametrize("older_than", ["99999999999w", "3000000d", "9" * 5000 + "s"])
def test_an_older_than_beyond_the_calendar_is_an_error(project, older_than):
    make_threads(project, 1)
    with pytest.raises(CommandError, match="--older-than"):
        run("--older-than", older_than, "--yes")
    assert Thread.objects.count() == 1


def test_ids_file_encoding(project, tmp_path):
    threads = make_threads(project, 3)
    with_bom = tmp_path / "bom.txt"
    with_bom.write_bytes(f"{threads[0].pk}\n{threads[1].pk}\n".encode("utf-8-sig"))
    out = run("--ids-file", str(with_bom), "--yes")
    assert "Pruned 2 of 2" in out and remaining() == {threads[2].pk}

    latin1 = tmp_path / "latin1.txt"
    latin1.write_bytes(f"{threads[2].pk}\n".encode() + "caf\xe9\n".encode("latin-1"))
    with pytest.raises(CommandError, match="not UTF-8 text"):
        run("--ids-file", str(latin1), "--yes")
    assert remaining() == {threads[2].pk}


def test_ids_file_load_shows_progress(project, tmp_path, monkeypatch):
    from threads.management.commands import prune_threads

    monkeypatch.setattr(prune_threads, "IDS_PROGRESS_EVERY", 1000)
    threads = make_threads(project, 2)
    ids_file = tmp_path / "ids.txt"
    import uuid

    ids_file.write_text("".join(f"{uuid.uuid4()}\n" for _ in range(2500)) + f"{threads[0].pk}\n")
    out = run("--ids-file", str(ids_file), "--yes")
    lines = out.splitlines()
    assert f"1,000 ids read from {ids_file}" in lines and f"2,000 ids read from {ids_file}" in lines
    assert lines.index(f"2,000 ids read from {ids_file}") < next(i for i, l in enumerate(lines) if "match" in l)
    assert remaining() == {threads[1].pk}


def test_end_of_input_at_the_prompt_aborts(project, monkeypatch):
    make_threads(project, 2)
    monkeypatch.setattr(sys, "stdin", Terminal(""))  # Ctrl-D: input() raises EOFError
    with pytest.raises(CommandError, match="Aborted: nothing changed"):
        run("--project", str(project.pk))
    assert Thread.objects.count() == 2


class CtrlCAfter(io.StringIO):
    """Lines of an ids file, then Ctrl-C while the file is still being read."""

    def __init__(self, lines):
        super().__init__()
        self.lines = lines

    def __iter__(self):
        yield from self.lines
        raise KeyboardInterrupt


def test_ctrl_c_while_loading_ids_or_counting_changes_nothing(project, monkeypatch):
    threads = make_threads(project, 3)
    monkeypatch.setattr(sys, "stdin", CtrlCAfter([f"{t.pk}\n" for t in threads]))
    stderr = io.StringIO()
    with pytest.raises(SystemExit) as exit_:
        run("--ids-file", "-", "--yes", stderr=stderr)
    assert exit_.value.code == 130 and stderr.getvalue().strip() == "Interrupted: nothing changed."
    assert remaining() == ids(threads)

    def ctrl_c_on_count(execute, sql, params, many, context):
        if "COUNT(" in sql.upper():
            raise KeyboardInterrupt
        return execute(sql, params, many, context)

    stderr = io.StringIO()
    with connection.execute_wrapper(ctrl_c_on_count), pytest.raises(SystemExit) as exit_:
        run("--project", str(project.pk), "--yes", stderr=stderr)
    assert exit_.value.code == 130 and stderr.getvalue().strip() == "Interrupted: nothing changed."
    assert remaining() == ids(threads)
    run("--project", str(project.pk), "--yes")  # and the next run works (no temporary table left behind)
    assert not remaining()


def test_the_help_says_how_its_prunes_reach_metrics():
    from threads.management.commands.prune_threads import Command

    assert "PROMETHEUS_MULTIPROC_DIR" in Command().create_parser("manage.py", "prune_threads").format_help()
    assert "PROMETHEUS_MULTIPROC_DIR" in (ROOT / "docs" / "operations.md").read_text().split("### prune_threads")[1]


# --- signals, unknown ids, what the counts say -------------------------------------------


class SignalOnFirstProgressLine(io.StringIO):
    """The operator (or systemd) signals the command as the first batch is reported."""

    def __init__(self, signum):
        super().__init__()
        self.signum, self.sent = signum, False

    def write(self, text):
        if "threads processed," in text and not self.sent:
            self.sent = True
            os.kill(os.getpid(), self.signum)
        return super().write(text)


@pytest.mark.parametrize("signum, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_signal_between_batches_stops_there_and_says_what_was_done(project, signum, code):
    threads = sorted(make_threads(project, 6, messages=2), key=lambda t: t.pk)
    stderr, before = io.StringIO(), signal.getsignal(signum)
    with pytest.raises(SystemExit) as exit_:
        run("--project", str(project.pk), "--yes", "--batch-size", "2", stdout=SignalOnFirstProgressLine(signum),
            stderr=stderr)
    assert exit_.value.code == code
    assert f"Interrupted ({signal.Signals(signum).name}): 2 threads processed in whole batches" in stderr.getvalue()
    assert remaining() == ids(threads[2:])
    assert signal.getsignal(signum) is before  # the command's handler is gone with it


def signal_in_second_batch(*signums):
    """A database-level hook: once the second batch's thread DELETE has run, these
    signals reach the process (inside that batch's transaction)."""
    seen = {"deletes": 0}
    prepared_delete = f"EXECUTE {compiled(delete_subtrees_sql('')[-1]).name}("

    def wrapper(execute, sql, params, many, context):
        result = execute(sql, params, many, context)
        if 'DELETE FROM "threads_thread"' in sql or prepared_delete in sql:
            seen["deletes"] += 1
            if seen["deletes"] == 2:
                for signum in signums:
                    os.kill(os.getpid(), signum)
        return result

    return wrapper


def test_a_signal_during_a_batch_lets_that_batch_finish_and_reports_it(project):
    """SIGTERM mid-batch: the batch commits whole and is counted as done (before, it
    was reported rolled back while its receipt said otherwise)."""
    threads = sorted(make_threads(project, 6, messages=2), key=lambda t: t.pk)
    stderr, out = io.StringIO(), io.StringIO()
    with connection.execute_wrapper(signal_in_second_batch(signal.SIGTERM)), pytest.raises(SystemExit) as exit_:
        run("--project", str(project.pk), "--yes", "--batch-size", "2", stdout=out, stderr=stderr)
    assert exit_.value.code == 143
    assert "SIGTERM: stopping after the batch under way" in stderr.getvalue()
    assert "4 threads processed in whole batches" in stderr.getvalue() and "Pruned 4 of 4" in out.getvalue()
    assert remaining() == ids(threads[4:])
    assert Message.objects.filter(thread_id__in=ids(threads[4:])).count() == 4


def test_a_second_signal_stops_at_once_and_rolls_the_batch_back(project):
    threads = sorted(make_threads(project, 6, messages=2), key=lambda t: t.pk)
    stderr = io.StringIO()
    with connection.execute_wrapper(signal_in_second_batch(signal.SIGINT, signal.SIGINT)), \
            pytest.raises(SystemExit) as exit_:
        run("--project", str(project.pk), "--yes", "--batch-size", "2", stderr=stderr)
    assert exit_.value.code == 130 and "Stopped at once: 2 threads processed" in stderr.getvalue()
    assert remaining() == ids(threads[2:])


@pytest.mark.parametrize("option", ["--account", "--project", "--agent"])
def test_an_unknown_account_project_or_agent_is_an_error_not_zero_threads(project, option):
    make_threads(project, 2)
    for args in ([option, "00000000-0000-0000-0000-000000000000", "--dry-run"],
                 [option, "00000000-0000-0000-0000-000000000000", "--yes"]):
        with pytest.raises(CommandError, match=f"No {option[2:]} 00000000-0000-0000-0000-000000000000."):
            run(*args)
    assert Thread.objects.count() == 2


def test_a_project_or_agent_of_another_account_is_an_error(project, other_account):
    elsewhere = create_project(account=other_account, name="Elsewhere")
    agent = Agent.objects.create(account=other_account, name="Theirs")
    make_threads(project, 1)
    with pytest.raises(CommandError, match=f"The project {elsewhere.pk} is not in the account {project.account_id}"):
        run("--account", str(project.account_id), "--project", str(elsewhere.pk), "--dry-run")
    with pytest.raises(CommandError, match=f"The agent {agent.pk} is not in the account {project.account_id}"):
        run("--account", str(project.account_id), "--agent", str(agent.pk), "--yes")
    assert Thread.objects.count() == 1


def test_sub_threads_that_went_with_their_parent_are_accounted_for(project, monkeypatch):
    """The parent's batch removes its sub-thread; the sub-thread's batch then finds it
    gone. The summary says so instead of stopping short of the count unexplained."""
    keep = make_threads(project, 1)[0]
    parent = Thread.objects.create(id="00000000-0000-4000-8000-000000000001", account_id=project.account_id,
                                   project=project)
    Thread.objects.create(id="ffffffff-ffff-4fff-bfff-ffffffffffff", account_id=project.account_id,
                          project=project, parent_thread=parent)
    monkeypatch.setattr(sys, "stdin", io.StringIO(f"{parent.pk}\nffffffff-ffff-4fff-bfff-ffffffffffff\n"))
    out = run("--ids-file", "-", "--yes", "--batch-size", "1")
    assert "2 threads match" in out and "1/2 threads processed" in out
    assert "1 thread of the 2 counted was gone when its batch came" in out and "Pruned 1 of 1" in out
    assert remaining() == {keep.pk}


def test_an_undecodable_line_of_an_ids_file_is_named(project, tmp_path):
    threads = make_threads(project, 2)
    bad = tmp_path / "bad.txt"
    bad.write_bytes("".join(f"{threads[0].pk}\n" for _ in range(5000)).encode() + b"\xff\xfe\n"
                    + f"{threads[1].pk}\n".encode())
    with pytest.raises(CommandError, match="line 5001 has undecodable bytes"):
        run("--ids-file", str(bad), "--yes")
    assert remaining() == ids(threads)
