"""Pre-launch checks: blocking problems and warnings, as sentences, counted in SQL."""

from datetime import UTC, datetime, time

import pytest

from billing.models import BillingAccount, CreditAccount
from campaigns.models import CampaignStep, Lead, StepVariant
from campaigns.services.checks import campaign_checks, template_problems_located
from sending.models import MailboxStatus
from tests.campaigns import builders

NOW = datetime(2026, 12, 2, 10, 0, tzinfo=UTC)
GOOD_BODY = "Hi {{ first_name }}\n{{ unsubscribe_url }}"


@pytest.fixture
def workspace(owner):
    builders.paid(owner.workspace, credits=1000)
    return owner.workspace


@pytest.fixture
def campaign(workspace):
    domain = builders.sending_domain(workspace, "acme-sales.com")
    senders = builders.mailboxes(domain, 2)
    leads = builders.lead_list(workspace, [f"p{i}@prospect.test" for i in range(10)])
    return builders.campaign(
        workspace,
        steps=((0, (("Hello", GOOD_BODY),)),),
        senders=senders,
        lists=[leads],
    )


def codes(checks) -> list[str]:
    return [check.code for check in checks]


def test_a_complete_campaign_passes(campaign):
    report = campaign_checks(campaign=campaign, now=NOW)
    assert report.ok and report.blocking == [] and report.warnings == []
    assert report.lead_count == 10


def test_it_blocks_a_campaign_with_nothing_in_it(workspace):
    empty = builders.campaign(workspace, steps=())
    report = campaign_checks(campaign=empty, now=NOW)
    assert not report.ok
    assert set(codes(report.blocking)) == {"no_steps", "no_mailbox", "no_leads"}
    assert all(check.message.endswith(".") for check in report.blocking)


def test_template_problems_name_the_step_variant_and_position(campaign):
    step = campaign.steps.get()
    StepVariant.objects.create(step=step, label="B", subject="Hi", body="Line\n{Hi|Hello\n")
    report = campaign_checks(campaign=campaign, now=NOW)
    (problem,) = [c for c in report.blocking if c.code == "template_error"]
    assert (problem.step, problem.variant) == (1, "B")
    assert "line 2, column 1" in problem.message and "never closed" in problem.message


def test_a_variant_without_the_unsubscribe_link_or_a_body_blocks(campaign):
    step = campaign.steps.get()
    StepVariant.objects.create(step=step, label="B", subject="Hi", body="No link here")
    StepVariant.objects.create(step=step, label="C", subject="Hi", body="   ")
    report = campaign_checks(campaign=campaign, now=NOW)
    assert ("no_unsubscribe_link", "B") in [(c.code, c.variant) for c in report.blocking]
    assert ("empty_body", "C") in [(c.code, c.variant) for c in report.blocking]
    # A variant turned off is not checked.
    StepVariant.objects.filter(label__in=["B", "C"]).update(active=False)
    assert campaign_checks(campaign=campaign, now=NOW).ok


def test_a_first_step_without_subject_blocks_but_a_follow_up_may_reply(campaign):
    CampaignStep.objects.create(campaign=campaign, position=2, delay_days=2)
    StepVariant.objects.create(
        step=campaign.steps.get(position=2), label="A", subject="", body=GOOD_BODY
    )
    assert campaign_checks(campaign=campaign, now=NOW).ok
    StepVariant.objects.filter(step__position=1).update(subject="")
    assert "no_subject" in codes(campaign_checks(campaign=campaign, now=NOW).blocking)


@pytest.mark.parametrize(
    ("tier", "score", "words"),
    [
        ("rehab", 38.0, "rehab tier with a trust score of 38"),
        ("quarantine", 12.0, "quarantine tier with a trust score of 12"),
    ],
)
def test_a_mailbox_domain_outside_the_external_tiers_blocks(
    workspace, campaign, tier, score, words
):
    low = builders.sending_domain(workspace, "acme-new.com", tier=tier, score=score)
    campaign.mailboxes.add(*builders.mailboxes(low, 1))
    report = campaign_checks(campaign=campaign, now=NOW)
    (check,) = [c for c in report.blocking if c.code == "domain_not_external"]
    assert check.message.startswith(f"acme-new.com is in the {words}")
    if tier == "rehab":
        assert "earn their way back" in check.message and "warming" in check.message


