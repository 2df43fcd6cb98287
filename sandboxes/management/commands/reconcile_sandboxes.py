from django.core.management.base import CommandError

from config.commands import OperatorCommand
from config.errors import ServiceError
from sandboxes import services


class Command(OperatorCommand):
    help = ("Create at the provider every sandbox still creating, and delete every sandbox still pending deletion "
            "(what the periodic reconciler does, but all of them, 500 at a time, a progress line each), then say "
            "how many still wait.")

    def add_arguments(self, parser):
        parser.add_argument(
            "--min-age", type=float, default=None,
            help="only sandboxes whose last attempt is at least this many seconds old "
            "(default SANDBOX_RECONCILE_MIN_AGE; 0 retries all now)",
        )

    def handle(self, *args, min_age, **options):
        def created_progress(attempted, seen):
            self.stdout.write(f"{seen:,} sandboxes still creating looked at, {attempted:,} sent to the provider")

        def deleted_progress(totals):
            self.stdout.write(f"{totals['deleted'] + totals['failed']:,} sandboxes pending deletion attempted: "
                              f"{totals['deleted']:,} deleted, {totals['failed']:,} failed")

        try:
            created = services.reconcile_sandbox_creation(min_age_seconds=min_age, limit=None,
                                                          progress=created_progress)
            result = services.reconcile_sandboxes(min_age_seconds=min_age, limit=None, progress=deleted_progress)
        except ServiceError as exc:
            raise CommandError(exc.detail)
        backlog = services.outbox_backlog()
        self.stdout.write(f"{created} sandboxes still creating sent to the provider")
        self.stdout.write(
            f"{result['deleted']} deleted, {result['failed']} failed (still pending), "
            f"{result['orphaned']} orphaned sandboxes sent for deletion"
        )
        self.stdout.write(f"Still waiting for the provider: {backlog['creating']} creating, "
                          f"{backlog['pending_deletion']} pending deletion")
