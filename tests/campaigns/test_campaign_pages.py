"""Campaign pages with the Django test client: the list, the builder (sequence, settings,
mailboxes, lists, checks, launch / pause / resume) and the numbers."""

import re
from datetime import UTC, datetime, time

import pytest
from django.utils import timezone

from campaigns.models import (
    Campaign,
    CampaignLead,
    CampaignSend,
    CampaignStatus,
    CampaignStep,
    StepVariant,
)
from campaigns.services.dispatch import campaigns_dispatch
from sending.models import Message, MessageState
from tests.campaigns import builders
from tests.conftest import logged_in
from tests.factories import MembershipFactory

pytestmark = pytest.mark.django_db


def url(campaign: Campaign, tail: str = "") -> str:
    return f"/w/{campaign.workspace.public_id}/campaigns/{campaign.public_id}/{tail}"


def ready(workspace, **kw) -> Campaign:
    """A draft that passes every check: paid, a standard-tier mailbox, one list of leads."""
    builders.paid(workspace)
    domain = builders.sending_domain(workspace, "acme-sales.com")
    senders = builders.mailboxes(domain, 2)
    leads = builders.lead_list(workspace, ["ann@prospect.test", "bob@prospect.test"])
    return builders.campaign(workspace, senders=senders, lists=[leads], **kw)


def variant_post(variant: StepVariant, **fields) -> dict:
    data = {"subject": variant.subject, "body": variant.body, "active": "on", "action": "save"}
    data.update(fields)
    return {(k if k == "action" else f"v{variant.pk}-{k}"): v for k, v in data.items()}


def settings_post(campaign: Campaign, **fields) -> dict:
    data = {
        "name": campaign.name,
        "send_days": ["0", "1", "2", "3", "4"],
        "window_start": "09:00",
        "window_end": "17:00",
        "time_zone": "Europe/Berlin",
        "use_lead_time_zone": "on",
        "holiday_country": "DE",
        "daily_limit": "200",
        "daily_new_leads": "50",
        "stop_on_reply": "on",
        "out_of_office": "resume",
        "track_opens": "on",
        "track_clicks": "on",
        "start_at": "",
        "mailbox_ids": [str(m.pk) for m in campaign.mailboxes.all()],
        "lead_list_ids": [str(lst.pk) for lst in campaign.lead_lists.all()],
    }
    data.update(fields)
    return {k: v for k, v in data.items() if v is not None}


# --- The list -----------------------------------------------------------------------------------


def test_the_empty_list_says_what_a_campaign_needs_with_links(owner, owner_client):
    ws = owner.workspace.public_id
    body = owner_client.get(f"/w/{ws}/campaigns/").content.decode()
    assert "No campaigns yet" in body
    for page in ("domains", "mailboxes", "leads", "billing"):
        assert f'href="/w/{ws}/{page}/"' in body
    assert "premium or standard tier" in body
    assert 'data-testid="campaign-create"' in body


def test_the_list_shows_status_reason_leads_and_sent_in_a_fixed_number_of_queries(
    owner, owner_client, django_assert_max_num_queries
):
    ws = owner.workspace
    paused = ready(ws, name="Agencies Q3", status=CampaignStatus.PAUSED)
    Campaign.objects.filter(pk=paused.pk).update(
        paused_by_system=True,
        status_reason="Bounce protection: 4 hard bounces in the last 100 messages.",
    )
    CampaignLead.objects.bulk_create(
        CampaignLead(campaign=paused, lead=lead) for lead in ws.leads.all()
    )
    page = f"/w/{ws.public_id}/campaigns/"
    with django_assert_max_num_queries(12) as few:
        body = owner_client.get(page).content.decode()
    assert "Agencies Q3" in body
    assert "Paused: Bounce protection: 4 hard bounces in the last 100 messages." in body
    row = body.split(f'data-campaign="{paused.public_id}"')[1].split("</tr>")[0]
    assert 'data-label="Leads" class="num">2<' in row
    assert 'data-label="Sent" class="num">0<' in row

    for i in range(8):
        builders.campaign(ws, name=f"More {i}", lists=list(ws.lead_lists.all()))
    with django_assert_max_num_queries(len(few.captured_queries)):
        body = owner_client.get(page).content.decode()
    assert body.count("data-campaign=") == 9


