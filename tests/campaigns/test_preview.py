"""The preview of a variant for a lead: the same text the lead's message will carry."""

from datetime import UTC, datetime

import pytest

from campaigns.models import CampaignLead, CampaignSend, CampaignStatus, StepVariant
from campaigns.services.dispatch import campaigns_dispatch
from campaigns.services.preview import SAMPLE_LEAD, campaign_preview
from config.errors import ApplicationError
from tests.campaigns import builders

NOW = datetime(2026, 12, 2, 10, 0, tzinfo=UTC)
BODY = "{Hi|Hello|Hey|Howdy} {{ first_name }} at {{ company }},\n\n{{ unsubscribe_url }}\n"


@pytest.fixture
def workspace(owner):
    builders.paid(owner.workspace, credits=1000)
    return owner.workspace


@pytest.fixture
def campaign(workspace):
    domain = builders.sending_domain(workspace, "acme-sales.com")
    leads = builders.lead_list(workspace, ["ann@p1.test", "bob@p2.test"])
    return builders.campaign(
        workspace,
        steps=(
            (0, (("{Quick|Short} idea for {{ company | default: 'you' }}", BODY),)),
            (2, (("", "Following up, {{ sender_first_name }}\n{{ unsubscribe_url }}"),)),
        ),
        senders=builders.mailboxes(domain, 1),
        lists=[leads],
    )


def first_variant(campaign, position=1) -> StepVariant:
    return StepVariant.objects.select_related("step").get(
        step__campaign=campaign, step__position=position
    )


def test_the_preview_lists_missing_fields_and_shows_them_as_placeholders(campaign):
    variant = first_variant(campaign)
    preview = campaign_preview(campaign=campaign, step=variant.step, variant=variant, lead=None)
    assert preview.lead_email == "ann@p1.test"  # the first lead of the lists
    assert preview.missing_fields == ["company"]
    assert "Ann at [company]" in preview.body
    assert preview.subject.endswith("idea for you")
    assert "/u/example/" in preview.body and preview.problems == []


def test_without_leads_sample_values_are_used(workspace):
    empty = builders.campaign(workspace, steps=((0, (("Hi {{ first_name }}", BODY),)),))
    variant = first_variant(empty)
    preview = campaign_preview(campaign=empty, step=variant.step, variant=variant, lead=None)
    assert preview.subject == f"Hi {SAMPLE_LEAD['first_name']}"
    assert preview.missing_fields == [] and preview.lead_email == ""


def test_the_preview_of_an_enrolled_lead_matches_the_message_it_gets(campaign, settings):
    settings.OUTBOUND_TRANSPORT = "smtp_relay"
    campaign.status = CampaignStatus.RUNNING
    campaign.save()
    StepVariant.objects.filter(step__campaign=campaign, step__position=1).update(
        body=BODY.replace("{{ company }}", "{{ company | default: 'your team' }}")
    )
    for lead in campaign.lead_lists.get().leads.all():
        CampaignLead.objects.create(campaign=campaign, lead=lead, next_at=NOW)
    campaigns_dispatch(now=NOW)
    variant = first_variant(campaign)
    for send in CampaignSend.objects.select_related("campaign_lead__lead", "message"):
        lead = send.campaign_lead.lead
        preview = campaign_preview(campaign=campaign, step=variant.step, variant=variant, lead=lead)
        message = send.message
        assert preview.subject == message.subject
        # Identical but for the unsubscribe link, which a preview never makes real.
        assert preview.body.split("\n\n")[0] == message.text_body.split("\n\n")[0]
    follow_up = first_variant(campaign, position=2)
    lead = CampaignSend.objects.first().campaign_lead.lead
    preview = campaign_preview(campaign=campaign, step=follow_up.step, variant=follow_up, lead=lead)
    assert preview.subject == "Re: " + CampaignSend.objects.first().message.subject
    assert preview.body.startswith("Following up, Rep\n")


def test_template_problems_are_shown_instead_of_a_render(campaign):
    variant = first_variant(campaign)
    variant.body = "Hello\n{oops"
    variant.save()
    preview = campaign_preview(campaign=campaign, step=variant.step, variant=variant, lead=None)
    assert preview.problems == ["Body: Spintax: '{' at line 2, column 1 is never closed."]


def test_another_workspaces_lead_is_refused(campaign, stranger):
    theirs = builders.lead_list(stranger.workspace, ["x@globex.test"]).leads.get()
    variant = first_variant(campaign)
    with pytest.raises(ApplicationError) as refused:
        campaign_preview(campaign=campaign, step=variant.step, variant=variant, lead=theirs)
    assert refused.value.status == 404
