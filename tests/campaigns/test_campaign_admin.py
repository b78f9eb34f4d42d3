"""The operations console for campaigns: read-only pages, pause and resume through services."""

from datetime import UTC, datetime

import pytest
from django.conf import settings as django_settings
from django.contrib.messages import get_messages
from django.test import Client
from playwright.sync_api import Browser, Page, expect

from accounts.models import AuditLog, User
from campaigns.models import (
    Campaign,
    CampaignLead,
    CampaignSend,
    CampaignStatus,
    LeadImport,
)
from campaigns.services.dispatch import campaigns_dispatch
from tests.campaigns import builders
from tests.test_browser import ARTIFACTS
from tests.test_browser_phone import DESKTOP, PHONE, chromium, sideways_overflow  # noqa: F401

NOW = datetime(2026, 12, 2, 10, 0, tzinfo=UTC)


@pytest.fixture
def running(owner, settings):
    """A running two-step campaign whose first step went to three leads."""
    settings.OUTBOUND_TRANSPORT = "smtp_relay"
    builders.paid(owner.workspace)
    domain = builders.sending_domain(owner.workspace, "acme-sales.com")
    leads = builders.lead_list(owner.workspace, ["a@p.test", "b@p.test", "c@p.test"], company="P")
    campaign = builders.campaign(
        owner.workspace,
        steps=((0, (("Hello {{ company }}", builders.BODY),)), (3, (("", builders.BODY),))),
        senders=builders.mailboxes(domain, 1),
        lists=[leads],
        status=CampaignStatus.RUNNING,
    )
    for lead in leads.leads.all():
        CampaignLead.objects.create(campaign=campaign, lead=lead, next_at=NOW)
    campaigns_dispatch(now=NOW)
    assert CampaignSend.objects.count() == 3
    LeadImport.objects.create(workspace=owner.workspace, file_name="leads.csv", lead_list=leads)
    return campaign


def act(client, action: str, pk: int):
    return client.post(
        "/admin/campaigns/campaign/",
        {"action": action, "_selected_action": [pk], "apply": "1", "reason": "Ticket 77"},
        follow=True,
    )


def test_staff_pause_and_resume_a_campaign_with_a_reason(staff_client, running):
    act(staff_client, "pause", running.pk)
    running.refresh_from_db()
    assert (running.status, running.status_reason) == (CampaignStatus.PAUSED, "Ticket 77")
    act(staff_client, "resume", running.pk)
    running.refresh_from_db()
    assert running.status == CampaignStatus.RUNNING
    entries = AuditLog.objects.filter(actor=staff_client.staff).order_by("id")
    assert [(e.action, e.reason) for e in entries] == [
        ("campaign.pause", "Ticket 77"),
        ("campaign.resume", "Ticket 77"),
    ]


def test_a_bounce_protection_pause_stays_the_customers_to_acknowledge(staff_client, running):
    Campaign.objects.filter(pk=running.pk).update(
        status=CampaignStatus.PAUSED,
        paused_by_system=True,
        status_reason="Bounce protection: 3 hard bounces in the last 40 messages.",
    )
    answer = act(staff_client, "resume", running.pk)
    shown = [str(m) for m in get_messages(answer.wsgi_request)]
    assert any("paused automatically" in m for m in shown)
    running.refresh_from_db()
    assert running.status == CampaignStatus.PAUSED


def test_the_pause_action_asks_for_a_reason_first(staff_client, running):
    page = staff_client.post(
        "/admin/campaigns/campaign/", {"action": "pause", "_selected_action": [running.pk]}
    )
    assert page.status_code == 200 and "reason" in page.content.decode()
    running.refresh_from_db()
    assert running.status == CampaignStatus.RUNNING


@pytest.mark.parametrize(
    "model",
    ["campaign", "campaignstep", "lead", "leadlist", "leadimport", "campaignlead", "campaignsend"],
)
def test_every_list_and_change_page_opens_in_few_queries(
    staff_client, running, model, django_assert_max_num_queries
):
    with django_assert_max_num_queries(15):
        page = staff_client.get(f"/admin/campaigns/{model}/")
    assert page.status_code == 200
    first = page.context["cl"].result_list[0]
    detail = staff_client.get(f"/admin/campaigns/{model}/{first.pk}/change/")
    assert detail.status_code == 200


def test_the_campaign_page_shows_its_steps_and_variants(staff_client, running):
    body = staff_client.get(f"/admin/campaigns/campaign/{running.pk}/change/").content.decode()
    assert "Hello {{ company }}" in body and "Audit log entries" in body


def test_the_console_is_read_only(staff_client, running):
    answer = staff_client.post(
        f"/admin/campaigns/campaign/{running.pk}/change/", {"name": "Hijacked"}
    )
    assert answer.status_code == 403
    running.refresh_from_db()
    assert running.name == "Outreach"


def _staff_tab(browser: Browser, base_url: str, viewport: dict) -> Page:
    staff = User.objects.create_user(email="ops@ops.test", is_staff=True, is_superuser=True)
    client = Client()
    client.force_login(staff)
    name = django_settings.SESSION_COOKIE_NAME
    context = browser.new_context(viewport=viewport)
    context.add_cookies([{"name": name, "value": client.cookies[name].value, "url": base_url}])
    page = context.new_page()
    page.set_default_timeout(10_000)
    return page


def _snap(page: Page, name: str) -> dict[str, int]:
    ARTIFACTS.mkdir(exist_ok=True)
    overflow = {}
    for label, size in (("1280", DESKTOP), ("390", PHONE)):
        page.set_viewport_size(size)
        page.screenshot(path=str(ARTIFACTS / f"campaign-admin-{name}-{label}.png"), full_page=True)
        overflow[label] = sideways_overflow(page)
    page.set_viewport_size(DESKTOP)
    return overflow


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_staff_pause_a_campaign_from_its_page_in_the_browser(
    live_server,
    chromium,  # noqa: F811
    running,
    settings,
):
    """From the campaign's console page: its steps and variants, the Pause action, the reason
    page, and the campaign paused with the reason shown in the list."""
    settings.STAFF_MFA_REQUIRED = False
    url = f"{live_server.url}/admin/campaigns/campaign/{running.pk}/change/"

    def steps(browser: Browser) -> dict[str, dict[str, int]]:
        page = _staff_tab(browser, live_server.url, DESKTOP)
        page.goto(url)
        expect(page.locator(".row-actions")).to_contain_text("each asks for a reason")
        expect(page.locator("body")).to_contain_text("Hello {{ company }}")
        seen = {"page": _snap(page, "detail")}
        page.get_by_role("button", name="Pause").click()
        page.get_by_label("Reason").fill("Customer asked by phone")
        seen["reason"] = _snap(page, "reason")
        page.get_by_role("button", name="Pause").click()
        expect(page.locator(".messagelist")).to_contain_text("1 campaign(s) paused")
        expect(page.locator("#result_list")).to_contain_text("Customer asked by phone")
        seen["list"] = _snap(page, "list")
        return seen

    seen = chromium.run(steps)
    running.refresh_from_db()
    assert (running.status, running.status_reason) == (
        CampaignStatus.PAUSED,
        "Customer asked by phone",
    )
    assert seen["page"]["1280"] == 0 and seen["reason"]["1280"] == 0
