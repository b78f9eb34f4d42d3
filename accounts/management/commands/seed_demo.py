"""Idempotent demo data: an operator and two customer workspaces with their users."""

from allauth.account.models import EmailAddress
from django.core.management.base import BaseCommand
from django.db import transaction

from accounts.models import Membership, Role, User, Workspace
from accounts.services import workspace_create

DEMO_PASSWORD = "demo-password-1"
OPERATOR = "ops@demo.trustgate.test"
WORKSPACES = [
    ("Acme Outreach", [("owner@acme.test", Role.OWNER), ("rep@acme.test", Role.MEMBER)]),
    ("Globex Growth", [("owner@globex.test", Role.OWNER), ("admin@globex.test", Role.ADMIN)]),
]


def _user(email: str, *, staff: bool = False) -> User:
    user = User.objects.filter(email=email).first()
    if user is None:
        user = User.objects.create_user(email=email, password=DEMO_PASSWORD)
    if staff and not (user.is_staff and user.is_superuser):
        user.is_staff = user.is_superuser = True
        user.save(update_fields=["is_staff", "is_superuser"])
    EmailAddress.objects.update_or_create(
        user=user, email=email, defaults={"verified": True, "primary": True}
    )
    return user


class Command(BaseCommand):
    help = "Load demo data (safe to run again)."

    @transaction.atomic
    def handle(self, *args, **options) -> None:
        _user(OPERATOR, staff=True)
        logins = [(OPERATOR, "operator (staff, /admin/)")]
        for name, people in WORKSPACES:
            owner_email = people[0][0]
            owner = _user(owner_email)
            workspace = Workspace.objects.filter(name=name, memberships__user=owner).first()
            if workspace is None:
                workspace = workspace_create(owner=owner, name=name)
            for email, role in people[1:]:
                Membership.objects.get_or_create(
                    workspace=workspace, user=_user(email), defaults={"role": role}
                )
            logins += [(email, f"{role} of {name}") for email, role in people]
        self.stdout.write(f"Demo logins (password for all: {DEMO_PASSWORD}):")
        for email, what in logins:
            self.stdout.write(f"  {email:<26} {what}")
