from django.core.management.base import CommandError
from django.db import transaction

from config.commands import OperatorCommand
from config.errors import ServiceError
from projects import services
from projects.models import Account, Role
from projects.selectors import parse_uuid


class Command(OperatorCommand):
    help = "Add USERNAME to an account with a role (the user is created if missing)."

    def add_arguments(self, parser):
        parser.add_argument("account_id")
        parser.add_argument("username")
        parser.add_argument("--role", required=True, choices=Role.values)
        parser.add_argument("--password", help="password of the user, when the command creates them (an existing user keeps theirs)")

    def handle(self, *args, account_id, username, role, password, **options):
        try:
            account = Account.objects.filter(pk=parse_uuid(account_id, name="account_id")).first()
        except ServiceError as exc:
            raise CommandError(exc.detail)
        if account is None:
            raise CommandError(f"No account {account_id}.")
        try:
            if password is not None:
                services.validate_new_password(username=username, password=password)
            with transaction.atomic():
                user = services.ensure_user(username=username, password=password)
                services.add_member(account=account, user=user, role=role)
        except ServiceError as exc:
            raise CommandError(exc.detail)
        self.stdout.write(f"{username} is {role} of {account.name} ({account.id})")
