"""Building, launching, pausing, resuming and deleting campaigns (services, real PostgreSQL)."""

from datetime import UTC, datetime, time, timedelta

import pytest

from accounts.models import AuditLog
from campaigns.models import (
    Campaign,
    CampaignLead,
    CampaignSend,
    CampaignStatus,
    CampaignStep,
    StepVariant,
)
from campaigns.services.campaigns import (
    campaign_create,
    campaign_delete,
    campaign_launch,
    campaign_pause,
    campaign_resume,
    campaign_settings_update,
    campaign_step_add,
    campaign_step_remove,
    campaign_step_update,
    step_variant_remove,
    step_variant_save,
)
from campaigns.services.dispatch import campaigns_bounce_protect, campaigns_dispatch
from campaigns.templating import UNSUBSCRIBE_FIELD
from config.errors import ApplicationError
from reputation.models import Event, EventKind
from tests.campaigns import builders

NOW = datetime(2026, 12, 2, 10, 0, tzinfo=UTC)


@pytest.fixture
def workspace(owner):
    builders.paid(owner.workspace, credits=1000)
    return owner.workspace


@pytest.fixture
def ready(workspace, owner):
    """A draft made by the service, with a standard-tier mailbox and a list of three leads."""
    domain = builders.sending_domain(workspace, "acme-sales.com")
    (mailbox,) = builders.mailboxes(domain, 1)
    leads = builders.lead_list(
        workspace, ["ann@p1.test", "bob@p2.test", "cy@p3.test"], company="Prospect"
    )
    campaign = campaign_create(workspace=workspace, actor=owner.user, name="Q1 outreach")
    campaign_settings_update(
        campaign=campaign,
        actor=owner.user,
        data={"mailbox_ids": [mailbox.pk], "lead_list_ids": [leads.pk]},
    )
    return campaign


def test_it_creates_a_draft_with_one_step_and_a_template_carrying_the_unsubscribe_link(
    workspace, owner
):
    campaign = campaign_create(workspace=workspace, actor=owner.user, name="  Q1 outreach ")
    assert (campaign.name, campaign.status) == ("Q1 outreach", CampaignStatus.DRAFT)
    (step,) = campaign.steps.all()
    (variant,) = step.variants.all()
    assert (step.position, step.delay_days, variant.label) == (1, 0, "A")
    assert variant.subject and UNSUBSCRIBE_FIELD in variant.body
    assert AuditLog.objects.filter(action="campaign.create", actor=owner.user).count() == 1


def test_it_refuses_an_empty_name_and_writes_nothing(workspace, owner):
    with pytest.raises(ApplicationError) as refused:
        campaign_create(workspace=workspace, actor=owner.user, name="   ")
    assert "name" in refused.value.fields
    assert not Campaign.objects.exists()


def test_settings_are_saved_and_audited(ready, owner):
    campaign_settings_update(
        campaign=ready,
        actor=owner.user,
        data={
            "name": "Renamed",
            "time_zone": "Europe/Berlin",
            "send_days": [4, 0, 0, 2],
            "window_start": "08:30",
            "window_end": time(18, 0),
            "holiday_country": "de",
            "daily_limit": 200,
            "daily_new_leads": 0,
            "stop_on_reply": False,
            "stop_on_auto_reply": True,
            "out_of_office": "stop",
            "provider_matching": True,
            "use_lead_time_zone": False,
        },
    )
    ready.refresh_from_db()
    assert ready.name == "Renamed"
    assert ready.send_days == [0, 2, 4]
    assert (ready.window_start, ready.window_end) == (time(8, 30), time(18, 0))
    assert (ready.holiday_country, ready.daily_limit, ready.daily_new_leads) == ("DE", 200, 0)
    assert (ready.stop_on_reply, ready.provider_matching, ready.use_lead_time_zone) == (
        False,
        True,
        False,
    )
    assert (ready.stop_on_auto_reply, ready.out_of_office) == (True, "stop")
    entry = AuditLog.objects.filter(action="campaign.settings").latest("id")
    assert entry.after["name"] == "Renamed" and entry.before["name"] == "Q1 outreach"


def test_bad_settings_name_every_field_at_fault_and_change_nothing(ready, owner):
    with pytest.raises(ApplicationError) as refused:
        campaign_settings_update(
            campaign=ready,
            actor=owner.user,
            data={
                "name": "Changed",
                "time_zone": "Mars/Olympus",
                "send_days": [7],
                "window_start": "18:00",
                "window_end": "09:00",
                "holiday_country": "XX",
                "daily_limit": 0,
                "start_at": datetime(2020, 1, 1, tzinfo=UTC),
                "out_of_office": "ignore",
                "stop_on_auto_reply": "perhaps",
                "colour": "red",
            },
        )
    fields = refused.value.fields
    assert set(fields) == {
        "out_of_office",
        "stop_on_auto_reply",
        "time_zone",
        "send_days",
        "window_end",
        "holiday_country",
        "daily_limit",
        "start_at",
        "colour",
    }
    ready.refresh_from_db()
    assert ready.name == "Q1 outreach"


