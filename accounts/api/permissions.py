"""Who may call the API: a signed-in user, and with a token only on a plan that includes it."""

from typing import Any

from rest_framework import permissions
from rest_framework.request import Request

from accounts.models import ApiToken
from billing.services.entitlements import api_access_refusal


class PlanIncludesApi(permissions.IsAuthenticated):
    """Authenticated, and an API token's workspace is on a plan with API access (the billing
    endpoints leave this out, so that any workspace can see its plan and upgrade)."""

    def has_permission(self, request: Request, view: Any) -> bool:
        if not super().has_permission(request, view):
            return False
        if isinstance(request.auth, ApiToken):
            refusal = api_access_refusal(workspace=request.auth.workspace)
            if refusal:
                self.message = refusal
                return False
        return True