def test_an_unverified_domain_blocks(workspace, campaign):
    pending = builders.sending_domain(workspace, "acme-dns.com", status="pending_dns")
    campaign.mailboxes.add(*builders.mailboxes(pending, 1))
    report = campaign_checks(campaign=campaign, now=NOW)
    assert "domain_not_verified" in codes(report.blocking)


def test_a_plan_without_campaigns_and_no_credits_block(workspace, campaign, settings):
    settings.BILLING_UNPAID_PLAN = "evaluation"
    BillingAccount.objects.filter(workspace=workspace).delete()
    CreditAccount.objects.filter(workspace=workspace).update(earned=0, granted=0)
    report = campaign_checks(campaign=campaign, now=NOW)
    assert {"plan", "no_credits"} <= set(codes(report.blocking))
    plan = next(c for c in report.blocking if c.code == "plan")
    assert "paid plan" in plan.message and plan.link_hint == "billing"


def test_fewer_credits_than_leads_times_steps_warns(workspace, campaign):
    CampaignStep.objects.create(campaign=campaign, position=2, delay_days=2)
    StepVariant.objects.create(
        step=campaign.steps.get(position=2), label="A", subject="", body=GOOD_BODY
    )
    CreditAccount.objects.filter(workspace=workspace).update(earned=15)
    report = campaign_checks(campaign=campaign, now=NOW)
    assert report.ok
    (warning,) = [c for c in report.warnings if c.code == "few_credits"]
    assert "You have 15 credits; this campaign needs up to 20 (10 leads × 2 steps)" in (
        warning.message
    )


def test_missing_merge_fields_are_counted_per_field_in_sql(
    workspace, campaign, django_assert_max_num_queries
):
    Lead.objects.filter(email__in=["p0@prospect.test", "p1@prospect.test"]).update(
        company="Acme", custom_fields={"city": "Lyon"}
    )
    Lead.objects.filter(email="p2@prospect.test").update(custom_fields={"city": ""})
    Lead.objects.filter(email="p3@prospect.test").update(custom_fields={"city": 42})
    StepVariant.objects.filter(step__campaign=campaign).update(
        subject="For {{ company }} in {{ city }}",
        body='Hi {{ first_name }} of {{ title | default: "your team" }}\n{{ unsubscribe_url }}',
    )
    with django_assert_max_num_queries(12):
        report = campaign_checks(campaign=campaign, now=NOW)
    messages = [c.message for c in report.warnings if c.code == "merge_field_missing"]
    assert len(messages) == 2  # title has a default, first_name is filled for everyone
    assert messages[0].startswith("7 of 10 leads have no city")
    assert messages[1].startswith("8 of 10 leads have no company")
    assert "step 1, variant A" in messages[1]


def test_a_list_with_more_than_15_percent_role_addresses_warns(workspace, campaign):
    Lead.objects.filter(email__in=["p0@prospect.test", "p1@prospect.test"]).update(
        role_address=True
    )
    (warning,) = campaign_checks(campaign=campaign, now=NOW).warnings
    assert warning.code == "role_addresses"
    assert "“Prospects”, 2 of 10 leads (20 %) are role addresses" in warning.message
    Lead.objects.filter(email="p1@prospect.test").update(role_address=False)
    assert campaign_checks(campaign=campaign, now=NOW).warnings == []  # 10 % is fine


def test_a_window_that_never_opens_or_is_too_short_warns(campaign):
    campaign.window_start, campaign.window_end = time(9, 0), time(9, 30)
    campaign.save()
    (short,) = campaign_checks(campaign=campaign, now=NOW).warnings
    assert short.code == "window" and "30 minutes" in short.message
    campaign.window_end = time(8, 0)
    campaign.save()
    (never,) = campaign_checks(campaign=campaign, now=NOW).warnings
    assert "ends before it starts" in never.message


def test_paused_mailboxes_warn(campaign):
    mailbox = campaign.mailboxes.first()
    mailbox.status = MailboxStatus.PAUSED
    mailbox.save()
    (warning,) = campaign_checks(campaign=campaign, now=NOW).warnings
    assert warning.code == "mailbox_paused" and mailbox.address in warning.message


def test_positions_are_given_as_line_and_column():
    assert template_problems_located("ok\nand {broken") == [
        "Spintax: '{' at line 2, column 5 is never closed."
    ]