def test_a_naive_start_time_is_refused(ready, owner):
    with pytest.raises(ApplicationError) as refused:
        campaign_settings_update(
            campaign=ready, actor=owner.user, data={"start_at": "2030-01-01T09:00:00"}
        )
    assert "start_at" in refused.value.fields


def test_another_workspaces_mailboxes_and_lists_are_refused(ready, owner, stranger):
    theirs = builders.sending_domain(stranger.workspace, "globex-mail.com")
    (their_mailbox,) = builders.mailboxes(theirs, 1)
    their_list = builders.lead_list(stranger.workspace, ["x@globex.test"])
    with pytest.raises(ApplicationError) as refused:
        campaign_settings_update(
            campaign=ready,
            actor=owner.user,
            data={"mailbox_ids": [their_mailbox.pk], "lead_list_ids": [their_list.pk]},
        )
    assert set(refused.value.fields) == {"mailbox_ids", "lead_list_ids"}
    assert list(ready.mailboxes.all()) != [their_mailbox]
    assert their_list not in ready.lead_lists.all()


def test_steps_are_added_updated_and_removed_with_positions_renumbered(ready, owner):
    second = campaign_step_add(campaign=ready, actor=owner.user, delay_days=3)
    third = campaign_step_add(campaign=ready, actor=owner.user, delay_days=5)
    assert (second.position, third.position) == (2, 3)
    assert second.variants.get().subject == ""  # a reply in the thread
    campaign_step_update(step=third, actor=owner.user, delay_days=7)
    with pytest.raises(ApplicationError):
        campaign_step_update(step=third, actor=owner.user, delay_days=0)
    campaign_step_remove(step=second, actor=owner.user)
    assert list(ready.steps.values_list("position", "delay_days")) == [(1, 0), (2, 7)]
    assert AuditLog.objects.filter(action="campaign.step_remove").count() == 1


def test_the_last_step_and_a_step_already_sent_cannot_be_removed(ready, owner, workspace):
    (only,) = ready.steps.all()
    with pytest.raises(ApplicationError) as refused:
        campaign_step_remove(step=only, actor=owner.user)
    assert refused.value.code == "last_step"

    second = campaign_step_add(campaign=ready, actor=owner.user, delay_days=2)
    lead = ready.lead_lists.get().leads.first()
    row = CampaignLead.objects.create(campaign=ready, lead=lead)
    CampaignSend.objects.create(campaign=ready, campaign_lead=row, step=second)
    with pytest.raises(ApplicationError) as refused:
        campaign_step_remove(step=second, actor=owner.user)
    assert refused.value.code == "step_sent"
    assert ready.steps.count() == 2


def test_removing_a_step_moves_waiting_leads_up_with_it(ready, owner):
    second = campaign_step_add(campaign=ready, actor=owner.user, delay_days=2)
    campaign_step_add(campaign=ready, actor=owner.user, delay_days=4)
    lead = ready.lead_lists.get().leads.first()
    row = CampaignLead.objects.create(campaign=ready, lead=lead, next_step=3)
    campaign_step_remove(step=second, actor=owner.user)
    row.refresh_from_db()
    assert row.next_step == 2


def test_variants_are_added_with_the_next_label_up_to_five(ready, owner):
    step = ready.steps.get()
    body = "Hi {{ first_name }}\n{{ unsubscribe_url }}"
    labels = [
        step_variant_save(step=step, actor=owner.user, variant=None, subject="S", body=body).label
        for _ in range(4)
    ]
    assert labels == ["B", "C", "D", "E"]
    with pytest.raises(ApplicationError) as refused:
        step_variant_save(step=step, actor=owner.user, variant=None, subject="S", body=body)
    assert refused.value.code == "too_many_variants"


def test_a_template_error_is_refused_with_its_line_and_column(ready, owner):
    step = ready.steps.get()
    variant = step.variants.get()
    with pytest.raises(ApplicationError) as refused:
        step_variant_save(
            step=step,
            actor=owner.user,
            variant=variant,
            subject="{Hi|Hello",
            body="Line one\nSee {{ first_name | shout }}\n{{ unsubscribe_url }}",
        )
    fields = refused.value.fields
    assert "line 1, column 1" in fields["subject"][0]
    assert "line 2, column 5" in fields["body"][0] and "shout" in fields["body"][0]
    variant.refresh_from_db()
    assert variant.subject != "{Hi|Hello"


