"""The tracking page in headless Chromium at phone and desktop widths: the record to publish and
a refused hostname's reason are shown, nothing scrolls sideways."""

import os

import pytest

from tests.test_browser import log_in
from tests.test_browser_phone import DESKTOP, PHONE, chromium  # noqa: F401 (the fixture)
from tracking.models import TrackingDomain, TrackingDomainState
from tracking.services.domains import cname_target

pytestmark = [
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True),
]
SHOTS = os.environ.get("TRACKING_SHOTS_DIR", "")


@pytest.mark.parametrize("viewport", [DESKTOP, PHONE], ids=["desktop", "phone"])
def test_the_tracking_page_shows_the_record_and_a_refusal_beside_the_field(
    chromium,  # noqa: F811
    live_server,
    owner,
    viewport,
):
    TrackingDomain.objects.create(
        workspace=owner.workspace,
        hostname="links.a-rather-long-subdomain-name.acme-outreach-northern-europe.com",
        state=TrackingDomainState.FAILED,
        error="No CNAME record at links.a-rather-long-subdomain-name.acme-outreach-northern-"
        f"europe.com: publish it as a CNAME to {cname_target()}.",
    )
    url = f"{live_server.url}/w/{owner.workspace.public_id}/tracking/"

    def steps(browser):
        context = browser.new_context(viewport=viewport)
        page = context.new_page()
        page.set_default_timeout(10_000)
        log_in(page, owner, live_server.url)
        page.goto(url)
        assert page.get_by_test_id("domain-state").inner_text() == "Check failed"
        assert cname_target() in page.get_by_test_id("record").inner_text()
        page.get_by_label("Hostname").fill("acme-outreach.com")
        page.get_by_role("button", name="Change hostname").click()
        page.wait_for_load_state()
        form = page.get_by_test_id("domain-form")
        assert "Use a subdomain such as track.acme-outreach.com" in form.inner_text()
        wide = page.evaluate("document.documentElement.scrollWidth")
        if SHOTS:
            page.screenshot(path=f"{SHOTS}/tracking-{viewport['width']}.png", full_page=True)
        context.close()
        return wide

    assert chromium.run(steps) <= viewport["width"]
