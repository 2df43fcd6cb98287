"""The receipts' commands: every pending receipt is reconciled (not the first 500),
with progress and an exact remainder; a bad age is a clear error, not a traceback."""

from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from receipts.models import CleanupState, DeletionReceipt

pytestmark = pytest.mark.django_db


def pending_receipts(n, **fields):
    DeletionReceipt.objects.bulk_create(
        DeletionReceipt(kind="thread", cleanup_state=CleanupState.PENDING, **fields) for _ in range(n)
    )


def test_reconcile_deletions_handles_every_due_receipt_not_just_500():
    pending_receipts(1201)
    out = StringIO()
    call_command("reconcile_deletions", "--min-age", "0", stdout=out)
    assert not DeletionReceipt.objects.filter(cleanup_state=CleanupState.PENDING).exists()
    lines = out.getvalue().splitlines()
    assert "500 receipts attempted: 500 complete, 0 still pending" in lines
    assert "1,000 receipts attempted: 1,000 complete, 0 still pending" in lines
    assert "1201 complete, 0 still pending" in lines


def test_reconcile_deletions_says_what_it_left_for_later():
    pending_receipts(2)
    pending_receipts(3, last_attempt_at=timezone.now())  # attempted just now: not due with --min-age 3600
    out = StringIO()
    call_command("reconcile_deletions", "--min-age", "3600", stdout=out)
    assert "0 complete, 0 still pending" in out.getvalue()
    assert "5 more receipts pending" in out.getvalue()


@pytest.mark.parametrize("min_age", ["1e300", "nan", "inf", "-5"])
def test_reconcile_deletions_refuses_a_bad_min_age(min_age):
    pending_receipts(1)
    with pytest.raises(CommandError, match="--min-age"):
        call_command("reconcile_deletions", "--min-age", min_age, stdout=StringIO())
    assert DeletionReceipt.objects.get().cleanup_attempts == 0


@pytest.mark.parametrize("days", ["99999999", "999999999999"])
def test_purge_receipts_refuses_an_age_before_year_one(days):
    DeletionReceipt.objects.create(kind="thread")
    for dry_run in ([], ["--dry-run"]):
        with pytest.raises(CommandError, match="before year 1"):
            call_command("purge_receipts", "--older-than-days", days, *dry_run, stdout=StringIO())
    with pytest.raises(CommandError, match="0 or more"):
        call_command("purge_receipts", "--older-than-days", "-1", stdout=StringIO())
    assert DeletionReceipt.objects.count() == 1
