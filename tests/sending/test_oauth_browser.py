"""Connect with Google as a customer does it, in headless Chromium: the add-mailbox page, the
provider's consent page (the loopback identity provider), back on the add-mailbox page with the
mailbox connected, and Test connection passing over XOAUTH2 on its page. At 1280 and 390
pixels; screenshots go to test-artifacts/oauth-*.png."""

from typing import Any

import pytest
from playwright.sync_api import Browser, Page, expect

from sending.models import Mailbox, MailboxGrant
from sending.services.connection import mailbox_test_connection
from tests.billing.test_billing_browser import signed_in
from tests.conftest import CALLBACK
from tests.test_browser import ARTIFACTS
from tests.test_browser_phone import DESKTOP, chromium, snap_widths  # noqa: F401

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def snap(page: Page, name: str) -> dict[str, int]:
    return snap_widths(page, f"oauth-{name}")


def test_a_customer_connects_a_google_mailbox_with_one_button(
    live_server,
    chromium,  # noqa: F811
    settings,
    oauth,
    own_domain,
    mail_account,
    owner,
):
    settings.OAUTH_REDIRECT_URL = f"{live_server.url}{CALLBACK}"
    oauth.sign_in_as(mail_account.address)
    ws = owner.workspace.public_id
    url = f"{live_server.url}/w/{ws}/mailboxes/"

    def steps(browser: Browser) -> dict[str, Any]:
        page = signed_in(browser, owner.user, live_server.url, DESKTOP)
        page.goto(url)
        card = page.get_by_test_id("oauth-connect")
        expect(card.get_by_role("button", name="Connect with Google")).to_be_visible()
        expect(card.get_by_role("button", name="Connect with Microsoft")).to_be_visible()
        overflow = {"add": snap(page, "add")}

        card.get_by_role("button", name="Connect with Google").click()
        expect(page.get_by_role("heading", level=1)).to_contain_text(mail_account.address)
        assert page.url.startswith(oauth.url + "/authorize?")
        page.screenshot(path=str(ARTIFACTS / "oauth-consent-1280.png"))
        page.get_by_role("button", name="Allow").click()

        expect(page).to_have_url(url)
        expect(page.locator(".message-success")).to_contain_text(
            f"{mail_account.address} connected with Google: SMTP and IMAP accept its sign-in."
        )
        row = page.get_by_test_id("mailbox-list").locator("tr", has_text=mail_account.address)
        expect(row).to_contain_text("Google sign-in")
        expect(row.get_by_test_id("connection-state")).to_contain_text("Connected")
        # Ready for the next mailbox: the buttons are still there.
        expect(card.get_by_role("button", name="Connect with Google")).to_be_visible()
        overflow["back"] = snap(page, "connected")

        row.get_by_role("link", name=mail_account.address).click()
        grant_card = page.get_by_test_id("oauth-grant")
        expect(grant_card).to_contain_text("no password is stored")
        expect(grant_card.get_by_role("button", name="Reconnect with Google")).to_be_visible()
        page.get_by_test_id("test-connection").click()
        expect(page.get_by_test_id("result-smtp")).to_contain_text("Logged in to")
        expect(page.get_by_test_id("result-imap")).to_contain_text("Logged in to")
        expect(page.get_by_test_id("connection-summary")).to_contain_text("Connected")
        overflow["mailbox"] = snap(page, "mailbox")
        page.context.close()
        return overflow

    overflow = chromium.run(steps)

    assert all(width == 0 for page in overflow.values() for width in page.values()), overflow
    mailbox = Mailbox.objects.get()
    assert mailbox.connection_ok is True and mailbox.provider == "google"
    assert MailboxGrant.objects.filter(mailbox=mailbox).exists()


def test_a_revoked_mailbox_says_so_and_one_button_reconnects_it(
    live_server,
    chromium,  # noqa: F811
    settings,
    oauth,
    connected,
    owner,
):
    settings.OAUTH_REDIRECT_URL = f"{live_server.url}{CALLBACK}"
    oauth.revoke_refresh_tokens()
    oauth.expire_access_tokens()
    assert mailbox_test_connection(mailbox=connected)[0].reason == "oauth_revoked"
    url = f"{live_server.url}/w/{owner.workspace.public_id}/mailboxes/{connected.pk}/"

    def steps(browser: Browser) -> dict[str, Any]:
        page = signed_in(browser, owner.user, live_server.url, DESKTOP)
        page.goto(url)
        expect(page.get_by_role("heading", level=1)).to_contain_text("Paused")
        expect(page.get_by_test_id("reconnect-needed")).to_have_text(
            "Google access was revoked or has expired: reconnect with Google."
        )
        overflow = snap(page, "revoked")
        page.get_by_role("button", name="Reconnect with Google").click()
        page.get_by_role("button", name="Allow").click()
        expect(page).to_have_url(url)
        expect(page.locator(".message-success")).to_contain_text("reconnected with Google")
        expect(page.get_by_role("heading", level=1)).to_contain_text("Active")
        expect(page.get_by_test_id("reconnect-needed")).to_have_count(0)
        page.context.close()
        return overflow

    overflow = chromium.run(steps)

    assert overflow == {"1280": 0, "390": 0}
    connected.refresh_from_db()
    assert connected.status == "active" and connected.connection_ok is True
