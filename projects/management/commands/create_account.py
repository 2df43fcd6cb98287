from django.core.management.base import CommandError
from django.db import transaction

from config.commands import OperatorCommand
from config.errors import ServiceError
from projects import services


class Command(OperatorCommand):
    help = "Create an account owned by USERNAME (the user is created if missing). Prints the account id."

    def add_arguments(self, parser):
        parser.add_argument("name")
        parser.add_argument("--owner", required=True, help="username of the owner (created if missing)")
        parser.add_argument("--password", help="password of the owner, when the command creates them (an existing user keeps theirs)")
        parser.add_argument("--thread-limit", type=int, help="maximum number of threads (default: site default)")
        parser.add_argument("--agent-limit", type=int, help="maximum number of agents (default: site default)")

    def handle(self, *args, name, owner, password, thread_limit, agent_limit, **options):
        try:
            if password is not None:
                services.validate_new_password(username=owner, password=password)
            with transaction.atomic():  # a refused account leaves no owner behind
                user = services.ensure_user(username=owner, password=password)
                account = services.create_account(name=name, owner=user, thread_limit=thread_limit,
                                                  agent_limit=agent_limit)
        except ServiceError as exc:
            raise CommandError(exc.detail)
        self.stdout.write(str(account.id))
