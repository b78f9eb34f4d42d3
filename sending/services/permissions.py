"""Who may change a workspace's domains and mailboxes."""

from accounts.models import Membership, Role, User, Workspace
from config.errors import PermissionDenied


def require_role(*, workspace: Workspace, user: User, role: str = Role.ADMIN) -> None:
    """Refuse unless `user` holds at least `role` in the workspace."""
    membership = Membership.objects.filter(workspace=workspace, user=user).first()
    if membership is None or not membership.has_role(role):
        raise PermissionDenied("Only owners and admins can change domains and mailboxes.")
