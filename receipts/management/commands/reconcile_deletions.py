"""Finish the outside cleanup of deletions still pending (what the beat task does)."""

from django.core.management.base import BaseCommand

from receipts.services import reconcile_deletions


class Command(BaseCommand):
    help = "Remove the embeddings and delete the sandboxes of every deletion receipt still pending."

    def add_arguments(self, parser):
        parser.add_argument("--min-age", type=float, default=None,
                            help="skip receipts attempted (or created) more recently, in seconds; "
                                 "default DELETION_RECONCILE_MIN_AGE, 0 retries all now")

    def handle(self, *args, min_age=None, **options):
        result = reconcile_deletions(min_age_seconds=min_age)
        self.stdout.write(f"{result['complete']} complete, {result['pending']} still pending")
