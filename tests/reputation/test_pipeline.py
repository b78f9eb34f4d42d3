"""From MTA records to events, counters, scores, tiers and automatic actions
(docs/trust-score.md, docs/tiers-and-actions.md)."""

import pytest
from django.core import mail
from django.core.management import call_command

from accounts.models import AuditLog
from reputation.models import Event, ReputationAlert, ScoreHistory, SoftBounceStreak
from reputation.services.events import event_record
from sending.models import DomainStatus, Mailbox, MailboxStatus, SendingDomain, Suppression
from tests.reputation.records import (
    complaint,
    delivered,
    record,
    sent,
    soft_bounce,
    spam_block,
    traffic,
)

pytestmark = pytest.mark.django_db


def engage(domain, n: int, kind: str) -> None:
    for i in range(n):
        event_record(
            domain=domain,
            kind=kind,
            source_key=f"t:{kind}:{i}",
            recipient=f"p{i}@example.org",
            message_id=f"m{i}",
            rescore=False,
        )


def test_five_soft_bounces_in_a_row_become_one_hard_bounce_and_a_suppression(post, sender):
    rcpt = "full@example.org"
    post([sent(sender, rcpt)] + [soft_bounce(sender, rcpt, attempt=n) for n in range(1, 5)])
    assert not Event.objects.filter(kind="bounce_hard").exists()
    assert SoftBounceStreak.objects.get(recipient=rcpt).count == 4
    post([soft_bounce(sender, rcpt, attempt=5)])
    hard = Event.objects.get(kind="bounce_hard")
    assert (hard.recipient, hard.classification) == (rcpt, "SoftBounceLimit")
    assert Suppression.objects.filter(
        workspace=sender.workspace, address=rcpt, reason="hard_bounce"
    ).exists()
    assert sender.daily.get().hard_bounces == 1


def test_the_same_messages_expiry_after_five_soft_bounces_is_not_counted_twice(post, sender):
    rcpt = "full@example.org"
    message = "f" * 32
    batch = [sent(sender, rcpt, message_id=message)]
    batch += [soft_bounce(sender, rcpt, message_id=message, attempt=n) for n in range(1, 6)]
    post(batch)
    post(
        [
            record(
                "Expiration",
                sender,
                rcpt,
                message_id=message,
                bounce_classification="MessageExpired",
                response={"code": 551, "content": "5.4.7 expired", "enhanced_code": None},
            )
        ]
    )
    assert sender.daily.get().hard_bounces == 1


def test_a_delivery_resets_the_soft_bounce_streak(post, sender):
    rcpt = "flaky@example.org"
    post([soft_bounce(sender, rcpt, attempt=n) for n in range(1, 5)] + [delivered(sender, rcpt)])
    post([soft_bounce(sender, rcpt)])
    assert SoftBounceStreak.objects.get(recipient=rcpt).count == 1
    assert not Event.objects.filter(kind="bounce_hard").exists()


def test_a_feedback_report_is_a_complaint_of_the_original_recipient(post, sender):
    post([sent(sender, "angry@example.org")])  # only mail we sent can be complained about
    post([complaint(sender, "angry@example.org")])
    event = Event.objects.get(kind="complaint")
    assert event.recipient == "angry@example.org"
    assert event.mailbox.address == f"alex@{sender.name}"
    assert Suppression.objects.filter(address="angry@example.org", reason="complaint").exists()


def test_the_score_follows_the_spec_formula_from_real_events(post, sender):
    # docs/trust-score.md#worked-examples:
    # (2000 sent, 20 hard, 0 complaints, 396 replies, 990 opens) -> 80
    post(traffic(sender, 2000, bounces=20))
    engage(sender, 396, "replied")
    engage(sender, 990, "opened")
    event_record(domain=sender, kind="opened", source_key="t:opened:again", message_id="m1")
    sender.refresh_from_db()
    assert sender.trust_score == pytest.approx(80.0)
    assert sender.tier == "standard"
    assert sender.score_metrics["unique_opens"] == 990  # the second open of m1 is not unique
    assert sender.scoring_version >= 1


def test_a_new_domain_is_provisional_until_twenty_sent(post, sender):
    post(traffic(sender, 19))
    sender.refresh_from_db()
    assert (sender.trust_score, sender.score_provisional, sender.tier) == (50.0, True, "rehab")
    post(traffic(sender, 1, prefix="q"))
    sender.refresh_from_db()
    assert sender.score_provisional is False


def test_good_and_reckless_traffic_land_in_their_tiers(owner, zone):
    from sending.services.domains import domain_create
    from sending.services.verification import domain_verify
    from tests.conftest import publish

    domains = {}
    for persona, name, seed in (
        ("good", "good-sender.com", 7),
        ("reckless", "reckless-sender.com", 7),
        ("spammer", "spammy-sender.com", 1),
    ):
        domain = domain_create(workspace=owner.workspace, actor=owner.user, name=name)
        publish(zone, domain)
        domain_verify(domain=domain)
        call_command("simulate_traffic", domain=name, persona=persona, messages=1500, seed=seed)
        domains[persona] = SendingDomain.objects.get(pk=domain.pk)
    good, reckless, spammer = domains["good"], domains["reckless"], domains["spammer"]
    assert good.trust_score >= 85 and good.tier == "premium"
    assert reckless.trust_score < 70 and reckless.tier == "rehab"
    assert spammer.tier == "quarantine"
    assert spammer.status == DomainStatus.QUARANTINED
    assert ScoreHistory.objects.filter(domain=reckless).exists()
    tier_change = AuditLog.objects.filter(
        action="reputation.tier_change", object_id=str(reckless.pk)
    )
    assert not tier_change.exists() or tier_change.first().actor is None


