"""Public tracking endpoints (the open pixel and the click redirect) and the workspace's
tracking page (its custom tracking domain).

The endpoints need no login and take no CSRF token (mail clients fetch them with GET); the
signed token is the only authority. A refused open still gets the image (a broken image in
someone's mail helps nobody) but records nothing; a refused click gets a plain 404 page, never a
redirect. Each client address has a budget of hits a minute: past it, opens record nothing and
clicks are refused with 429."""

from django.conf import settings
from django.contrib import messages
from django.core.cache import cache
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import redirect, render
from django.urls import URLPattern, path, reverse
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_POST

from accounts.decorators import workspace_view
from accounts.http import WorkspaceRequest
from accounts.models import Role
from config.errors import ApplicationError
from config.forms import form_add_refusal
from tracking.forms import TrackingDomainForm
from tracking.selectors import tracking_domain_get, tracking_host_verified
from tracking.services.domains import (
    cname_target,
    tracking_domain_check,
    tracking_domain_remove,
    tracking_domain_set,
)
from tracking.services.hits import click_record, client_hash, open_record

PIXEL = (
    b"GIF89a\x01\x00\x01\x00\x80\x00\x00\x00\x00\x00\xff\xff\xff!\xf9\x04\x01\x00\x00\x00\x00"
    b",\x00\x00\x00\x00\x01\x00\x01\x00\x00\x02\x02D\x01\x00;"
)
DEFAULT_HITS_PER_MINUTE = 300


def client_ip(request: HttpRequest) -> str:
    """The client's address: the connecting one, or the one our own proxies saw."""
    proxies = settings.TRUSTED_PROXY_COUNT
    forwarded = request.META.get("HTTP_X_FORWARDED_FOR", "")
    if proxies and forwarded:
        hops = [hop.strip() for hop in forwarded.split(",") if hop.strip()]
        if len(hops) >= proxies:
            return hops[-proxies]
    return str(request.META.get("REMOTE_ADDR", ""))


def _within_budget(ip: str) -> bool:
    """Count the hit against the address's budget for this minute; a cache outage lets it
    through (tracking is not a security boundary: the token is)."""
    limit = getattr(settings, "TRACKING_HITS_PER_MINUTE", DEFAULT_HITS_PER_MINUTE)
    key = f"tracking:hits:{client_hash(ip) or 'none'}"
    try:
        if cache.add(key, 1, timeout=60):
            return True
        return int(cache.incr(key)) <= limit
    except Exception:  # the cache backend's own errors vary; counting is all that can fail
        return True


def _agent(request: HttpRequest) -> str:
    return str(request.META.get("HTTP_USER_AGENT", ""))


@csrf_exempt
@require_GET
@never_cache
def open_pixel(request: HttpRequest, token: str) -> HttpResponse:
    ip = client_ip(request)
    if _within_budget(ip):
        open_record(token=token, user_agent=_agent(request), ip=ip)
    response = HttpResponse(PIXEL, content_type="image/gif")
    response["Cache-Control"] = "no-store, no-cache, must-revalidate, private, max-age=0"
    response["Pragma"] = "no-cache"
    response["Expires"] = "0"
    return response


@csrf_exempt
@require_GET
@never_cache
def click_redirect(request: HttpRequest, token: str) -> HttpResponse:
    ip = client_ip(request)
    if not _within_budget(ip):
        context = {"title": "Too many requests", "error": "Too many requests: try again shortly."}
        return render(request, "tracking/link_invalid.html", context, status=429)
    try:
        url = click_record(token=token, user_agent=_agent(request), ip=ip)
    except ApplicationError as error:
        context = {"title": "Link not valid", "error": error.message}
        return render(request, "tracking/link_invalid.html", context, status=error.status)
    response = HttpResponseRedirect(url)
    response["Referrer-Policy"] = "no-referrer"
    return response


@require_GET
@never_cache
def tls_ask(request: HttpRequest) -> HttpResponse:
    """For a reverse proxy that issues certificates on demand: 200 when `?domain=` is a
    verified tracking hostname, 404 otherwise (no certificate for names nobody verified)."""
    name = request.GET.get("domain", "").strip().lower().rstrip(".")
    if not _within_budget(client_ip(request)):
        return HttpResponse("Too many requests.", status=429, content_type="text/plain")
    if name and tracking_host_verified(hostname=name):
        return HttpResponse("ok", content_type="text/plain")
    return HttpResponse("Not a verified tracking hostname.", status=404, content_type="text/plain")


# --- the workspace's page ----------------------------------------------------------------


def _page(
    request: WorkspaceRequest, form: TrackingDomainForm | None = None, status: int = 200
) -> HttpResponse:
    domain = tracking_domain_get(workspace=request.workspace)
    context = {
        "domain": domain,
        "form": form or TrackingDomainForm(initial={"hostname": domain.hostname if domain else ""}),
        "target": cname_target(),
        "can_manage": request.membership.has_role(Role.ADMIN),
        "site_host": settings.SITE_URL,
    }
    return render(request, "tracking/page.html", context, status=status)


def _back(request: WorkspaceRequest) -> HttpResponse:
    return redirect(reverse("tracking", args=[request.workspace.public_id]))


@workspace_view()
@require_GET
def tracking_page(request: WorkspaceRequest) -> HttpResponse:
    return _page(request)


@workspace_view(min_role=Role.ADMIN)
@require_POST
def tracking_domain_save(request: WorkspaceRequest) -> HttpResponse:
    form = TrackingDomainForm(request.POST)
    if form.is_valid():
        try:
            row = tracking_domain_set(
                workspace=request.workspace,
                hostname=form.cleaned_data["hostname"],
                actor=request.user,
            )
        except ApplicationError as error:
            form_add_refusal(form, error)
        else:
            row = tracking_domain_check(tracking_domain=row)
            if row.state == "verified":
                messages.success(request, f"{row.hostname} is verified: tracking links use it.")
            else:
                messages.info(
                    request,
                    f"{row.hostname} is saved. Publish the CNAME below, then check it again.",
                )
            return _back(request)
    return _page(request, form, status=400)


@workspace_view()
@require_POST
def tracking_domain_recheck(request: WorkspaceRequest) -> HttpResponse:
    domain = tracking_domain_get(workspace=request.workspace)
    if domain is None:
        raise Http404("No tracking domain is set.")
    row = tracking_domain_check(tracking_domain=domain)
    if row.state == "verified":
        messages.success(request, f"{row.hostname} is verified: tracking links use it.")
    else:
        messages.error(request, row.error)
    return _back(request)


@workspace_view(min_role=Role.ADMIN)
@require_POST
def tracking_domain_delete(request: WorkspaceRequest) -> HttpResponse:
    domain = tracking_domain_get(workspace=request.workspace)
    if domain is None:
        raise Http404("No tracking domain is set.")
    tracking_domain_remove(tracking_domain=domain, actor=request.user)
    messages.success(request, f"{domain.hostname} is removed: tracking links use our domain.")
    return _back(request)


pages: list[URLPattern] = [
    path("tracking/", tracking_page, name="tracking"),
    path("tracking/domain/", tracking_domain_save, name="tracking_domain_save"),
    path("tracking/domain/check/", tracking_domain_recheck, name="tracking_domain_check"),
    path("tracking/domain/remove/", tracking_domain_delete, name="tracking_domain_remove"),
]
