from django.conf import settings
from django.http import HttpRequest

from accounts.selectors import membership_list_for_user


def workspace(request: HttpRequest) -> dict:
    """Layout context: the current workspace and the user's others for the switcher."""
    context: dict = {"product_name": settings.PRODUCT_NAME}
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return context
    membership = getattr(request, "membership", None) or getattr(
        request, "current_membership", None
    )
    if membership:
        context["current_membership"] = membership
        context["current_workspace"] = membership.workspace
    context["switcher_memberships"] = membership_list_for_user(user=user)
    return context
