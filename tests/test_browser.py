"""A person in headless Chromium: sign up, verify by email, log in, see the dashboard."""

import os
import re
import subprocess
import sys
import threading
from pathlib import Path

import orjson
import pytest
from django.conf import settings
from django.db import connection, transaction
from django.test import Client
from playwright.sync_api import expect, sync_playwright

from accounts.services import workspace_notify
from config.http import post_json
from tests.accounts.test_signup import CONFIRM_LINK
from tests.conftest import free_port
from tests.test_profiles import ROOT, wait_for_port

ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture(scope="session")
def browser():
    assert os.path.exists(CHROMIUM), "Debian's chromium is missing: `make test` installs it"
    # Playwright's sync API keeps an event loop in this thread, which makes Django refuse ORM
    # calls from the test's fixtures; nothing runs concurrently here, so allow them.
    previous = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            yield browser
            browser.close()
    finally:
        if previous is None:
            os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
        else:
            os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = previous


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    page = context.new_page()
    page.set_default_timeout(10_000)
    yield page
    context.close()


def test_a_visitor_signs_up_verifies_logs_in_and_sees_the_dashboard(
    live_server, smtp_mail, page, password
):
    page.goto(live_server.url + "/")
    expect(page.get_by_role("heading", level=1)).to_contain_text("Warm up your domains")
    page.get_by_role("link", name="Try it free").click()

    page.get_by_label("Your name").fill("Grace Hopper")
    page.get_by_label("Email").fill("grace@navy.test")
    page.get_by_label("Password:", exact=True).fill(password)
    page.get_by_label("Password (again)").fill(password)
    page.get_by_label("Workspace name").fill("Navy Outreach")
    page.get_by_role("button", name="Sign Up").click()
    expect(page.get_by_role("heading", level=1)).to_contain_text("Verify Your Email Address")

    body = smtp_mail.body(smtp_mail.wait_for("grace@navy.test"))
    page.goto(live_server.url + CONFIRM_LINK.search(body).group(1))
    page.get_by_role("button", name="Confirm").click()

    expect(page).to_have_url(re.compile(r"/accounts/login/"))
    page.get_by_placeholder("Email address").fill("grace@navy.test")
    page.get_by_placeholder("Password").fill(password)
    page.get_by_role("button", name="Sign In").click()

    expect(page).to_have_url(re.compile(r"/w/ws_[a-z0-9]{16}/$"))
    expect(page.get_by_role("heading", level=1)).to_have_text("Navy Outreach")
    expect(page.get_by_test_id("leaderboard-handle")).to_have_text(re.compile(r"^Sender_\d{4,6}$"))
    for item in ["Domains", "Mailboxes", "Warming", "Campaigns", "Leaderboard", "Billing"]:
        expect(page.get_by_role("link", name=item, exact=True)).to_be_visible()
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "signup-dashboard.png"), full_page=True)


def log_in(page, membership, base_url: str) -> None:
    client = Client()
    client.force_login(membership.user)
    name = settings.SESSION_COOKIE_NAME
    page.context.add_cookies([{"name": name, "value": client.cookies[name].value, "url": base_url}])


def test_settings_sections_update_in_place_with_htmx(live_server, page, owner):
    log_in(page, owner, live_server.url)
    page.goto(f"{live_server.url}/w/{owner.workspace.public_id}/settings/")
    htmx_src = page.locator("script[src*='htmx']").first.get_attribute("src")
    assert htmx_src.startswith("/static/")  # vendored, no CDN
    page.evaluate("window.__notReloaded = true")

    tokens = page.locator("#tokens")
    tokens.get_by_label("Name").fill("CRM sync")
    tokens.get_by_role("button", name="Create token").click()
    secret = page.get_by_test_id("new-token").locator("code")
    expect(secret).to_have_text(re.compile(r"^tg_[\w-]{40,}$"))
    expect(tokens.get_by_role("cell", name="CRM sync")).to_be_visible()
    assert page.evaluate("window.__notReloaded") is True

    tokens.get_by_role("button", name="Revoke").click()
    expect(page.locator("#messages")).to_contain_text("Token “CRM sync” revoked.")
    expect(tokens.get_by_text("No active tokens.")).to_be_visible()
    assert page.evaluate("window.__notReloaded") is True
    page.screenshot(path=str(ARTIFACTS / "settings-tokens.png"), full_page=True)


