"""Typed requests: what authentication, the middleware and `workspace_view` put on a request."""

from typing import TYPE_CHECKING

from django.http import HttpRequest
from django.utils.functional import SimpleLazyObject
from rest_framework.request import Request

from accounts.models import Membership, User, Workspace

if TYPE_CHECKING:
    from django_htmx.middleware import HtmxDetails


class AppRequest(HttpRequest):
    """Any request through the middleware stack (the layout's workspace switcher reads it)."""

    current_membership: "Membership | SimpleLazyObject | None"
    htmx: "HtmxDetails"


class AuthedRequest(AppRequest):
    """A request behind `login_required`."""

    user: User


class WorkspaceRequest(AuthedRequest):
    """A request to `/w/<public_id>/...` resolved by `workspace_view`."""

    workspace: Workspace
    membership: Membership


def api_user(request: Request) -> User:
    """The authenticated user of an API request (every API view requires authentication)."""
    user = request.user
    if not isinstance(user, User):
        raise TypeError("API views are only reachable by authenticated users.")
    return user