def test_the_first_step_needs_a_subject(ready, owner):
    step = ready.steps.get()
    with pytest.raises(ApplicationError) as refused:
        step_variant_save(
            step=step,
            actor=owner.user,
            variant=step.variants.get(),
            subject="",
            body="{{ unsubscribe_url }}",
        )
    assert "subject" in refused.value.fields


def test_the_last_active_variant_cannot_be_removed_or_turned_off(ready, owner):
    step = ready.steps.get()
    only = step.variants.get()
    with pytest.raises(ApplicationError):
        step_variant_remove(variant=only, actor=owner.user)
    with pytest.raises(ApplicationError) as refused:
        step_variant_save(
            step=step, actor=owner.user, variant=only, subject="S", body="x", active=False
        )
    assert "active" in refused.value.fields
    other = step_variant_save(
        step=step, actor=owner.user, variant=None, subject="S", body="{{ unsubscribe_url }}"
    )
    step_variant_remove(variant=other, actor=owner.user)
    assert list(step.variants.values_list("label", flat=True)) == ["A"]


def test_launch_enrols_the_lists_and_runs(ready, owner):
    campaign_launch(campaign=ready, actor=owner.user, now=NOW)
    ready.refresh_from_db()
    assert ready.status == CampaignStatus.RUNNING
    assert ready.launched_at == NOW
    assert CampaignLead.objects.filter(campaign=ready).count() == 3
    assert AuditLog.objects.get(action="campaign.launch").after["enrolled"] == 3
    with pytest.raises(ApplicationError) as refused:
        campaign_launch(campaign=ready, actor=owner.user, now=NOW)
    assert refused.value.code == "campaign_not_draft"


def test_launch_with_a_future_start_is_scheduled_and_its_leads_wait_for_it(ready, owner):
    start = NOW + timedelta(days=2)
    campaign_settings_update(campaign=ready, actor=owner.user, data={"start_at": start}, now=NOW)
    campaign_launch(campaign=ready, actor=owner.user, now=NOW)
    assert ready.status == CampaignStatus.SCHEDULED
    assert set(CampaignLead.objects.values_list("next_at", flat=True)) == {start}
    # Moving the start moves the first steps with it.
    later = start + timedelta(days=1)
    campaign_settings_update(campaign=ready, actor=owner.user, data={"start_at": later}, now=NOW)
    assert set(CampaignLead.objects.values_list("next_at", flat=True)) == {later}
    # Clearing it starts now.
    campaign_settings_update(campaign=ready, actor=owner.user, data={"start_at": None}, now=NOW)
    ready.refresh_from_db()
    assert ready.status == CampaignStatus.RUNNING
    assert set(CampaignLead.objects.values_list("next_at", flat=True)) == {NOW}


def test_blocking_checks_refuse_the_launch_with_the_list_and_change_nothing(ready, owner):
    ready.mailboxes.clear()
    with pytest.raises(ApplicationError) as refused:
        campaign_launch(campaign=ready, actor=owner.user, now=NOW)
    assert refused.value.code == "campaign_checks_failed"
    assert "mailbox" in refused.value.message
    ready.refresh_from_db()
    assert ready.status == CampaignStatus.DRAFT
    assert not CampaignLead.objects.exists()


def test_a_rehab_mailbox_domain_blocks_the_launch_naming_the_domain(ready, owner, workspace):
    rehab = builders.sending_domain(workspace, "acme-new.com", tier="rehab", score=41.0)
    (mailbox,) = builders.mailboxes(rehab, 1)
    campaign_settings_update(campaign=ready, actor=owner.user, data={"mailbox_ids": [mailbox.pk]})
    with pytest.raises(ApplicationError) as refused:
        campaign_launch(campaign=ready, actor=owner.user, now=NOW)
    assert "acme-new.com is in the rehab tier with a trust score of 41" in refused.value.message
    assert "warming" in refused.value.message


def test_warnings_need_an_acknowledgement(ready, owner):
    step = ready.steps.get()
    step_variant_save(
        step=step,
        actor=owner.user,
        variant=step.variants.get(),
        subject="For {{ title }}",
        body="Hi\n{{ unsubscribe_url }}",
    )
    with pytest.raises(ApplicationError) as refused:
        campaign_launch(campaign=ready, actor=owner.user, now=NOW)
    assert refused.value.code == "campaign_checks_warn"
    assert "3 of 3 leads have no title" in refused.value.message
    campaign_launch(campaign=ready, actor=owner.user, acknowledge_warnings=True, now=NOW)
    assert ready.status == CampaignStatus.RUNNING


