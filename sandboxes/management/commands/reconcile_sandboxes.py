from django.core.management.base import BaseCommand

from sandboxes import services


class Command(BaseCommand):
    help = ("Create at the provider every sandbox still creating, and delete every sandbox still pending deletion "
            "(what the periodic reconciler does).")

    def add_arguments(self, parser):
        parser.add_argument(
            "--min-age", type=float, default=None,
            help="only sandboxes whose last attempt is at least this many seconds old "
            "(default SANDBOX_RECONCILE_MIN_AGE; 0 retries all now)",
        )

    def handle(self, *args, min_age, **options):
        created = services.reconcile_sandbox_creation(min_age_seconds=min_age)
        result = services.reconcile_sandboxes(min_age_seconds=min_age)
        self.stdout.write(f"{created} sandboxes still creating sent to the provider")
        self.stdout.write(
            f"{result['deleted']} deleted, {result['failed']} failed (still pending), "
            f"{result['orphaned']} orphaned sandboxes sent for deletion"
        )