def test_an_owner_creates_a_campaign_and_lands_in_its_builder(owner, owner_client):
    ws = owner.workspace.public_id
    response = owner_client.post(f"/w/{ws}/campaigns/", {"name": "Fintech founders"})
    campaign = Campaign.objects.get(workspace=owner.workspace)
    assert campaign.name == "Fintech founders"
    assert response["Location"] == url(campaign)
    body = owner_client.get(response["Location"]).content.decode()
    assert "Fintech founders" in body
    assert 'data-testid="variant-1A"' in body
    assert "unsubscribe_url" in body
    assert 'data-testid="launch-form"' in body


def test_an_empty_name_is_refused_beside_the_field_and_creates_nothing(owner, owner_client):
    response = owner_client.post(f"/w/{owner.workspace.public_id}/campaigns/", {"name": "  "})
    assert response.status_code == 200
    body = response.content.decode()
    form = body.split('data-testid="campaign-create"')[1].split("</form>")[0]
    assert "This field is required." in form
    assert not Campaign.objects.exists()


# --- Permissions and tenants ----------------------------------------------------------------


def test_a_teammate_sees_a_campaign_but_cannot_change_it(owner, teammate_client):
    campaign = ready(owner.workspace)
    ws = owner.workspace.public_id
    body = teammate_client.get(url(campaign)).content.decode()
    assert 'data-testid="read-only"' in body
    assert 'data-testid="launch"' not in body
    assert teammate_client.get(url(campaign, "stats/")).status_code == 200
    assert teammate_client.post(f"/w/{ws}/campaigns/", {"name": "Mine"}).status_code == 403
    assert teammate_client.post(url(campaign, "launch/")).status_code == 403
    variant = StepVariant.objects.get(step__campaign=campaign)
    response = teammate_client.post(
        url(campaign, f"variants/{variant.pk}/"), variant_post(variant, body="Changed")
    )
    assert response.status_code == 403
    assert (
        teammate_client.post(url(campaign, "settings/"), settings_post(campaign)).status_code == 403
    )
    variant.refresh_from_db()
    campaign.refresh_from_db()
    assert variant.body == builders.BODY
    assert campaign.status == CampaignStatus.DRAFT
    assert Campaign.objects.count() == 1


def test_an_admin_may_change_campaigns(owner):
    admin = MembershipFactory(workspace=owner.workspace, role="admin")
    response = logged_in(admin).post(
        f"/w/{owner.workspace.public_id}/campaigns/", {"name": "By the admin"}
    )
    assert response.status_code == 302
    assert Campaign.objects.filter(name="By the admin").exists()


def test_a_stranger_gets_404_on_every_campaign_page(owner, stranger, stranger_client):
    campaign = ready(owner.workspace)
    step = campaign.steps.get()
    variant = step.variants.get()
    gets = ["", "stats/", f"preview/?variant={variant.pk}"]
    posts = [
        "settings/",
        "steps/",
        f"steps/{step.pk}/",
        f"steps/{step.pk}/variants/",
        f"variants/{variant.pk}/",
        "launch/",
        "pause/",
        "resume/",
        "delete/",
    ]
    for tail in gets:
        assert stranger_client.get(url(campaign, tail)).status_code == 404, tail
    for tail in posts:
        assert stranger_client.post(url(campaign, tail), {}).status_code == 404, tail
    # Through the stranger's own workspace, the campaign does not exist either.
    mine = f"/w/{stranger.workspace.public_id}/campaigns/{campaign.public_id}/"
    assert stranger_client.get(mine).status_code == 404
    assert stranger_client.post(mine + "launch/").status_code == 404
    listing = stranger_client.get(f"/w/{stranger.workspace.public_id}/campaigns/")
    assert campaign.name not in listing.content.decode()
    campaign.refresh_from_db()
    assert campaign.status == CampaignStatus.DRAFT


