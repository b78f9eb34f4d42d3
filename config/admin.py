"""The operations console: a branded admin site whose login is allauth's (so MFA covers staff)."""

from django.contrib import admin
from django.contrib.admin.apps import AdminConfig
from django.core.cache import cache
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse


class OpsAdminSite(admin.AdminSite):
    site_header = "TrustGate operations"
    site_title = "TrustGate operations"
    index_title = "Operations console"

    def login(self, request: HttpRequest, extra_context: dict | None = None) -> HttpResponse:
        from allauth.account.views import LoginView

        if request.user.is_authenticated:
            if request.user.is_active and request.user.is_staff:
                return redirect(request.GET.get("next") or reverse("admin:index"))
            return render(request, "admin/not_staff.html", status=403)
        if request.method == "GET" and "next" not in request.GET:
            query = request.GET.copy()
            query["next"] = reverse("admin:index")
            request.GET = query
        return LoginView.as_view()(request)

    def index(self, request: HttpRequest, extra_context: dict | None = None) -> HttpResponse:
        from accounts.tasks import HEARTBEAT_KEY

        extra_context = {**(extra_context or {}), "heartbeat": cache.get(HEARTBEAT_KEY)}
        return super().index(request, extra_context)


class OpsAdminConfig(AdminConfig):
    default_site = "config.admin.OpsAdminSite"
