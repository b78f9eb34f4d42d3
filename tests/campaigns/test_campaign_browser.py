"""A customer builds a campaign and launches it, in headless Chromium at desktop (1280 px) and
phone (390 px) width: create it, write the first message, preview it for a lead, choose mailboxes
and a list, see the checks pass, launch, and read the numbers. Nothing scrolls sideways.
Screenshots go to test-artifacts/campaign-*.png."""

from typing import Any

import pytest
from playwright.sync_api import Browser, Page, expect

from campaigns.models import Campaign, CampaignLead, CampaignStatus
from tests.billing.test_billing_browser import signed_in
from tests.campaigns import builders
from tests.test_browser import ARTIFACTS
from tests.test_browser_phone import DESKTOP, PHONE, chromium, sideways_overflow  # noqa: F401

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def snap(page: Page, name: str, width: int) -> int:
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"campaign-{name}-{width}.png"), full_page=True)
    return sideways_overflow(page)


@pytest.mark.parametrize("viewport", [DESKTOP, PHONE], ids=["1280", "390"])
def test_a_customer_builds_a_campaign_previews_it_and_launches_it(
    live_server,
    chromium,  # noqa: F811
    owner,
    viewport,
):
    ws = owner.workspace
    builders.paid(ws)
    domain = builders.sending_domain(ws, "acme-sales.com")
    builders.mailboxes(domain, 2)
    rehab = builders.sending_domain(ws, "fresh-start.io", tier="rehab", score=52)
    builders.mailboxes(rehab, 1)
    builders.lead_list(
        ws, ["ann.lee@prospect.test", "bob@prospect.test", "cy@prospect.test"], name="Agencies"
    )
    base = f"{live_server.url}/w/{ws.public_id}"
    width = viewport["width"]

    def steps(browser: Browser) -> dict[str, Any]:
        overflow: dict[str, int] = {}
        page = signed_in(browser, owner.user, live_server.url, viewport)
        page.goto(f"{base}/campaigns/")
        expect(page.get_by_test_id("campaign-empty")).to_contain_text("No campaigns yet")
        overflow["list-empty"] = snap(page, "list-empty", width)

        page.get_by_label("Campaign name").fill("Agencies in Berlin")
        page.get_by_role("button", name="Create and open the builder").click()
        expect(page.get_by_role("heading", level=1)).to_have_text("Agencies in Berlin")
        expect(page.get_by_test_id("checks-blocking")).to_contain_text("mailbox")

        # A broken spintax group is refused beside the body; the text stays in the box.
        variant = page.get_by_test_id("variant-1A")
        body = variant.get_by_label("Body")
        body.fill("Hi {{ first_name }},\n\n{Quick|Short note.\n\n{{ unsubscribe_url }}")
        variant.get_by_role("button", name="Save variant A").click()
        variant = page.get_by_test_id("variant-1A")
        expect(variant).to_contain_text("never closed")
        expect(variant.get_by_label("Body")).to_be_focused()  # brought into view to fix
        overflow["builder-error"] = snap(page, "builder-error", width)
        variant.get_by_label("Body").fill(
            "Hi {{ first_name }},\n\n{Quick|Short} note about {{ company | default: 'your "
            "agency' }}.\n\n{{ unsubscribe_url }}"
        )
        variant.get_by_role("button", name="Save variant A").click()
        expect(page.locator(".message-success")).to_contain_text("variant A saved")

        # Mailboxes and the list; the rehab domain's mailbox cannot be chosen and says why.
        choices = page.get_by_test_id("mailbox-choices")
        expect(choices).to_contain_text(
            "fresh-start.io cannot send campaigns until its trust score is 70 or more"
        )
        expect(page.get_by_label("rep1@fresh-start.io", exact=False)).to_be_disabled()
        page.get_by_label("rep1@acme-sales.com", exact=False).check()
        page.get_by_label("rep2@acme-sales.com", exact=False).check()
        page.get_by_label("Agencies", exact=False).check()
        page.get_by_role("button", name="Save settings").click()
        expect(page.locator(".message-success")).to_contain_text("Settings saved")

        # The preview for a chosen lead (HTMX swaps the pane).
        page.get_by_test_id("preview-lead").select_option(label="bob@prospect.test")
        expect(page.get_by_test_id("preview-mail")).to_contain_text("Hi Bob,")
        expect(page.get_by_test_id("preview-mail")).to_contain_text("your agency")

        expect(page.get_by_test_id("checks-ok")).to_be_visible()
        overflow["builder"] = snap(page, "builder", width)
        page.get_by_test_id("launch").click()
        expect(page.get_by_test_id("campaign-status")).to_have_text("Running")
        overflow["running"] = snap(page, "running", width)

        page.get_by_role("link", name="Numbers").first.click()
        expect(page.get_by_test_id("stats-totals")).to_be_visible()
        overflow["stats"] = snap(page, "stats", width)

        page.goto(f"{base}/campaigns/")
        expect(page.get_by_test_id("campaign-list")).to_contain_text("Agencies in Berlin")
        overflow["list"] = snap(page, "list", width)
        page.context.close()
        return overflow

    overflow = chromium.run(steps)
    campaign = Campaign.objects.get(workspace=ws)
    assert campaign.status == CampaignStatus.RUNNING
    assert CampaignLead.objects.filter(campaign=campaign).count() == 3
    assert campaign.mailboxes.count() == 2
    assert {name: px for name, px in overflow.items() if px > 0} == {}


