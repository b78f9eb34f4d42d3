"""Errors look like the product: its own 404/403/500 pages (also with DEBUG on, as `make run`
runs), Django's technical pages only when asked for, and JSON everywhere under /api/."""

import logging

import pytest
from django.http import HttpRequest, HttpResponse
from django.test import Client
from django.urls import path
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from config import urls as product_urls
from config.errors import ApplicationError, NotFound
from config.errors import PermissionDenied as RefusedPermission
from config.middleware import nearest_page

pytestmark = pytest.mark.django_db

TECHNICAL_404 = "Using the URLconf defined in"
TECHNICAL_500 = "Traceback"


def broken_page(request: HttpRequest) -> HttpResponse:
    raise RuntimeError("kaboom in a page")


def missing_widget(request: HttpRequest) -> HttpResponse:
    raise NotFound("No such widget.")


def owners_only(request: HttpRequest) -> HttpResponse:
    raise RefusedPermission("Only owners can press this.")


def refused_page(request: HttpRequest) -> HttpResponse:
    raise ApplicationError("Not today.")


class BrokenEndpoint(APIView):
    authentication_classes: list = []
    permission_classes: list = []

    def get(self, request: Request) -> Response:
        raise RuntimeError("kaboom in the API")


# This module doubles as the URLconf of these tests: the product's URLs plus a few that fail.
urlpatterns = [
    path("errors/broken/", broken_page),
    path("errors/missing/", missing_widget),
    path("errors/owners-only/", owners_only),
    path("errors/refused/", refused_page),
    path("api/v1/broken/", BrokenEndpoint.as_view()),
    *product_urls.urlpatterns,
]
handler404 = product_urls.handler404
handler403 = product_urls.handler403
handler500 = product_urls.handler500


@pytest.fixture
def failing_urls(settings) -> None:
    settings.ROOT_URLCONF = __name__


@pytest.fixture(params=[True, False], ids=["debug", "production"])
def debug(request, settings) -> bool:
    """Both ways the product runs: `make run` (DEBUG on) and production (DEBUG off)."""
    settings.DEBUG = request.param
    settings.DEBUG_PAGES = False
    return request.param


def quiet_client(**kwargs) -> Client:
    """A browser, as it sees a 500: the response, not the exception."""
    return Client(raise_request_exception=False, **kwargs)


def test_it_answers_an_unknown_page_with_the_products_404(debug, client, owner_client):
    response = client.get("/no-such-page/", HTTP_REFERER="http://testserver/pricing/")
    body = response.content.decode()
    assert response.status_code == 404
    assert TECHNICAL_404 not in body
    assert 'data-testid="error-page"' in body
    assert "We could not find that page" in body
    assert 'href="http://testserver/pricing/"' in body  # back where the visitor came from
    assert 'class="topbar"' in body  # the public layout for visitors

    body = owner_client.get("/w/ws_nope/domains/").content.decode()
    assert "No such workspace." in body
    assert 'class="sidenav"' in body  # signed in: the app's own layout, navigation included
    assert 'href="/app/"' in body


def test_it_shows_the_technical_pages_only_when_a_developer_asks(settings, client, failing_urls):
    settings.DEBUG = True
    settings.DEBUG_PAGES = True
    assert TECHNICAL_404 in client.get("/no-such-page/").content.decode()
    response = quiet_client().get("/errors/broken/")
    assert response.status_code == 500
    assert "kaboom in a page" in response.content.decode()


def test_it_answers_a_500_with_the_products_page_and_logs_the_traceback(
    debug, failing_urls, caplog
):
    with caplog.at_level(logging.ERROR, logger="django.request"):
        response = quiet_client().get("/errors/broken/")
    body = response.content.decode()
    assert response.status_code == 500
    assert "Something went wrong on our side" in body
    assert "kaboom" not in body
    assert TECHNICAL_500 not in body
    [record] = [r for r in caplog.records if r.name == "django.request"]
    assert record.levelno == logging.ERROR
    assert record.exc_info and record.exc_info[0] is RuntimeError
    assert "kaboom in a page" in caplog.text


def test_a_forbidden_action_gets_the_products_403_with_a_way_back(
    debug, owner, teammate_client, domain
):
    page = f"http://testserver/w/{owner.workspace.public_id}/domains/{domain.public_id}/"
    response = teammate_client.post(f"{page}remove/", HTTP_REFERER=page)
    body = response.content.decode()
    assert response.status_code == 403
    assert "You cannot do that here" in body
    assert f'href="{page}"' in body
    assert 'class="sidenav"' in body


def test_refusals_that_mean_not_found_or_forbidden_keep_their_status(debug, failing_urls, client):
    response = client.get("/errors/missing/")
    assert response.status_code == 404
    assert "No such widget." in response.content.decode()
    response = client.get("/errors/owners-only/")
    assert response.status_code == 403
    assert "Only owners can press this." in response.content.decode()


def test_a_refused_page_goes_back_with_the_message_and_never_loops(failing_urls, client):
    response = client.get("/errors/refused/", HTTP_REFERER="http://testserver/errors/refused/")
    assert response.status_code == 302
    assert response["Location"] == "/"  # not the refused URL itself
    assert "Not today." in client.get("/").content.decode()

    response = client.get("/errors/refused/", HTTP_REFERER="https://elsewhere.example/")
    assert response["Location"] == "/"  # another site's page is not "back"


def test_the_page_to_go_back_to_is_the_nearest_page_above_an_action():
    assert nearest_page("/w/ws_x/domains/dom_y/remove/") == "/w/ws_x/domains/dom_y/"
    assert nearest_page("/w/ws_x/settings/invitations/3/revoke/") == "/w/ws_x/settings/"
    assert nearest_page("/w/ws_x/domains/") == "/w/ws_x/domains/"
    assert nearest_page("/w/ws_x/domains/", include_self=False) == "/w/ws_x/"


def test_the_api_prefix_lists_the_endpoints(client):
    response = client.get("/api/v1/")
    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"
    body = response.json()
    assert body["documentation"] == "/api/docs/"
    endpoints = {e["path"]: e["methods"] for e in body["endpoints"]}
    assert endpoints["/api/v1/domains/"] == ["GET", "POST"]
    assert endpoints["/api/v1/domains/{id}/verify/"] == ["POST"]
    assert endpoints["/api/v1/mailboxes/{pk}/"] == ["GET", "PATCH", "DELETE"]
    assert endpoints["/api/v1/me/"] == ["GET"]
    response = client.post("/api/v1/")
    assert response.status_code == 405
    assert set(response.json()["error"]) == {"code", "message", "fields"}


@pytest.mark.parametrize("url", ["/api/v1/nope/", "/api/v1/domains/x/y/z/", "/api/nope/"])
def test_unknown_api_paths_answer_json_404(debug, client, url):
    response = client.get(url)
    assert response.status_code == 404
    assert response["Content-Type"] == "application/json"
    assert response.json()["error"]["code"] == "not_found"


@pytest.mark.parametrize("debug_pages", [False, True])
def test_an_api_500_answers_json_and_is_logged(debug, debug_pages, settings, failing_urls, caplog):
    settings.DEBUG_PAGES = debug and debug_pages
    with caplog.at_level(logging.ERROR, logger="django.request"):
        response = quiet_client().get("/api/v1/broken/")
    assert response.status_code == 500
    assert response["Content-Type"] == "application/json"
    assert response.json()["error"]["code"] == "server_error"
    assert "kaboom in the API" in caplog.text