def test_pause_and_resume(ready, owner):
    campaign_launch(campaign=ready, actor=owner.user, now=NOW)
    campaign_pause(campaign=ready, actor=owner.user)
    assert ready.status == CampaignStatus.PAUSED
    with pytest.raises(ApplicationError) as refused:
        campaign_pause(campaign=ready, actor=owner.user)
    assert refused.value.code == "campaign_not_running"
    campaign_resume(campaign=ready, actor=owner.user)
    assert ready.status == CampaignStatus.RUNNING
    actions = list(AuditLog.objects.order_by("id").values_list("action", flat=True))
    assert actions[-2:] == ["campaign.pause", "campaign.resume"]


def test_a_bounce_protection_pause_needs_an_acknowledgement_to_resume(ready, owner):
    campaign_launch(campaign=ready, actor=owner.user, now=NOW)
    Campaign.objects.filter(pk=ready.pk).update(
        status=CampaignStatus.PAUSED,
        paused_by_system=True,
        status_reason="Bounce protection: 3 hard bounces in the last 40 messages.",
    )
    with pytest.raises(ApplicationError) as refused:
        campaign_resume(campaign=ready, actor=owner.user)
    assert refused.value.code == "campaign_resume_needs_ack"
    assert "3 hard bounces" in refused.value.message
    assert ready.status == CampaignStatus.PAUSED
    campaign_resume(campaign=ready, actor=owner.user, acknowledge=True)
    ready.refresh_from_db()
    assert (ready.status, ready.paused_by_system, ready.status_reason) == (
        CampaignStatus.RUNNING,
        False,
        "",
    )
    entry = AuditLog.objects.get(action="campaign.resume")
    assert entry.after["acknowledged"] is True and "3 hard bounces" in entry.reason


def test_a_real_bounce_protection_pause_is_resumed_after_acknowledgement(ready, owner, settings):
    """End to end: dispatch sends, hard bounces come back, protection pauses, the customer
    acknowledges and the campaign runs again."""
    settings.OUTBOUND_TRANSPORT = "smtp_relay"
    campaign_step_add(campaign=ready, actor=owner.user, delay_days=3)  # so leads keep waiting
    campaign_launch(campaign=ready, actor=owner.user, now=NOW)
    campaigns_dispatch(now=NOW)
    sends = list(CampaignSend.objects.select_related("message__domain"))
    assert len(sends) == 3
    for send in sends:
        Event.objects.create(
            domain=send.message.domain,
            kind=EventKind.BOUNCE_HARD,
            recipient=send.message.recipient,
            occurred_at=NOW,
            source_key=f"test-bounce:{send.pk}",
            outbound=send.message,
        )
    assert campaigns_bounce_protect() == [ready.public_id]
    ready.refresh_from_db()
    assert ready.paused_by_system and "Bounce protection" in ready.status_reason
    with pytest.raises(ApplicationError):
        campaign_resume(campaign=ready, actor=owner.user)
    campaign_resume(campaign=ready, actor=owner.user, acknowledge=True)
    assert Campaign.objects.get(pk=ready.pk).status == CampaignStatus.RUNNING


def test_adding_a_list_to_a_running_campaign_enrols_it(ready, owner, workspace):
    campaign_launch(campaign=ready, actor=owner.user, now=NOW)
    more = builders.lead_list(workspace, ["dee@p4.test", "eve@p5.test"], name="More")
    first = ready.lead_lists.get()
    campaign_settings_update(
        campaign=ready, actor=owner.user, data={"lead_list_ids": [first.pk, more.pk]}
    )
    assert CampaignLead.objects.filter(campaign=ready).count() == 5
    assert AuditLog.objects.filter(action="campaign.settings").latest("id").after["enrolled"] == 2


def test_only_drafts_paused_or_completed_campaigns_are_deleted(ready, owner):
    campaign_launch(campaign=ready, actor=owner.user, now=NOW)
    with pytest.raises(ApplicationError) as refused:
        campaign_delete(campaign=ready, actor=owner.user)
    assert refused.value.code == "campaign_running"
    assert Campaign.objects.filter(pk=ready.pk).exists()
    campaign_pause(campaign=ready, actor=owner.user)
    campaign_delete(campaign=ready, actor=owner.user)
    assert not Campaign.objects.filter(pk=ready.pk).exists()
    assert not CampaignStep.objects.exists() and not StepVariant.objects.exists()
    assert AuditLog.objects.filter(action="campaign.delete").count() == 1
