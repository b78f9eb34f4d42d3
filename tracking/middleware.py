"""Serve the open pixel and the click redirect on customers' own tracking hostnames.

Django answers 400 to a Host that is not in ALLOWED_HOSTS, and those hostnames are added by
customers at any time. For the tracking paths only, a Host that is a registered tracking
hostname is taken in: the request carries on as if addressed to the site's own host (the
endpoints build no links from it). Any other path on such a host is still refused as before.
"""

from collections.abc import Callable
from urllib.parse import urlsplit

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.http.request import split_domain_port, validate_host

from tracking.selectors import tracking_host_known

TRACKING_PATHS = ("/t/o/", "/t/c/")


def _site_host() -> str | None:
    """The host the request is handed on to: the site's own, or the first exact allowed one."""
    own = urlsplit(settings.SITE_URL).hostname or ""
    if own and validate_host(own, settings.ALLOWED_HOSTS):
        return own
    exact = [host for host in settings.ALLOWED_HOSTS if host != "*" and not host.startswith(".")]
    return exact[0] if exact else None


class TrackingHostMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if request.path_info.startswith(TRACKING_PATHS):
            self._take_in(request)
        return self.get_response(request)

    @staticmethod
    def _take_in(request: HttpRequest) -> None:
        domain, _port = split_domain_port(request.META.get("HTTP_HOST", ""))
        if not domain or validate_host(domain, settings.ALLOWED_HOSTS):
            return  # no Host (Django decides) or already allowed
        if not tracking_host_known(hostname=domain):
            return
        site = _site_host()
        if site is not None:
            request.META["HTTP_HOST"] = site