def test_a_step_or_variant_of_another_campaign_is_404(owner, owner_client, stranger):
    mine = ready(owner.workspace)
    theirs = builders.campaign(stranger.workspace)
    variant = StepVariant.objects.get(step__campaign=theirs)
    response = owner_client.post(url(mine, f"variants/{variant.pk}/"), variant_post(variant))
    assert response.status_code == 404
    assert owner_client.post(url(mine, f"steps/{variant.step_id}/"), {}).status_code == 404
    assert owner_client.get(url(mine, f"preview/?variant={variant.pk}")).status_code == 404


# --- The sequence ---------------------------------------------------------------------------


def test_broken_spintax_is_shown_beside_the_body_and_nothing_changes(owner, owner_client):
    campaign = ready(owner.workspace)
    variant = StepVariant.objects.get(step__campaign=campaign)
    response = owner_client.post(
        url(campaign, f"variants/{variant.pk}/"),
        variant_post(variant, body="Hi {there|friend\n\n{{ unsubscribe_url }}"),
    )
    assert response.status_code == 200
    body = response.content.decode()
    form = body.split(f'id="variant-{variant.pk}"')[1].split("</form>")[0]
    assert "Not saved" in form
    body_field = form.split(f'for="id_v{variant.pk}-body"')[1]
    assert "errorlist" in body_field.split("<textarea")[0]
    assert "never closed" in body_field.split("<textarea")[0]
    assert "Hi {there|friend" in body_field  # what was typed stays in the box
    variant.refresh_from_db()
    assert variant.body == builders.BODY


def test_an_empty_body_is_refused_beside_it(owner, owner_client):
    campaign = ready(owner.workspace)
    variant = StepVariant.objects.get(step__campaign=campaign)
    response = owner_client.post(
        url(campaign, f"variants/{variant.pk}/"), variant_post(variant, body="")
    )
    form = response.content.decode().split(f'id="variant-{variant.pk}"')[1].split("</form>")[0]
    assert "the body cannot be empty" in form
    variant.refresh_from_db()
    assert variant.body == builders.BODY


def test_the_only_variant_of_a_step_stays_on_when_saved_from_the_page(owner, owner_client):
    campaign = ready(owner.workspace)
    variant = StepVariant.objects.get(step__campaign=campaign)
    form = owner_client.get(url(campaign)).content.decode().split(f'id="variant-{variant.pk}"')[1]
    assert f'type="hidden" name="v{variant.pk}-active" value="on"' in form.split("</form>")[0]


def test_a_variant_is_saved(owner, owner_client):
    campaign = ready(owner.workspace)
    variant = StepVariant.objects.get(step__campaign=campaign)
    new_body = "Hello {{ first_name }},\n\nShort one.\n\n{{ unsubscribe_url }}"
    response = owner_client.post(
        url(campaign, f"variants/{variant.pk}/"),
        variant_post(variant, subject="About {{ company | default: 'you' }}", body=new_body),
    )
    assert response.status_code == 302
    assert response["Location"].endswith(f"#variant-{variant.pk}")
    variant.refresh_from_db()
    assert variant.body == new_body


def test_steps_and_variants_are_added_and_removed(owner, owner_client):
    campaign = ready(owner.workspace)
    response = owner_client.post(url(campaign, "steps/"), {"new-delay_days": "4"})
    assert response.status_code == 302
    second = CampaignStep.objects.get(campaign=campaign, position=2)
    assert second.delay_days == 4
    assert second.variants.count() == 1

    owner_client.post(url(campaign, f"steps/{second.pk}/variants/"))
    labels = sorted(second.variants.values_list("label", flat=True))
    assert labels == ["A", "B"]
    body = owner_client.get(url(campaign)).content.decode()
    assert 'data-testid="variant-2B"' in body
    assert "follow-up 4 days later" in body

    response = owner_client.post(
        url(campaign, f"steps/{second.pk}/"), {f"s{second.pk}-delay_days": "-1"}
    )
    assert response.status_code == 200
    second.refresh_from_db()
    assert second.delay_days == 4
    owner_client.post(url(campaign, f"steps/{second.pk}/"), {f"s{second.pk}-delay_days": "6"})
    second.refresh_from_db()
    assert second.delay_days == 6

    b = second.variants.get(label="B")
    owner_client.post(url(campaign, f"variants/{b.pk}/"), {"action": "remove"})
    assert list(second.variants.values_list("label", flat=True)) == ["A"]
    owner_client.post(url(campaign, f"steps/{second.pk}/"), {"action": "remove"})
    assert list(campaign.steps.values_list("position", flat=True)) == [1]


