"""The app in headless Chromium at phone (390 px) and desktop (1280 px) widths: nothing scrolls
sideways, long names wrap, the invitation form explains a refused address where it was typed."""

import os
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from itertools import pairwise
from typing import Any

import pytest
from django.db import connections
from django.utils import timezone
from playwright.sync_api import Browser, expect, sync_playwright

from accounts.services import api_token_create, invitation_create
from reputation.models import ScoreHistory
from sending.services.mailboxes import mailbox_create
from tests.test_browser import ARTIFACTS, CHROMIUM, CHROMIUM_ARGS, log_in

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1280, "height": 800}
LONG_TOKEN_NAME = "productioncrmsyncforthenortherneuropesalesteamandpartneragencies2025q4xxxxxxxxxx"


class Chromium:
    """Chromium driven from one worker thread of its own. Playwright's sync API owns the thread
    it starts in, and tests/test_browser.py keeps a session there for the whole run: a second one
    beside it is refused, so these tests hand their browser steps to this thread."""

    def __init__(self) -> None:
        self.worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="chromium")
        self.browser: Browser = self.worker.submit(self._launch).result()

    def _launch(self) -> Browser:
        self.playwright = sync_playwright().start()
        return self.playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)

    def run(self, steps: Callable[[Browser], Any]) -> Any:
        """Run `steps(browser)` in the browser's thread; its failures are raised here."""

        def job() -> Any:
            try:
                return steps(self.browser)
            finally:
                connections.close_all()  # the thread's own database connection

        return self.worker.submit(job).result()

    def close(self) -> None:
        self.worker.submit(lambda: (self.browser.close(), self.playwright.stop())).result()
        self.worker.shutdown()


@pytest.fixture(scope="module")
def chromium() -> Iterator[Chromium]:
    assert os.path.exists(CHROMIUM), "Debian's chromium is missing: `make test` installs it"
    # Playwright runs an event loop in its thread; nothing else runs there, so the ORM may too.
    previous = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    driver = Chromium()
    try:
        yield driver
    finally:
        driver.close()
        if previous is None:
            os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
        else:
            os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = previous


@pytest.fixture
def busy_workspace(owner, sender):
    """A workspace a few days in: a verified domain with a platform and an external mailbox,
    a day of score changes, a long-named API token and an invitation to a long address."""
    mailbox_create(
        domain=sender,
        actor=owner.user,
        data={
            "connection": "external",
            "local_part": "sales.team.northern.europe",
            "smtp_host": "smtp.example.com",
            "smtp_port": 587,
            "smtp_security": "starttls",
            "smtp_username": "sales.team.northern.europe@acme-outreach.com",
            "smtp_password": "app-password",
            "imap_host": "imap.example.com",
            "imap_port": 993,
            "imap_security": "ssl",
            "imap_username": "sales.team.northern.europe@acme-outreach.com",
            "imap_password": "app-password",
        },
    )
    now = timezone.now()
    ScoreHistory.objects.bulk_create(
        ScoreHistory(
            domain=sender,
            at=now - timedelta(hours=20) + timedelta(minutes=20 * i),
            score=45 + i / 2,
            tier="rehab",
            scoring_version=1,
        )
        for i in range(60)
    )
    api_token_create(user=owner.user, workspace=owner.workspace, name=LONG_TOKEN_NAME)
    invitation_create(
        workspace=owner.workspace,
        inviter=owner.user,
        email="bob.the.very.long.address@subsidiary.example.com",
    )
    return owner


def open_page(browser: Browser, viewport: dict, membership, base_url: str):
    context = browser.new_context(viewport=viewport)
    page = context.new_page()
    page.set_default_timeout(10_000)
    log_in(page, membership, base_url)
    return page


def sideways_overflow(page) -> int:
    return page.evaluate("document.scrollingElement.scrollWidth - window.innerWidth")


def snap_widths(page, name: str) -> dict[str, int]:
    """Full-page screenshots `<name>-1280.png` and `<name>-390.png`; how far each width scrolls
    sideways (0 is right). The page is left at desktop width."""
    ARTIFACTS.mkdir(exist_ok=True)
    overflow = {}
    for size in (DESKTOP, PHONE):
        label = str(size["width"])
        page.set_viewport_size(size)
        page.screenshot(
            path=str(ARTIFACTS / f"{name}-{label}.png"), full_page=True, animations="disabled"
        )
        overflow[label] = sideways_overflow(page)
    page.set_viewport_size(DESKTOP)
    return overflow


