import io

import pytest
from django.core.management import CommandError, call_command

from projects.models import Account, Membership

pytestmark = pytest.mark.django_db


def test_create_account_and_add_member():
    out = io.StringIO()
    call_command("create_account", "Acme", "--owner", "alice", "--password", "alice-password-1", stdout=out)
    account = Account.objects.get(pk=out.getvalue().strip())
    assert Membership.objects.get(account=account).role == "owner"
    call_command("add_member", str(account.pk), "bob", "--role", "viewer", stdout=io.StringIO())
    assert Membership.objects.get(account=account, user__username="bob").role == "viewer"
    with pytest.raises(CommandError):
        call_command("add_member", "not-a-uuid", "bob", "--role", "viewer")


def test_seed_demo_makes_data():
    out = io.StringIO()
    call_command("seed_demo", "--threads", "3", "--messages", "4", stdout=out)
    from threads.models import Checkpoint, Message, Thread

    assert Thread.objects.count() == 3 and Message.objects.count() == 12
    assert Checkpoint.objects.count() == 6
    assert "3 threads" in out.getvalue()


def test_seed_demo_again_adds_to_the_same_account_and_keeps_the_password():
    """Running it again (or after the user changed their password) must not log them
    out, nor make a second account that leaves the SDK asking which one to write to."""
    from django.contrib.auth import get_user_model

    from agents.models import Agent
    from projects.models import Project
    from threads.models import Thread

    call_command("seed_demo", "--threads", "2", "--messages", "2", stdout=io.StringIO())
    demo = get_user_model().objects.get(username="demo")
    demo.set_password("changed-password-9")
    demo.save()
    out = io.StringIO()
    call_command("seed_demo", "--threads", "3", "--messages", "2", stdout=out)
    demo.refresh_from_db()
    assert demo.check_password("changed-password-9")
    assert "password is unchanged" in out.getvalue() and "Added to account" in out.getvalue()
    account = Account.objects.get()
    assert Membership.objects.filter(user=demo).count() == 1
    assert Thread.objects.filter(account=account).count() == 5
    assert Project.objects.filter(account=account).count() == 2 and Agent.objects.filter(account=account).count() == 2
    with pytest.raises(CommandError, match="already exists and keeps their password"):
        call_command("seed_demo", "--password", "other-password-1", stdout=io.StringIO())
    demo.refresh_from_db()
    assert demo.check_password("changed-password-9") and Thread.objects.count() == 5


@pytest.mark.parametrize("args, message", [
    (["--threads", "-1"], "must be from 0 to 1,000,000"), (["--messages", "-5"], "must be from 0 to 100,000"),
    (["--runs", "x"], "whole number"), (["--projects", "-2"], "must be from 0 to 1,000"),
    (["--messages", "3000000000"], "must be from 0 to 100,000"),  # was: integer out of range, half made
    (["--threads", "1000001"], "must be from 0 to 1,000,000"), (["--agents", "1001"], "must be from 0 to 1,000"),
    (["--username", "zed", "--password", "1"], "password is refused"),  # the validators, as create_account
])
def test_seed_demo_refuses_bad_counts_and_passwords(args, message):
    with pytest.raises(CommandError, match=message):
        call_command("seed_demo", *args, stdout=io.StringIO())
    assert not Account.objects.exists()


def test_an_existing_user_keeps_their_password():
    """Running the README's create_account line again, or naming an existing user,
    must not change that user's password behind the operator's back."""
    call_command("create_account", "Acme", "--owner", "alice", "--password", "alice-password-1", stdout=io.StringIO())
    with pytest.raises(CommandError, match="already exists and keeps their password"):
        call_command("create_account", "Acme 2", "--owner", "alice", "--password", "another-password-2")
    account = Account.objects.get(name="Acme")
    with pytest.raises(CommandError, match="changepassword alice"):
        call_command("add_member", str(account.pk), "alice", "--role", "viewer", "--password", "another-password-2")
    from django.contrib.auth import get_user_model

    alice = get_user_model().objects.get(username="alice")
    assert alice.check_password("alice-password-1")
    assert Account.objects.filter(name="Acme 2").count() == 0
    out = io.StringIO()
    call_command("create_account", "Acme 2", "--owner", "alice", stdout=out)  # no password: alice owns both
    assert Membership.objects.filter(user=alice, role="owner").count() == 2


@pytest.mark.parametrize("args, message", [
    (["Acme", "--owner", "bob", "--thread-limit", "-5"], "thread_limit"),
    (["Acme", "--owner", "bob", "--agent-limit", "-1"], "agent_limit"),
    (["Acme", "--owner", "bob", "--thread-limit", "99999999999"], "thread_limit"),
    (["x" * 300, "--owner", "bob"], "name"),
    (["", "--owner", "bob"], "empty"),
    (["   ", "--owner", "bob"], "empty"),
    (["Acme", "--owner", "b" * 200], "username"),
    (["Acme", "--owner", "bad user!"], "username"),
    (["Acme", "--owner", ""], "username"),
    (["Acme", "--owner", "bob", "--password", "bob-password-1", "--thread-limit", "-5"], "thread_limit"),
])
def test_create_account_refuses_bad_input_and_leaves_nothing(args, message):
    """A clear error, not a traceback, and no owner left behind by a refused account."""
    from django.contrib.auth import get_user_model

    with pytest.raises(CommandError, match=message):
        call_command("create_account", *args, stdout=io.StringIO())
    assert not Account.objects.exists() and not get_user_model().objects.exists()


def test_add_member_refuses_a_bad_username():
    out = io.StringIO()
    call_command("create_account", "Acme", "--owner", "alice", stdout=out)
    with pytest.raises(CommandError, match="username"):
        call_command("add_member", out.getvalue().strip(), "bad user!", "--role", "viewer")
    assert Membership.objects.count() == 1


def test_add_member_never_demotes_an_account_s_last_owner():
    out = io.StringIO()
    call_command("create_account", "Solo", "--owner", "olga", "--password", "olga-password-1", stdout=out)
    account = Account.objects.get(pk=out.getvalue().strip())
    with pytest.raises(CommandError, match="olga is its last owner"):
        call_command("add_member", str(account.pk), "olga", "--role", "viewer")
    assert Membership.objects.get(account=account, user__username="olga").role == "owner"
    call_command("add_member", str(account.pk), "pat", "--role", "owner", stdout=io.StringIO())
    call_command("add_member", str(account.pk), "olga", "--role", "viewer", stdout=io.StringIO())  # pat owns it now
    assert Membership.objects.get(account=account, user__username="olga").role == "viewer"


@pytest.mark.parametrize("command, args", [
    ("prune_threads", ["--account", "00000000-0000-0000-0000-000000000000", "--dry-run"]),
    ("purge_receipts", ["--dry-run"]),
    ("reconcile_deletions", []),
    ("reconcile_sandboxes", []),
    ("create_account", ["Acme", "--owner", "alice"]),
    ("seed_demo", ["--threads", "1"]),
])
def test_a_database_that_cannot_be_reached_is_one_line(command, args, monkeypatch):
    """Every command of the project: the database down or misnamed is a CommandError
    (one line and exit 1 from manage.py), not a traceback."""
    from django.db import OperationalError, connection

    def refused(execute, sql, params, many, context):
        raise OperationalError("connection failed: Connection refused\n\tIs the server running?")

    with connection.execute_wrapper(refused), pytest.raises(CommandError) as error:
        call_command(command, *args, stdout=io.StringIO(), stderr=io.StringIO())
    assert str(error.value) == ("Database error: connection failed: Connection refused (check DATABASE_URL, "
                                "and that the database is up).")
