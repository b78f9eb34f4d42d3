from django.core.management.base import BaseCommand, CommandError

from accounts.models import User, Workspace
from accounts.services import api_token_create
from config.errors import ApplicationError


class Command(BaseCommand):
    help = "Issue a personal API token for EMAIL bound to workspace ID (printed once)."

    def add_arguments(self, parser) -> None:
        parser.add_argument("email")
        parser.add_argument("--workspace", required=True, help="Workspace public id")
        parser.add_argument("--name", default="command line")

    def handle(self, *args, email: str, workspace: str, name: str, **options) -> None:
        user = User.objects.filter(email__iexact=email).first()
        if user is None:
            raise CommandError(f"No user with email {email}.")
        ws = Workspace.objects.filter(public_id=workspace).first()
        if ws is None:
            raise CommandError(f"No workspace with public id {workspace}.")
        try:
            issued = api_token_create(user=user, workspace=ws, name=name)
        except ApplicationError as error:
            raise CommandError(error.message) from None
        self.stdout.write(issued.secret)