def test_no_page_scrolls_sideways_on_a_phone(live_server, chromium, busy_workspace):
    ws = busy_workspace.workspace
    domain = ws.sending_domains.get()
    mailbox = domain.mailboxes.order_by("pk").last()
    pages = {
        "dashboard": f"/w/{ws.public_id}/",
        "domains": f"/w/{ws.public_id}/domains/",
        "domain": f"/w/{ws.public_id}/domains/{domain.public_id}/",
        "mailboxes": f"/w/{ws.public_id}/mailboxes/",
        "mailbox": f"/w/{ws.public_id}/mailboxes/{mailbox.pk}/",
        "settings": f"/w/{ws.public_id}/settings/",
    }
    ARTIFACTS.mkdir(exist_ok=True)

    def steps(browser: Browser) -> dict[str, int]:
        page = open_page(browser, PHONE, busy_workspace, live_server.url)
        overflowing = {}
        for name, path in pages.items():
            page.goto(live_server.url + path)
            page.screenshot(path=str(ARTIFACTS / f"phone-{name}.png"), full_page=True)
            if sideways_overflow(page) > 0:
                overflowing[name] = sideways_overflow(page)
        page.context.close()
        return overflowing

    assert chromium.run(steps) == {}


def test_the_score_chart_keeps_its_labels_apart_on_a_phone(live_server, chromium, busy_workspace):
    ws = busy_workspace.workspace
    url = f"{live_server.url}/w/{ws.public_id}/domains/{ws.sending_domains.get().public_id}/"

    def steps(browser: Browser) -> None:
        page = open_page(browser, PHONE, busy_workspace, live_server.url)
        page.goto(url)
        chart = page.get_by_test_id("score-history")
        expect(chart.locator(".y-tick.y-threshold")).to_have_text("70")
        labels = chart.locator(".x-tick")
        boxes = [labels.nth(i).bounding_box() for i in range(labels.count())]
        assert len(boxes) >= 3
        for left, right in pairwise(boxes):
            assert left["x"] + left["width"] <= right["x"]  # no two dates or times overlap
        frame = chart.bounding_box()
        assert boxes[0]["x"] >= frame["x"]
        assert boxes[-1]["x"] + boxes[-1]["width"] <= frame["x"] + frame["width"]
        chart.screenshot(path=str(ARTIFACTS / "phone-score-chart.png"))
        page.context.close()

    chromium.run(steps)


@pytest.mark.parametrize("viewport", [PHONE, DESKTOP], ids=["phone", "desktop"])
def test_a_long_token_name_wraps_inside_the_settings_page(
    live_server, chromium, busy_workspace, viewport
):
    url = f"{live_server.url}/w/{busy_workspace.workspace.public_id}/settings/"

    def steps(browser: Browser) -> None:
        page = open_page(browser, viewport, busy_workspace, live_server.url)
        page.goto(url)
        tokens = page.locator("#tokens")
        name = tokens.locator(".token-name", has_text=LONG_TOKEN_NAME[:20])
        expect(name).to_have_text(LONG_TOKEN_NAME)  # wrapped, not cut
        card, box = tokens.bounding_box(), name.bounding_box()
        assert box["x"] + box["width"] <= card["x"] + card["width"]
        assert box["height"] > 30  # on more than one line
        if viewport is DESKTOP:  # the other columns keep their room
            assert box["width"] <= 0.4 * card["width"]
        assert tokens.evaluate("e => e.scrollWidth <= e.clientWidth")
        assert sideways_overflow(page) <= 0
        page.screenshot(
            path=str(ARTIFACTS / f"settings-long-token-{viewport['width']}.png"), full_page=True
        )
        page.context.close()

    chromium.run(steps)


def test_the_invitation_form_explains_a_refused_address_beside_the_field(
    live_server, chromium, owner
):
    url = f"{live_server.url}/w/{owner.workspace.public_id}/settings/"

    def steps(browser: Browser) -> None:
        page = open_page(browser, DESKTOP, owner, live_server.url)
        page.goto(url)
        page.evaluate("window.__notReloaded = true")
        members = page.locator("#members")
        email = members.get_by_label("Email")
        email.fill("a@b")  # the browser's own check lets this through
        members.get_by_role("button", name="Send invitation").click()
        error = members.get_by_text("Enter a valid email address.")
        expect(error).to_be_visible()
        expect(email).to_have_value("a@b")
        expect(email).to_have_attribute("aria-invalid", "true")
        field, message = email.bounding_box(), error.bounding_box()
        assert abs(message["x"] - field["x"]) < 5  # lined up with the field
        assert 0 <= field["y"] - (message["y"] + message["height"]) < 20  # right above it
        assert page.evaluate("window.__notReloaded") is True  # swapped in place by HTMX
        members.screenshot(path=str(ARTIFACTS / "invitation-refused.png"))
        page.context.close()

    chromium.run(steps)
