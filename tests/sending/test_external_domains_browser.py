"""A customer adds a domain that sends through its own servers, in headless Chromium at desk and
phone width: the page says what is still missing, and no platform SPF include or DKIM key."""

from typing import Any

import pytest
from playwright.sync_api import Browser, expect

from sending.models import SendingDomain, SendsThrough
from tests.billing.test_billing_browser import signed_in
from tests.test_browser import ARTIFACTS
from tests.test_browser_phone import DESKTOP, PHONE, chromium, sideways_overflow  # noqa: F401

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.mark.parametrize("viewport", [DESKTOP, PHONE], ids=["1280", "390"])
def test_an_own_servers_domain_and_its_external_mailbox_say_what_is_missing(
    live_server,
    chromium,  # noqa: F811
    zone,
    owner,
    viewport,
):
    base = f"{live_server.url}/w/{owner.workspace.public_id}"
    width = viewport["width"]

    def steps(browser: Browser) -> dict[str, Any]:
        page = signed_in(browser, owner.user, live_server.url, viewport)
        page.goto(f"{base}/domains/")
        page.get_by_label("Domain name").fill("acme-outreach.com")
        page.get_by_label("Through its own mail servers", exact=False).check()
        page.get_by_role("button", name="Add domain").click()
        missing = page.get_by_test_id("still-missing")
        expect(missing).to_contain_text("SPF")
        expect(missing).to_contain_text("DMARC")
        expect(missing).not_to_contain_text("DKIM")
        page.screenshot(path=str(ARTIFACTS / f"own-servers-domain-{width}.png"), full_page=True)
        overflow = {"domain": sideways_overflow(page)}
        page.context.close()
        return overflow

    seen = chromium.run(steps)
    domain = SendingDomain.objects.get(name="acme-outreach.com")
    assert domain.sends_through == SendsThrough.OWN_SERVERS
    assert seen["domain"] <= 0
