"""Enrolment: each active lead of the workspace once per campaign; more leads reopen a finished
campaign."""

from datetime import timedelta

from django.utils import timezone

from campaigns.models import Campaign, CampaignLead, CampaignStatus, Lead, LeadStatus
from campaigns.services.enrolment import campaign_leads_enrol, campaign_lists_enrol
from tests.campaigns import builders
from tests.factories import WorkspaceFactory


def test_active_leads_of_the_lists_are_enrolled_once(owner):
    workspace = owner.workspace
    prospects = builders.lead_list(workspace, [f"p{i}@prospect.test" for i in range(5)])
    more = builders.lead_list(workspace, ["p0@prospect.test", "x@other.test"], name="More")
    Lead.objects.filter(email="p4@prospect.test").update(status=LeadStatus.UNSUBSCRIBED)
    campaign = builders.campaign(workspace, lists=[prospects, more])

    assert campaign_lists_enrol(campaign=campaign) == 5  # p0 once, p4 left out
    assert campaign_lists_enrol(campaign=campaign) == 0
    enrolled = set(CampaignLead.objects.values_list("lead__email", flat=True))
    assert enrolled == {"p0@prospect.test", "p1@prospect.test", "p2@prospect.test"} | {
        "p3@prospect.test",
        "x@other.test",
    }


def test_another_workspaces_leads_are_never_enrolled(owner):
    campaign = builders.campaign(owner.workspace)
    theirs = builders.lead_list(WorkspaceFactory(), ["them@prospect.test"])
    assert (
        campaign_leads_enrol(campaign=campaign, lead_ids=theirs.leads.values_list("pk", flat=True))
        == 0
    )
    assert not CampaignLead.objects.exists()


def test_the_first_step_waits_for_a_scheduled_start_and_new_leads_reopen_a_finished_campaign(
    owner,
):
    workspace = owner.workspace
    start = timezone.now() + timedelta(days=2)
    campaign = builders.campaign(workspace, start_at=start, status=CampaignStatus.COMPLETED)
    leads = builders.lead_list(workspace, ["a@prospect.test"])
    ids = list(leads.leads.values_list("pk", flat=True))
    assert campaign_leads_enrol(campaign=campaign, lead_ids=ids) == 1
    assert CampaignLead.objects.get().next_at == start
    assert Campaign.objects.get(pk=campaign.pk).status == CampaignStatus.RUNNING