def test_the_last_step_cannot_be_removed_and_says_why(owner, owner_client):
    campaign = ready(owner.workspace)
    step = campaign.steps.get()
    response = owner_client.post(
        url(campaign, f"steps/{step.pk}/"), {"action": "remove"}, follow=True
    )
    assert campaign.steps.count() == 1
    assert 'class="message message-error"' in response.content.decode()


def test_the_preview_pane_renders_one_variant_for_a_chosen_lead(owner, owner_client):
    campaign = ready(owner.workspace)
    variant = StepVariant.objects.get(step__campaign=campaign)
    bob = owner.workspace.leads.get(email="bob@prospect.test")
    response = owner_client.get(
        url(campaign, f"preview/?variant={variant.pk}&lead={bob.public_id}"), HTTP_HX_REQUEST="true"
    )
    assert response.status_code == 200
    body = response.content.decode()
    assert "<html" not in body
    assert "bob@prospect.test" in body
    assert "Hi Bob," in body
    assert "{{" not in body.split('data-testid="preview-mail"')[1]


# --- Settings, mailboxes, lists -------------------------------------------------------------


def test_settings_are_saved(owner, owner_client):
    campaign = ready(owner.workspace)
    other = builders.lead_list(owner.workspace, ["cy@other.test"], name="Other list")
    lists = [str(lst.pk) for lst in owner.workspace.lead_lists.all()]
    response = owner_client.post(
        url(campaign, "settings/"),
        settings_post(
            campaign,
            send_days=["1", "3"],
            lead_list_ids=lists,
            name="Renamed",
            stop_on_auto_reply="on",
            out_of_office="stop",
        ),
    )
    assert response.status_code == 302, response.content.decode()[:3000]
    campaign.refresh_from_db()
    assert campaign.name == "Renamed"
    assert campaign.send_days == [1, 3]
    assert (campaign.window_start, campaign.window_end) == (time(9), time(17))
    assert campaign.time_zone == "Europe/Berlin"
    assert campaign.holiday_country == "DE"
    assert campaign.daily_limit == 200
    assert (campaign.stop_on_auto_reply, campaign.out_of_office) == (True, "stop")
    assert other in campaign.lead_lists.all()


def test_click_tracking_can_be_turned_off_for_a_campaign(owner, owner_client):
    from tracking.selectors import campaign_tracking_get

    def clicks_box() -> str:
        body = owner_client.get(url(campaign)).content.decode()
        return re.search(r'<input[^>]*name="track_clicks"[^>]*>', body).group(0)

    campaign = ready(owner.workspace)
    assert "checked" in clicks_box()
    response = owner_client.post(
        url(campaign, "settings/"), settings_post(campaign, track_clicks=None)
    )
    assert response.status_code == 302
    switches = campaign_tracking_get(campaign=campaign)
    assert (switches.opens, switches.clicks) == (True, False)
    assert "checked" not in clicks_box()


def test_a_scheduled_start_is_read_in_the_campaign_zone_and_the_launch_waits_for_it(
    owner, owner_client
):
    campaign = ready(owner.workspace)
    response = owner_client.post(
        url(campaign, "settings/"),
        settings_post(campaign, time_zone="America/New_York", start_at="2031-03-03T09:30"),
    )
    assert response.status_code == 302
    campaign.refresh_from_db()
    assert campaign.start_at == datetime(2031, 3, 3, 14, 30, tzinfo=UTC)
    body = owner_client.get(url(campaign)).content.decode()
    assert 'value="2031-03-03T09:30"' in body
    assert "Schedule the launch" in body
    assert "3 Mar 2031, 09:30 (America/New_York)" in body
    # The builder's subject uses {{ company }}, which these leads lack: a warning to acknowledge.
    response = owner_client.post(url(campaign, "launch/"), {"acknowledge_warnings": "on"})
    assert response.status_code == 302
    campaign.refresh_from_db()
    assert campaign.status == CampaignStatus.SCHEDULED


