"""The README's command lines, executed as written on a fresh copy of the repository.

A fresh clone is made of the repository's files (tracked and new, without anything
ignored: no `.venv`, no `.env`, no database). There `make run` — the quick start's
first command — installs, writes the development `.env`, migrates, seeds the demo login
and serves; the walk-through and every command of the commands table then run, in that
order, in one `bash -e` session at the clone's root. The only change made to them is the
port: the server listens on a free one instead of 8000. (`make test`, the quick start's
other command, is the command CI runs.)
"""

import os
import re
import shutil
import signal
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text()
# What the suite's own settings put into this process's environment, and the real
# parts' variables: a newcomer's shell has none of them.
NOT_IN_A_NEW_SHELL = {
    "DJANGO_SETTINGS_MODULE", "ENV_FILE", "SECRET_KEY", "SANDBOX_ROOT", "DEBUG", "DATABASE_URL",
    "REDIS_URL", "CELERY_BROKER_URL", "CELERY_TASK_ALWAYS_EAGER", "VIRTUAL_ENV", "PORT", "HOST",
}


def sh_blocks(text):
    return re.findall(r"```sh\n(.*?)```", text, re.S)


def section(title):
    return README.split(f"\n## {title}\n", 1)[1].split("\n## ", 1)[0]


def table_commands():
    return [m.group(1) for m in re.finditer(r"^\| `([^`]+)` \|", section("Management commands"), re.M)]


def walkthrough():
    blocks = sh_blocks(section("Walk-through"))
    assert len(blocks) == 1
    return blocks[0]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def fresh_clone(dest: Path):
    files = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT, capture_output=True, check=True,
    ).stdout.split(b"\0")
    for name in filter(None, (f.decode() for f in files)):
        src = ROOT / name
        if src.is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / name)


def without_variables(command):
    """The command line without the `NAME=value` assignments before it."""
    return re.sub(r"^(\w+=\S+ +)*", "", command)


def test_the_readme_lists_every_management_command():
    commands = [without_variables(cmd) for cmd in table_commands()]
    listed = {cmd.split()[2] for cmd in commands}
    ours = {p.stem for p in ROOT.glob("*/management/commands/*.py") if not p.stem.startswith("_")}
    assert ours <= listed, f"missing from the README's commands table: {sorted(ours - listed)}"
    assert all(cmd.startswith(".venv/bin/python manage.py ") for cmd in commands)


def test_the_quick_start_is_make_run_and_make_test():
    commands = [line.split("#")[0].strip() for line in sh_blocks(section("Quick start"))[0].splitlines()]
    assert commands == ["make run", "make test"]


@pytest.mark.skipif(bool(os.environ.get("DATABASE_URL")), reason="runs once, in the embedded-defaults run")
@pytest.mark.skipif(not (shutil.which("curl") and shutil.which("jq") and shutil.which("git")),
                    reason="the walk-through needs curl and jq (and git to make the clone)")
def test_readme_command_lines_run_as_written_on_a_fresh_clone(tmp_path):
    clone = tmp_path / "threadkeeper"
    clone.mkdir()
    fresh_clone(clone)
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k not in NOT_IN_A_NEW_SHELL and not k.startswith("PYTEST")}
    log = (tmp_path / "make-run.log").open("w+")
    server = subprocess.Popen(
        ["make", "run", f"PORT={port}"], cwd=clone, env=env, start_new_session=True, stdout=log, stderr=log,
    )
    try:
        deadline = time.monotonic() + 240
        while True:
            assert server.poll() is None, f"make run stopped:\n{(tmp_path / 'make-run.log').read_text()}"
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/api/docs/", timeout=2)
                break
            except OSError:
                assert time.monotonic() < deadline, "make run did not serve within 240 s"
                time.sleep(0.5)
        assert (clone / ".env").exists(), "make run writes a development .env"

        script = walkthrough().replace("127.0.0.1:8000", f"127.0.0.1:{port}")
        script += "\n" + "\n".join(table_commands()) + "\n"
        done = subprocess.run(
            ["bash", "-euo", "pipefail", "-c", script], cwd=clone, env=env,
            capture_output=True, text=True, timeout=300,
        )
        out = done.stdout + done.stderr
        assert done.returncode == 0, out
        # What the walk-through's comments promise.
        for expected in ['"success"', '"Hello!"', '"Echo: Hello!"', '"Thread deleted successfully"',
                         "Dry run: nothing changed.", "Pruned 20 of 20 threads", "Superuser created successfully."]:
            assert expected in out, f"{expected!r} not in the output:\n{out}"
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            pass
        try:  # runserver's reloaded child can outlive make: nothing of the group may stay
            os.killpg(server.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        server.wait()
