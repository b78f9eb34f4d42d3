"""Whatever changes a score reaches the open pages, whichever process the change came from."""

import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from django.conf import settings
from django.db import connection
from django.test import Client
from playwright.sync_api import Browser, Page, expect

from reputation.api.events_hook import EventsHookThrottle
from reputation.models import Event
from sending.models import SendingDomain
from sending.services.domains import domain_create
from sending.services.verification import domain_verify
from tests.conftest import free_port, publish
from tests.reputation.records import events_post, opened_event
from tests.test_browser import CHROMIUM
from tests.test_browser_phone import Chromium
from tests.test_profiles import ROOT, wait_for_port

pytestmark = pytest.mark.django_db(transaction=True)

TOKEN = "live-pushes-token"


def in_memory_layer_env() -> dict[str, str]:
    """The embedded profile's channel layer and eager tasks, on the test database."""
    url = "postgres://{USER}@{HOST}:{PORT}/{NAME}".format(**connection.settings_dict)
    env = {k: v for k, v in os.environ.items() if k != "REDIS_URL" and not k.startswith("CELERY_")}
    env.update(
        DATABASE_URL=url,
        KUMO_WEBHOOK_TOKEN=TOKEN,
        CELERY_TASK_ALWAYS_EAGER="true",
        EMBEDDED_SCHEDULER="false",
    )
    return env


class Server:
    """uvicorn with an in-memory channel layer: only this process can reach its sockets."""

    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "uvicorn",
                "config.asgi:application",
                "--port",
                str(self.port),
                "--lifespan",
                "off",
            ],
            cwd=ROOT,
            env=in_memory_layer_env(),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        wait_for_port(self.port, self.proc)

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(timeout=10)
            self.proc = None


@pytest.fixture
def embedded_layer_server():
    server = Server()
    try:
        server.start()
        yield server
    finally:
        server.stop()


@pytest.fixture
def owner_session(owner) -> str:
    """The owner's session cookie, for the browser."""
    client = Client()
    client.force_login(owner.user)
    return client.cookies[settings.SESSION_COOKIE_NAME].value


@pytest.fixture(scope="module")
def chromium() -> Iterator[Chromium]:
    """Chromium in a thread of its own (see tests/test_browser_phone.py): this thread keeps no
    event loop, so the ORM and the subprocesses here run as usual."""
    assert os.path.exists(CHROMIUM), "Debian's chromium is missing: `make test` installs it"
    driver = Chromium()
    try:
        yield driver
    finally:
        driver.close()


@pytest.fixture
def dashboard(chromium, owner, owner_session):
    """Open the owner's dashboard; returns a function that runs `steps(page)` in its thread."""
    pages: list[Page] = []

    def open_at(base_url: str) -> Callable[[Callable[[Page], Any]], Any]:
        def start(browser: Browser) -> None:
            page = browser.new_context(viewport={"width": 1280, "height": 800}).new_page()
            page.set_default_timeout(15_000)
            cookie = {"name": settings.SESSION_COOKIE_NAME, "value": owner_session}
            page.context.add_cookies([{**cookie, "url": base_url}])
            page.goto(f"{base_url}/w/{owner.workspace.public_id}/")
            expect(page.locator("body")).to_have_attribute("data-live", "on")
            pages.append(page)

        chromium.run(start)
        return lambda steps: chromium.run(lambda _browser: steps(pages[0]))

    yield open_at
    if pages:
        chromium.run(lambda _browser: pages[0].context.close())


@pytest.fixture
def live_sender(owner, zone) -> SendingDomain:
    domain = domain_create(workspace=owner.workspace, actor=owner.user, name="live-sender.com")
    publish(zone, domain)
    assert domain_verify(domain=domain).verified
    domain.refresh_from_db()
    return domain


