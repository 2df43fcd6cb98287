"""Delete deletion receipts older than the retention."""

from django.conf import settings
from django.core.management.base import CommandError

from config.commands import OperatorCommand
from config.errors import ServiceError
from receipts.services import purge_receipts, purgeable_receipts


class Command(OperatorCommand):
    help = ("Delete deletion receipts older than DELETION_RECEIPT_RETENTION_DAYS (or --older-than-days); "
            "receipts whose outside cleanup is still pending are kept.")

    def add_arguments(self, parser):
        parser.add_argument("--older-than-days", type=int, default=None,
                            help=f"default: DELETION_RECEIPT_RETENTION_DAYS ({settings.DELETION_RECEIPT_RETENTION_DAYS})")
        parser.add_argument("--dry-run", action="store_true", help="count what would go, delete nothing")

    def handle(self, *args, older_than_days=None, dry_run=False, **options):
        days = settings.DELETION_RECEIPT_RETENTION_DAYS if older_than_days is None else older_than_days
        try:
            old = purgeable_receipts(older_than_days=days)  # checks the age before anything is deleted
        except ServiceError as exc:
            raise CommandError(exc.detail)
        if dry_run:
            self.stdout.write(f"{old.count():,} receipt(s) older than {days} day(s) would be purged.")
            return
        n = purge_receipts(older_than_days=days, progress=lambda done: self.stdout.write(f"{done:,} purged"))
        self.stdout.write(f"Purged {n:,} receipt(s) older than {days} day(s).")
