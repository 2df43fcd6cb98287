"""The base of the project's management commands: what goes wrong outside the
command's reach — the database down, misnamed or refusing the login — is one line
and a non-zero exit, not a traceback (`--traceback` still shows it)."""

from django.core.management.base import BaseCommand, CommandError
from django.db import OperationalError


class OperatorCommand(BaseCommand):
    def execute(self, *args, **options):
        try:
            return super().execute(*args, **options)
        except OperationalError as exc:
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            raise CommandError(f"Database error: {first} (check DATABASE_URL, and that the database is up).") from exc