def test_bad_settings_are_shown_beside_their_fields_and_nothing_changes(owner, owner_client):
    campaign = ready(owner.workspace)
    before = Campaign.objects.filter(pk=campaign.pk).values().get()
    response = owner_client.post(
        url(campaign, "settings/"),
        settings_post(campaign, daily_limit="0", send_days=[], name="Should not stick"),
    )
    assert response.status_code == 200
    body = response.content.decode()
    form = body.split('data-testid="settings-form"')[1].split("</form>")[0]
    assert "The settings were not saved" in form
    limit = form.split('for="id_daily_limit"')[1].split("<input")[0]
    assert "errorlist" in limit
    assert "Choose at least one day to send on." in form
    assert 'value="Should not stick"' in form  # what was typed stays
    assert Campaign.objects.filter(pk=campaign.pk).values().get() == before


def test_another_workspaces_mailbox_is_refused(owner, owner_client, stranger):
    campaign = ready(owner.workspace)
    foreign = builders.mailboxes(builders.sending_domain(stranger.workspace, "globex.com"), 1)[0]
    response = owner_client.post(
        url(campaign, "settings/"), settings_post(campaign, mailbox_ids=[str(foreign.pk)])
    )
    assert response.status_code == 200
    assert foreign not in campaign.mailboxes.all()
    assert campaign.mailboxes.count() == 2


def test_a_rehab_domain_is_explained_with_a_link_to_its_reputation(owner, owner_client):
    campaign = ready(owner.workspace)
    rehab = builders.sending_domain(owner.workspace, "cold-start.com", tier="rehab", score=55)
    builders.mailboxes(rehab, 1)
    reputation = f"/w/{owner.workspace.public_id}/domains/{rehab.public_id}/"
    body = owner_client.get(url(campaign)).content.decode()
    # Not used by this campaign: explained where its mailbox is listed, which cannot be ticked.
    assert 'data-testid="held-domains"' not in body
    choices = body.split('data-testid="mailbox-choices"')[1].split("</fieldset>")[0]
    rehab_box = choices.split("rep1@cold-start.com")[0].rsplit("<input", 1)[1]
    assert "disabled" in rehab_box
    after = choices.split("rep1@cold-start.com")[1]
    assert "cannot send campaigns until its trust score is 70 or more" in after
    assert reputation in after

    # Chosen (before the domain fell to rehab): said plainly on top, and the launch is blocked.
    campaign.mailboxes.add(rehab.mailboxes.get())
    body = owner_client.get(url(campaign)).content.decode()
    held = body.split('data-testid="held-domains"')[1].split("</div>")[0]
    assert "cold-start.com" in held
    assert "cannot send campaigns until its trust score is 70 or more" in held
    assert reputation in held
    assert "cold-start.com" in body.split('data-testid="checks-blocking"')[1].split("</ul>")[0]
    owner_client.post(url(campaign, "launch/"))
    campaign.refresh_from_db()
    assert campaign.status == CampaignStatus.DRAFT


# --- Checks, launch, pause, resume ----------------------------------------------------------


def test_a_launch_blocked_by_checks_shows_the_list_and_stays_a_draft(owner, owner_client):
    builders.paid(owner.workspace)
    campaign = builders.campaign(
        owner.workspace, steps=((0, (("Hello", "No opt-out link here."),)),)
    )
    response = owner_client.post(url(campaign, "launch/"))
    assert response.status_code == 200
    body = response.content.decode()
    blocking = body.split('data-testid="checks-blocking"')[1].split("</ul>")[0]
    assert "unsubscribe link" in blocking
    assert "mailbox" in blocking
    assert "lead" in blocking
    assert 'href="#sequence"' in blocking and 'href="#mailboxes"' in blocking
    launch = body.split('data-testid="launch-form"')[1].split("</form>")[0]
    assert 'role="alert"' in launch
    campaign.refresh_from_db()
    assert campaign.status == CampaignStatus.DRAFT
    assert not CampaignLead.objects.filter(campaign=campaign).exists()