@pytest.mark.browser
def test_the_dashboard_shows_the_final_score_of_a_simulated_run_posted_to_the_server(
    live_sender, embedded_layer_server, dashboard
):
    domain, url = live_sender, embedded_layer_server.url
    on_page = dashboard(url)
    on_page(
        lambda page: page.evaluate(
            "window.__scores = [];"
            "document.addEventListener('workspace:score', e => "
            "  e.detail.resync || window.__scores.push(e.detail.score))"
        )
    )

    # The simulator is a process of its own, as when run beside `make run`: the MTA's records
    # and the recipients' opens and replies both go to the server.
    run = subprocess.run(
        [
            sys.executable,
            "manage.py",
            "simulate_traffic",
            "--domain",
            domain.name,
            "--persona",
            "average",
            "--messages",
            "400",
            "--seed",
            "7",
            "--url",
            f"{url}/hooks/kumomta/",
        ],
        cwd=ROOT,
        env=in_memory_layer_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    domain.refresh_from_db()
    final = domain.trust_score
    assert final is not None

    def shows_the_final_score(page: Page) -> None:
        # The last push the page heard carries the score the domain ended with.
        page.wait_for_function(
            "final => window.__scores.length && window.__scores.at(-1) === final", arg=final
        )
        row = page.locator(f"tr[data-domain='{domain.public_id}']")
        expect(row.locator(".score-cell")).to_contain_text(f"{final:.1f}")

    on_page(shows_the_final_score)


@pytest.mark.browser
def test_the_dashboard_refetches_its_scores_when_the_socket_reconnects(
    live_sender, embedded_layer_server, dashboard
):
    domain, server = live_sender, embedded_layer_server
    on_page = dashboard(server.url)
    row = f"tr[data-domain='{domain.public_id}']"

    def shows_the_provisional_score(page: Page) -> None:
        expect(page.locator(row).locator(".score-cell")).to_contain_text("50.0")
        page.evaluate("window.__notReloaded = true")

    on_page(shows_the_provisional_score)

    # The score moves while the page is disconnected: its push reaches nobody.
    server.stop()
    on_page(lambda page: expect(page.locator("body")).to_have_attribute("data-live", "off"))
    SendingDomain.objects.filter(pk=domain.pk).update(
        trust_score=12.3, tier="rehab", score_provisional=False
    )
    server.start()

    def catches_up_on_reconnect(page: Page) -> None:
        expect(page.locator("body")).to_have_attribute("data-live", "on", timeout=30_000)
        expect(page.locator(row).locator(".score-cell")).to_contain_text("12.3")
        expect(page.locator(row).locator(".tier-badge")).to_have_text("rehab")
        assert page.evaluate("window.__notReloaded") is True

    on_page(catches_up_on_reconnect)


# --- The product-events hook ------------------------------------------------------------------


def test_it_refuses_events_without_the_hook_token(settings, verified_domain):
    settings.KUMO_WEBHOOK_TOKEN = TOKEN
    client = Client()
    assert client.post("/hooks/events/", {}, content_type="application/json").status_code == 401
    answer = events_post(client, {"events": [opened_event(verified_domain, 1)]}, "wrong")
    assert answer.status_code == 401
    assert answer["WWW-Authenticate"] == 'Bearer realm="hooks"'
    assert not Event.objects.exists()


def test_it_rejects_a_batch_with_an_unknown_domain_or_an_mta_kind(settings, verified_domain):
    settings.KUMO_WEBHOOK_TOKEN = TOKEN
    client = Client()
    unknown = {**opened_event(verified_domain, 2), "domain": "dom_nope"}
    answer = events_post(client, {"events": [opened_event(verified_domain, 1), unknown]}, TOKEN)
    assert answer.status_code == 400
    assert answer.json()["error"]["code"] == "unknown_domain"
    bounce = {**opened_event(verified_domain, 3), "kind": "bounce_hard"}
    answer = events_post(client, {"events": [bounce]}, TOKEN)
    assert answer.status_code == 400
    assert "kind" in str(answer.json()["error"]["fields"])
    assert not Event.objects.exists()


def test_it_rate_limits_each_caller(settings, verified_domain, monkeypatch):
    settings.KUMO_WEBHOOK_TOKEN = TOKEN
    monkeypatch.setattr(EventsHookThrottle, "rate", "2/min")
    client = Client()
    for n in range(2):
        assert (
            events_post(client, {"events": [opened_event(verified_domain, n)]}, TOKEN).status_code
            == 200
        )
    answer = events_post(client, {"events": [opened_event(verified_domain, 9)]}, TOKEN)
    assert answer.status_code == 429
    assert int(answer["Retry-After"]) > 0


@pytest.mark.parametrize("at", ["9999-12-31T00:00:00Z", "1970-01-02T00:00:00Z"])
def test_it_refuses_event_times_no_window_can_read(settings, verified_domain, at):
    settings.KUMO_WEBHOOK_TOKEN = TOKEN
    event = {**opened_event(verified_domain, 1), "occurred_at": at}
    answer = events_post(Client(), {"events": [event]}, TOKEN)
    assert answer.status_code == 400
    assert "occurred_at" in str(answer.json()["error"]["fields"])
    assert not Event.objects.exists()


def test_the_hook_goes_on_when_the_cache_that_counts_its_rate_is_down(settings, verified_domain):
    settings.KUMO_WEBHOOK_TOKEN = TOKEN
    settings.CACHES = {
        "default": {
            "BACKEND": "django_redis.cache.RedisCache",
            "LOCATION": f"redis://127.0.0.1:{free_port()}/0",  # nothing listens
            "OPTIONS": {"SOCKET_CONNECT_TIMEOUT": 1, "SOCKET_TIMEOUT": 1},
        }
    }
    answer = events_post(Client(), {"events": [opened_event(verified_domain, 1)]}, TOKEN)
    assert answer.status_code == 200, answer.content
    assert Event.objects.filter(kind="opened").count() == 1