@pytest.mark.parametrize(("bounces", "paused"), [(5, False), (6, True)])
def test_a_mailbox_is_auto_paused_above_five_percent_not_at_it(post, sender, bounces, paused):
    post(traffic(sender, 100, bounces=bounces))
    mailbox = Mailbox.objects.get()
    assert (mailbox.status == MailboxStatus.PAUSED) is paused
    codes = set(ReputationAlert.objects.filter(mailbox=mailbox).values_list("code", flat=True))
    assert codes >= ({"bounce_pause"} if paused else {"bounce_warning"})
    if paused:
        log = AuditLog.objects.get(action="reputation.bounce_pause", object_type="sending.Mailbox")
        assert log.actor is None
        assert log.after["bounce_percent"] == 6.0
        assert "6.00%" in log.reason


def test_a_bounce_warning_fires_once_not_on_every_batch(
    post, sender, django_capture_on_commit_callbacks
):
    post(traffic(sender, 100, bounces=3))
    post(traffic(sender, 1, prefix="x"))
    assert (
        AuditLog.objects.filter(action="reputation.bounce_warning").count() == 2
    )  # domain + mailbox
    assert (
        ReputationAlert.objects.filter(code="bounce_warning", resolved_at__isnull=True).count() == 2
    )


def test_a_bounce_spike_cuts_the_daily_limit_by_forty_percent(post, sender):
    post(traffic(sender, 100, bounces=4))  # 4 % in 24 h: above 3 %, below the 5 % pause
    mailbox = Mailbox.objects.get()
    assert (mailbox.status, mailbox.daily_limit, mailbox.limit_before_cut) == ("active", 24, 40)


@pytest.mark.parametrize(("complaints", "status"), [(3, "verified"), (4, "quarantined")])
def test_spam_above_point_three_percent_quarantines_the_domain(post, sender, complaints, status):
    post(traffic(sender, 1000))  # 1000 delivered: 3 complaints = 0.3 %, 4 = 0.4 %
    post([complaint(sender, f"p{i}@example.org") for i in range(complaints)])
    sender.refresh_from_db()
    assert sender.status == status
    if status == "quarantined":
        assert sender.tier == "quarantine"
        assert AuditLog.objects.filter(action="reputation.spam_quarantine").exists()


def test_spam_between_point_fifteen_and_point_three_pauses_the_mailboxes(post, sender):
    post(traffic(sender, 1000))
    post([complaint(sender, f"p{i}@example.org") for i in range(2)])  # 0.2 %
    assert Mailbox.objects.get().status == MailboxStatus.PAUSED
    sender.refresh_from_db()
    assert sender.status == DomainStatus.VERIFIED


def test_a_spam_block_puts_the_domain_in_cooldown_for_fourteen_days(post, sender, owner):
    # Three receiving domains agree (docs/tiers-and-actions.md#cool-down).
    rcpts = ["x@gmail.com", "y@outlook.com", "z@example.org"]
    post([sent(sender, r) for r in rcpts] + [spam_block(sender, r) for r in rcpts])
    sender.refresh_from_db()
    assert sender.status == DomainStatus.COOLDOWN
    assert sender.tier == "rehab"
    days = (sender.cooldown_until - sender.status_changed_at).days
    assert days == 14
    assert "zen.spamhaus.org" in AuditLog.objects.get(action="reputation.cooldown").reason
    assert any(owner.user.email in m.to for m in mail.outbox)


def test_a_complaint_during_warmup_pauses_the_mailbox_for_review(post, sender):
    post([sent(sender, "peer@example.org", meta={"tenant": sender.public_id, "kind": "warmup"})])
    post([complaint(sender, "peer@example.org", kind="warmup")])
    mailbox = Mailbox.objects.get()
    assert mailbox.status == MailboxStatus.PAUSED
    assert "review" in mailbox.status_reason


def test_demotion_is_explained_to_the_owners_and_staff(post, sender, owner, settings):
    settings.STAFF_ALERT_EMAILS = ["ops@platform.test"]
    post(traffic(sender, 50))
    engage(sender, 20, "replied")
    event_record(domain=sender, kind="opened", source_key="t:o", message_id="x")
    sender.refresh_from_db()
    assert sender.tier in ("standard", "premium")
    before = sender.tier
    mail.outbox.clear()
    post(traffic(sender, 10, bounces=10, prefix="bad"))
    sender.refresh_from_db()
    assert sender.tier == "rehab"
    log = AuditLog.objects.filter(action="reputation.tier_change").latest("id")
    assert (log.before["tier"], log.after["tier"]) == (before, "rehab")
    recipients = {address for m in mail.outbox for address in m.to}
    assert owner.user.email in recipients and "ops@platform.test" in recipients