def test_warnings_need_an_acknowledgement_then_the_campaign_runs(owner, owner_client):
    campaign = ready(owner.workspace)
    # Half the list are role addresses: a warning, not a block.
    builders.lead_list(
        owner.workspace, ["info@prospect.test", "sales@prospect.test"], role_address=True
    )
    body = owner_client.get(url(campaign)).content.decode()
    warnings = body.split('data-testid="checks-warnings"')[1].split("</ul>")[0]
    assert "role addresses" in warnings
    assert 'data-testid="checks-blocking"' not in body

    response = owner_client.post(url(campaign, "launch/"))
    assert response.status_code == 200
    launch = response.content.decode().split('data-testid="launch-form"')[1].split("</form>")[0]
    ack = launch.split('class="field field-check"')[1]
    assert 'name="acknowledge_warnings"' in ack.split("errorlist")[0]  # beside the checkbox
    campaign.refresh_from_db()
    assert campaign.status == CampaignStatus.DRAFT

    response = owner_client.post(url(campaign, "launch/"), {"acknowledge_warnings": "on"})
    assert response.status_code == 302
    campaign.refresh_from_db()
    assert campaign.status == CampaignStatus.RUNNING
    assert CampaignLead.objects.filter(campaign=campaign).count() == 4
    body = owner_client.get(url(campaign)).content.decode()
    assert 'data-testid="campaign-pause"' in body


def test_pause_then_resume(owner, owner_client):
    campaign = ready(owner.workspace, status=CampaignStatus.RUNNING)
    owner_client.post(url(campaign, "pause/"))
    campaign.refresh_from_db()
    assert campaign.status == CampaignStatus.PAUSED
    body = owner_client.get(url(campaign)).content.decode()
    assert 'data-testid="resume-form"' in body
    owner_client.post(url(campaign, "resume/"))
    campaign.refresh_from_db()
    assert campaign.status == CampaignStatus.RUNNING


def test_after_bounce_protection_resuming_needs_the_acknowledgement(owner, owner_client):
    reason = "Bounce protection: 4 hard bounces in the last 100 messages."
    campaign = ready(
        owner.workspace, status=CampaignStatus.PAUSED, paused_by_system=True, status_reason=reason
    )
    body = owner_client.get(url(campaign)).content.decode()
    card = body.split('data-testid="resume-card"')[1].split("</section>")[0]
    assert "Paused by bounce protection" in card
    assert reason in card
    assert 'name="acknowledge"' in card

    response = owner_client.post(url(campaign, "resume/"))
    assert response.status_code == 200
    card = response.content.decode().split('data-testid="resume-card"')[1].split("</section>")[0]
    ack = card.split('class="field field-check"')[1]
    assert 'name="acknowledge"' in ack.split("errorlist")[0]  # beside the checkbox
    assert "confirm you have dealt with the cause" in ack.split("errorlist")[1]
    campaign.refresh_from_db()
    assert campaign.status == CampaignStatus.PAUSED

    owner_client.post(url(campaign, "resume/"), {"acknowledge": "on"})
    campaign.refresh_from_db()
    assert campaign.status == CampaignStatus.RUNNING
    assert not campaign.paused_by_system


def test_a_draft_is_deleted(owner, owner_client):
    campaign = ready(owner.workspace)
    response = owner_client.post(url(campaign, "delete/"))
    assert response["Location"] == f"/w/{owner.workspace.public_id}/campaigns/"
    assert not Campaign.objects.filter(pk=campaign.pk).exists()


def test_a_running_campaign_is_not_deleted(owner, owner_client):
    campaign = ready(owner.workspace, status=CampaignStatus.RUNNING)
    response = owner_client.post(url(campaign, "delete/"), follow=True)
    assert Campaign.objects.filter(pk=campaign.pk).exists()
    assert 'class="message message-error"' in response.content.decode()


# --- Numbers --------------------------------------------------------------------------------


def test_the_numbers_page_shows_totals_steps_variants_and_a_daily_chart(owner, owner_client):
    campaign = ready(owner.workspace, status=CampaignStatus.RUNNING)
    response = owner_client.get(url(campaign, "stats/"))
    assert response.status_code == 200
    body = response.content.decode()
    assert 'data-testid="stats-totals"' in body
    table = body.split('data-testid="stats-steps"')[1].split("</table>")[0]
    assert "Step 1" in table and "Variant A" in table
    assert "<svg" in body.split('data-testid="daily-chart"')[1]


