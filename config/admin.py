"""The operations console: a branded admin site whose login is allauth's (so MFA covers staff)."""

from typing import Any

from django.conf import settings
from django.contrib import admin
from django.contrib.admin.apps import AdminConfig
from django.core.cache import cache
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme


def staff_mfa_satisfied(user) -> bool:
    """Staff must have two-factor enrolled before using the console (STAFF_MFA_REQUIRED)."""
    if not settings.STAFF_MFA_REQUIRED:
        return True
    from allauth.mfa.utils import is_mfa_enabled

    return is_mfa_enabled(user)


class OpsAdminSite(admin.AdminSite):
    site_header = "TrustGate operations"
    site_title = "TrustGate operations"
    index_title = "Operations console"

    def has_permission(self, request: HttpRequest) -> bool:
        return super().has_permission(request) and staff_mfa_satisfied(request.user)

    def login(self, request: HttpRequest, extra_context: dict | None = None) -> HttpResponse:
        from allauth.account.views import LoginView

        if request.user.is_authenticated:
            if self.has_permission(request):
                return redirect(self._safe_next(request))
            needs_mfa = request.user.is_active and request.user.is_staff
            return render(request, "admin/not_staff.html", {"needs_mfa": needs_mfa}, status=403)
        if request.method == "GET" and "next" not in request.GET:
            query = request.GET.copy()
            query["next"] = reverse("admin:index")
            request.GET = query  # type: ignore[assignment]  # allauth reads `next` from GET
        return LoginView.as_view()(request)

    @staticmethod
    def _safe_next(request: HttpRequest) -> str:
        """`next` when it stays on this site (a relative path or this host), else the console."""
        target = request.GET.get("next", "")
        if target and url_has_allowed_host_and_scheme(
            target, allowed_hosts={request.get_host()}, require_https=request.is_secure()
        ):
            return target
        return reverse("admin:index")

    def index(self, request: HttpRequest, extra_context: dict | None = None) -> TemplateResponse:
        from accounts.tasks import HEARTBEAT_KEY

        extra_context = {**(extra_context or {}), "heartbeat": cache.get(HEARTBEAT_KEY)}
        response = super().index(request, extra_context)
        # Counts that call for staff (flagged subscriptions, say): on the index only.
        self._add_entries(request, (response.context_data or {}).get("app_list", []), "counts")
        return response

    def get_app_list(self, request: HttpRequest, app_label: str | None = None) -> list[Any]:
        """The models, then the console pages their admins link from the app (the navigation
        of every page lists them, so they are built without queries)."""
        app_list = super().get_app_list(request, app_label)
        self._add_entries(request, app_list, "pages")
        return app_list

    def _add_entries(self, request: HttpRequest, app_list: list[Any], kind: str) -> None:
        """Entries shaped like a model's that a model admin adds after the app's models
        (its `console_pages` or `console_counts`)."""
        for app in app_list:
            for entry in list(app["models"]):
                add = getattr(self._registry.get(entry.get("model")), f"console_{kind}", None)
                if add is not None:
                    app["models"].extend(add(request))


class OpsAdminConfig(AdminConfig):
    default_site = "config.admin.OpsAdminSite"
