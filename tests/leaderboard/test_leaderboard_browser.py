"""The leaderboard in headless Chromium against the real ASGI server (uvicorn, the Redis channel
layer): a score moving on two open boards at once, the workspace's page and the dashboard card
at desktop and phone width. Screenshots go to test-artifacts/leaderboard-*.png."""

import threading

import pytest
from django.db import connection
from playwright.sync_api import expect

from leaderboard.services.board import board_rebuild, workspaces_refresh
from reputation.models import DomainDailyMetrics
from sending.models import SendingDomain
from tests.leaderboard.helpers import domain_with_volume, join, workspace
from tests.test_browser import ARTIFACTS, asgi_server, log_in  # noqa: F401
from tests.test_browser_phone import chromium, sideways_overflow  # noqa: F401

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def refresh_elsewhere(workspace_id: int) -> None:
    """What the refresh task does, from a thread of its own (Playwright's event loop runs in
    this one, and the channel layer's sync wrapper refuses to run beside it)."""

    def work() -> None:
        try:
            workspaces_refresh(workspace_ids=[workspace_id])
        finally:
            connection.close()

    thread = threading.Thread(target=work)
    thread.start()
    thread.join(timeout=30)


@pytest.fixture
def world(owner):
    mine = domain_with_volume(owner.workspace, "acme-sales.com", score=72.0, sent=400)
    join(owner.workspace)
    for n, score in enumerate([88.0, 80.0, 64.0]):
        ws = workspace(f"Other {n}")
        domain_with_volume(ws, f"other{n}.test", score=score, sent=300)
        join(ws)
    board_rebuild()
    return mine


def test_a_score_change_moves_on_two_open_boards(asgi_server, chromium, owner, world):  # noqa: F811
    handle = owner.workspace.leaderboard_handle

    def steps(browser) -> None:
        tabs = []
        for _ in range(2):
            page = browser.new_context(viewport={"width": 1280, "height": 900}).new_page()
            page.set_default_timeout(10_000)
            page.goto(f"{asgi_server}/leaderboard/")
            expect(page.locator("#board-live")).to_be_visible()  # the socket is open
            expect(page.locator(f"tr[data-handle='{handle}'] .rank")).to_have_text("3")
            page.evaluate("window.__notReloaded = true")
            tabs.append(page)

        DomainDailyMetrics.objects.filter(domain=world).update(sent=900)
        SendingDomain.objects.filter(pk=world.pk).update(trust_score=93.0)
        refresh_elsewhere(owner.workspace_id)

        for page in tabs:
            row = page.locator(f"tr[data-handle='{handle}']")
            expect(row.locator(".rank")).to_have_text("1")
            expect(row).to_contain_text("93.0")
            assert page.evaluate("window.__notReloaded") is True
        ARTIFACTS.mkdir(exist_ok=True)
        tabs[0].screenshot(path=str(ARTIFACTS / "leaderboard-public.png"), full_page=True)
        for page in tabs:
            page.goto("about:blank")  # closes the page's sockets before the server stops
            page.context.close()

    chromium.run(steps)


@pytest.mark.parametrize("width", [1280, 390])
def test_the_workspace_page_and_the_dashboard_card(asgi_server, chromium, owner, world, width):  # noqa: F811
    ws = owner.workspace.public_id

    def steps(browser) -> None:
        context = browser.new_context(viewport={"width": width, "height": 900})
        page = context.new_page()
        page.set_default_timeout(10_000)
        log_in(page, owner, asgi_server)
        page.goto(f"{asgi_server}/w/{ws}/leaderboard/")
        expect(page.get_by_test_id("own-rank")).to_have_text("#3")
        expect(page.get_by_test_id("neighbours")).to_contain_text(
            owner.workspace.leaderboard_handle
        )
        page.screenshot(path=str(ARTIFACTS / f"leaderboard-own-{width}.png"), full_page=True)
        assert sideways_overflow(page) == 0

        page.goto(f"{asgi_server}/w/{ws}/")
        expect(page.locator("body")).to_have_attribute("data-live", "on")
        expect(page.get_by_test_id("dashboard-rank")).to_contain_text("#3")
        SendingDomain.objects.filter(pk=world.pk).update(trust_score=99.0)
        refresh_elsewhere(owner.workspace_id)
        expect(page.get_by_test_id("dashboard-rank")).to_contain_text("#1")
        page.screenshot(path=str(ARTIFACTS / f"leaderboard-dashboard-{width}.png"), full_page=True)
        assert sideways_overflow(page) == 0

        page.goto(f"{asgi_server}/leaderboard/")
        assert sideways_overflow(page) == 0
        page.goto("about:blank")  # closes the page's sockets before the server stops
        context.close()

    chromium.run(steps)