@pytest.mark.parametrize("viewport", [DESKTOP, PHONE], ids=["1280", "390"])
def test_the_numbers_page_shows_clicks_interest_and_replies_per_day(
    live_server,
    chromium,  # noqa: F811
    owner,
    settings,
    viewport,
):
    from datetime import timedelta

    from django.utils import timezone

    from campaigns.services.dispatch import campaigns_dispatch
    from sending.models import Message
    from tests.campaigns.test_stats import click, reply

    settings.OUTBOUND_TRANSPORT = "smtp_relay"
    ws = owner.workspace
    builders.paid(ws, credits=100)
    domain = builders.sending_domain(ws, "acme-sales.com")
    leads = builders.lead_list(ws, [f"p{i}@prospect.test" for i in range(6)])
    body = "Hi\n{{ unsubscribe_url }}"
    campaign = builders.campaign(
        ws,
        name="Agencies in Berlin",
        steps=((0, (("Hi A", body), ("Hi B", body))),),
        senders=builders.mailboxes(domain, 2),
        lists=[leads],
        status=CampaignStatus.RUNNING,
    )
    now = timezone.now()
    CampaignLead.objects.bulk_create(
        CampaignLead(campaign=campaign, lead=lead, next_at=now) for lead in leads.leads.all()
    )
    assert campaigns_dispatch(now=now).sent == 6
    messages = list(Message.objects.filter(campaign_send__campaign=campaign).order_by("id"))
    click(messages[0])
    reply(messages[0], label="interested", at=now - timedelta(days=1))
    reply(messages[1], at=now)
    width = viewport["width"]

    def steps(browser: Browser) -> int:
        page = signed_in(browser, owner.user, live_server.url, viewport)
        page.goto(f"{live_server.url}/w/{ws.public_id}/campaigns/{campaign.public_id}/stats/")
        expect(page.get_by_test_id("stats-clicks")).to_contain_text("1")
        expect(page.get_by_test_id("stats-interested")).to_contain_text("1")
        table = page.get_by_test_id("stats-steps")
        expect(table.get_by_role("columnheader", name="Interested")).to_be_visible()
        expect(page.get_by_test_id("reply-bar")).to_have_count(2)
        return snap(page, "numbers", width)

    assert chromium.run(steps) == 0