@pytest.fixture
def asgi_server():
    """The real ASGI server (uvicorn) on the test database, with the Redis channel layer."""
    url = "postgres://{USER}@{HOST}:{PORT}/{NAME}".format(**connection.settings_dict)
    port = free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "config.asgi:application",
            "--port",
            str(port),
            "--lifespan",
            "off",
            # Open sockets wait on the channel layer's blocking read: do not let them hold the
            # shutdown past the teardown's wait.
            "--timeout-graceful-shutdown",
            "2",
        ],
        cwd=ROOT,
        env={**os.environ, "DATABASE_URL": url, "KUMO_WEBHOOK_TOKEN": "browser-test-token"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        wait_for_port(port, proc)
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_the_dashboard_hears_workspace_notify_live_without_reload(asgi_server, page, owner):
    log_in(page, owner, asgi_server)
    page.goto(f"{asgi_server}/w/{owner.workspace.public_id}/")
    expect(page.locator("body")).to_have_attribute("data-live", "on")
    page.evaluate("window.__notReloaded = true")

    def notify() -> None:
        try:
            with transaction.atomic():
                workspace_notify(
                    workspace=owner.workspace, event="notice", payload={"text": "Score is now 81"}
                )
        finally:
            connection.close()

    # A thread of its own, as in a worker: Playwright's sync API holds an event loop here.
    pusher = threading.Thread(target=notify)
    pusher.start()
    pusher.join()
    expect(page.locator("#live-feed")).to_contain_text("Score is now 81")
    assert page.evaluate("window.__notReloaded") is True


def test_a_customer_adds_a_domain_publishes_it_verifies_and_adds_a_mailbox(
    live_server, page, owner, zone
):
    log_in(page, owner, live_server.url)
    page.goto(f"{live_server.url}/w/{owner.workspace.public_id}/domains/")
    page.get_by_label("Domain name").fill("acme-outreach.com")
    page.get_by_role("button", name="Add domain").click()
    expect(page.get_by_role("heading", level=1)).to_contain_text("acme-outreach.com")
    expect(page.get_by_test_id("record-status")).to_have_text("Waiting for DNS")

    # Publish exactly what the page shows, as a customer would at their DNS host.
    for row in page.locator("#dns-records tbody tr").all():
        kind = row.get_attribute("data-kind")
        if kind in ("tracking", "mx"):
            continue
        rtype = row.locator("td").nth(1).inner_text().strip()
        host = row.locator("td").nth(2).locator("code").inner_text().strip()
        value = row.locator("td").nth(3).locator("code").inner_text().strip()
        zone.add(host, rtype, value)

    page.evaluate("window.__notReloaded = true")
    page.get_by_test_id("check-now").click()
    expect(page.get_by_test_id("record-status")).to_have_text("Verified")
    expect(page.locator("#domain-status")).to_have_text("Verified")
    expect(page.locator("#messages")).to_contain_text("is verified and can send")
    assert page.evaluate("window.__notReloaded") is True  # swapped in place by HTMX
    expect(page.locator("#dns-records tr[data-kind='dkim'] .badge")).to_have_text("pass")
    page.screenshot(path=str(ARTIFACTS / "domain-verified.png"), full_page=True)

    page.get_by_role("link", name="Mailboxes", exact=True).click()
    page.get_by_label("Address (before the @)").fill("alex")
    page.get_by_label("Sender name").fill("Alex Doe")
    page.get_by_role("button", name="Add mailbox").click()
    expect(page.get_by_role("heading", level=1)).to_contain_text("alex@acme-outreach.com")
    page.get_by_role("link", name="← Mailboxes").click()
    expect(page.get_by_test_id("mailbox-list")).to_contain_text("alex@acme-outreach.com")


def test_the_dashboard_score_moves_live_when_the_mta_reports(asgi_server, page, owner, zone):
    from reputation.models import Event
    from sending.services.domains import domain_create
    from sending.services.verification import domain_verify
    from tests.conftest import publish
    from tests.reputation.records import traffic

    domain = domain_create(workspace=owner.workspace, actor=owner.user, name="live-sender.com")
    publish(zone, domain)
    domain_verify(domain=domain)
    log_in(page, owner, asgi_server)
    page.goto(f"{asgi_server}/w/{owner.workspace.public_id}/")
    expect(page.locator("body")).to_have_attribute("data-live", "on")
    row = page.locator(f"tr[data-domain='{domain.public_id}']")
    expect(row.locator(".score-cell")).to_contain_text("50.0")
    page.evaluate("window.__notReloaded = true")

    body = orjson.dumps(traffic(domain, 40, bounces=2))  # 5 % bounces -> 50 - 50 = 0
    post_json(
        f"{asgi_server}/hooks/kumomta/",
        body,
        headers={"Authorization": "Bearer browser-test-token"},
    )
    expect(row.locator(".score-cell")).to_contain_text("0.0")
    expect(row.locator(".tier-badge")).to_have_text("rehab")
    assert page.evaluate("window.__notReloaded") is True
    assert Event.objects.filter(domain=domain).count() == 80
    page.screenshot(path=str(ARTIFACTS / "dashboard-live-score.png"), full_page=True)