def test_the_numbers_page_counts_what_was_sent_per_variant_and_draws_the_day(
    owner, owner_client, settings
):
    settings.OUTBOUND_TRANSPORT = "smtp_relay"
    builders.paid(owner.workspace)
    domain = builders.sending_domain(owner.workspace, "acme-sales.com")
    leads = builders.lead_list(owner.workspace, [f"p{i}@prospect.test" for i in range(8)])
    body = "Hi\n{{ unsubscribe_url }}"
    campaign = builders.campaign(
        owner.workspace,
        steps=((0, (("Hi A", body), ("Hi B", body))), (2, (("", body),))),
        senders=builders.mailboxes(domain, 2),
        lists=[leads],
        status=CampaignStatus.RUNNING,
    )
    now = timezone.now()
    CampaignLead.objects.bulk_create(
        CampaignLead(campaign=campaign, lead=lead, next_at=now) for lead in leads.leads.all()
    )
    assert campaigns_dispatch(now=now).sent == 8
    bounced = CampaignSend.objects.filter(campaign=campaign, variant__label="A").first()
    Message.objects.filter(pk=bounced.message_id).update(state=MessageState.BOUNCED)

    page = owner_client.get(url(campaign, "stats/")).content.decode()
    totals = page.split('data-testid="stats-totals"')[1].split('data-testid="daily-chart"')[0]
    assert 'Sent</div><div class="value">8<' in totals
    assert 'Bounced</div><div class="value">1<' in totals
    assert "12.5 %" in totals
    rows = page.split('data-testid="stats-steps"')[1].split("</table>")[0].split("<tr")
    variant_a = next(r for r in rows if "Variant A" in r)
    variant_b = next(r for r in rows if "Variant B" in r)
    assert '<td class="num">4</td>' in variant_a and '<td class="num">4</td>' in variant_b
    assert "25.0 %" in variant_a  # 1 of A's 4 bounced
    chart = page.split('data-testid="daily-chart"')[1].split("</section>")[0]
    assert chart.count('<rect class="bar"') == 1
    assert "8 sent" in chart


def test_the_numbers_page_shows_clicks_machine_opens_and_interested_replies(
    owner, owner_client, settings
):
    from inbox.models import Reply, ReplyKind, ReplyLabel, SystemLabel
    from tracking.models import Click, Open, TrackedLink

    settings.OUTBOUND_TRANSPORT = "smtp_relay"
    builders.paid(owner.workspace)
    domain = builders.sending_domain(owner.workspace, "acme-sales.com")
    leads = builders.lead_list(owner.workspace, [f"p{i}@prospect.test" for i in range(3)])
    campaign = builders.campaign(
        owner.workspace,
        steps=((0, (("Hi", "Hi\n{{ unsubscribe_url }}"),)),),
        senders=builders.mailboxes(domain, 1),
        lists=[leads],
        status=CampaignStatus.RUNNING,
    )
    now = timezone.now()
    CampaignLead.objects.bulk_create(
        CampaignLead(campaign=campaign, lead=lead, next_at=now) for lead in leads.leads.all()
    )
    assert campaigns_dispatch(now=now).sent == 3
    first, second, _ = Message.objects.order_by("pk")
    link = TrackedLink.objects.create(message=first, position=0, url="https://acme.test/")
    Click.objects.create(message=first, link=link)
    Click.objects.create(message=first, link=link)  # the same person clicking twice
    Open.objects.create(message=second, machine=True, machine_reason="privacy proxy")
    interested = ReplyLabel.objects.create(
        workspace=owner.workspace, name="Interested", system=SystemLabel.INTERESTED
    )
    reply = Reply.objects.create(
        workspace=owner.workspace,
        in_reply_to=first,
        kind=ReplyKind.HUMAN,
        from_address=first.recipient,
    )
    reply.labels.add(interested)

    page = owner_client.get(url(campaign, "stats/")).content.decode()
    clicks = page.split('data-testid="stats-clicks"')[1].split("</div></div>")[0]
    assert '<div class="value">1<' in clicks and "2 clicks" in clicks
    assert '<div class="value">1<' in page.split('data-testid="stats-interested"')[1][:200]
    assert "+ 1 by machines, not counted" in page
