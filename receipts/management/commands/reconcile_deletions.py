"""Finish the outside cleanup of deletions still pending (what the beat task does)."""

from django.core.management.base import CommandError

from config.commands import OperatorCommand
from config.errors import ServiceError
from receipts.services import pending_receipts_count, reconcile_deletions


class Command(OperatorCommand):
    help = ("Remove the embeddings and delete the sandboxes of every deletion receipt still pending (all of them, "
            "500 at a time, a progress line each), then say how many are still pending.")

    def add_arguments(self, parser):
        parser.add_argument("--min-age", type=float, default=None,
                            help="skip receipts attempted (or created) more recently, in seconds; "
                                 "default DELETION_RECONCILE_MIN_AGE, 0 retries all now")

    def handle(self, *args, min_age=None, **options):
        def progress(totals):
            self.stdout.write(f"{totals['complete'] + totals['pending']:,} receipts attempted: "
                              f"{totals['complete']:,} complete, {totals['pending']:,} still pending")

        try:
            result = reconcile_deletions(min_age_seconds=min_age, limit=None, progress=progress)
        except ServiceError as exc:
            raise CommandError(exc.detail)
        self.stdout.write(f"{result['complete']} complete, {result['pending']} still pending")
        waiting = pending_receipts_count() - result["pending"]
        if waiting > 0:
            self.stdout.write(f"{waiting} more receipts pending, attempted (or created) more recently than "
                              f"--min-age: left for a later run")
