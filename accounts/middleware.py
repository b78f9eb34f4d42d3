from collections.abc import Callable
from typing import cast

from django.http import HttpRequest, HttpResponse
from django.utils.functional import SimpleLazyObject

from accounts.http import AppRequest
from accounts.models import Membership

SESSION_KEY = "current_workspace"


def current_membership(request: HttpRequest) -> Membership | None:
    """The membership of the workspace the user last worked in (or their first one)."""
    user = request.user
    if not user.is_authenticated:
        return None
    memberships = Membership.objects.select_related("workspace").filter(user=user)
    wanted = request.session.get(SESSION_KEY)
    if wanted:
        found = memberships.filter(workspace__public_id=wanted).first()
        if found:
            return found
    return memberships.order_by("workspace__name", "workspace_id").first()


class CurrentWorkspaceMiddleware:
    """Sets `request.current_membership` lazily for the layout and the workspace switcher."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        cast(AppRequest, request).current_membership = SimpleLazyObject(
            lambda: current_membership(request)
        )
        return self.get_response(request)
