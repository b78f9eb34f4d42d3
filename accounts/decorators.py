from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar, cast

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse

from accounts.http import WorkspaceRequest
from accounts.middleware import SESSION_KEY
from accounts.models import Role
from accounts.selectors import membership_get

View = Callable[..., HttpResponse]
V = TypeVar("V", bound=View)


def workspace_view(min_role: str = Role.MEMBER) -> Callable[[V], View]:
    """Resolve `/w/<public_id>/...` to the user's membership: 404 for non-members, 403 if the
    role is too low. Sets `request.membership` and `request.workspace` (a WorkspaceRequest)."""

    def decorator(view: V) -> View:
        @login_required
        @wraps(view)
        def wrapper(
            http_request: HttpRequest, public_id: str, *args: Any, **kwargs: Any
        ) -> HttpResponse:
            request = cast(WorkspaceRequest, http_request)
            membership = membership_get(user=request.user, workspace_public_id=public_id)
            if membership is None:
                raise Http404("No such workspace.")
            if not membership.has_role(min_role):
                raise PermissionDenied
            request.membership = membership
            request.workspace = membership.workspace
            if request.session.get(SESSION_KEY) != public_id:
                request.session[SESSION_KEY] = public_id
            return view(request, *args, **kwargs)

        return wrapper

    return decorator
