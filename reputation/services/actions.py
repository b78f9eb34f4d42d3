"""Automatic actions (docs/tiers-and-actions.md#automatic-actions): each one audit-logged with
its numbers, shown to the customer, emailed to the workspace owners and sent to staff."""

import logging
import operator
from collections.abc import Iterable
from datetime import datetime, timedelta
from functools import reduce

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Case, Count, Exists, F, OuterRef, Q, Value, When
from django.utils import timezone

from accounts.services import audit_log_record, workspace_notify, workspace_owners_email
from config.celery import task_enqueue
from reputation.core.metrics import domain_window_sums, mailbox_window_sums, window_metrics
from reputation.models import Event, ReputationAlert
from reputation.scoring import Tier, WindowMetrics
from reputation.thresholds import (
    SPAM_BLOCK_WINDOW_HOURS,
    Finding,
    domain_findings,
    limit_after_cut,
    limit_restored_step,
    mailbox_findings,
    spam_block_finding,
)
from sending.models import DomainStatus, Mailbox, MailboxStatus, SendingDomain
from sending.services.mailboxes import mailbox_pause
from sending.services.status import domain_cooldown, domain_quarantine

logger = logging.getLogger(__name__)


def staff_alert(*, subject: str, body: str) -> None:
    """Send to the staff channels after commit (the console shows the audit log regardless)."""
    transaction.on_commit(lambda: _enqueue("reputation.tasks.staff_alert_send", subject, body))


def _enqueue(name: str, *args: object) -> None:
    try:
        task_enqueue(name, *args)
    except Exception:
        logger.exception("could not queue %s", name)


def owners_alert(*, domain: SendingDomain, subject: str, body: str) -> None:
    workspace_owners_email(workspace=domain.workspace, subject=subject, body=body)


def _announce(
    *, domain: SendingDomain, mailbox: Mailbox | None, finding: Finding, action: str, effect: str
) -> None:
    subject_name = mailbox.address if mailbox else domain.name
    text = f"{subject_name}: {finding.message} {effect}".strip()
    audit_log_record(
        action=action,
        actor=None,
        obj=mailbox or domain,
        workspace=domain.workspace,
        reason=text,
        after={"code": finding.code, "level": finding.level, **finding.numbers},
    )
    workspace_notify(
        workspace=domain.workspace,
        event="alert",
        payload={
            "domain": domain.public_id,
            "code": finding.code,
            "level": finding.level,
            "text": text,
        },
    )
    owners_alert(domain=domain, subject=f"{finding.level.title()}: {subject_name}", body=text)
    staff_alert(subject=f"[{finding.level}] {domain.workspace.public_id} {subject_name}", body=text)


class AlertBook:
    """The open alerts of the domains being evaluated, read once; new ones are inserted (the
    partial unique index still guards against a concurrent worker), cleared ones resolved in one
    update at the end."""

    def __init__(self, domain_ids: Iterable[int]) -> None:
        self.open: dict[tuple[int, int | None, str], int] = {
            (domain_id, mailbox_id, code): pk
            for pk, domain_id, mailbox_id, code in ReputationAlert.objects.filter(
                domain_id__in=list(domain_ids), resolved_at__isnull=True
            ).values_list("pk", "domain_id", "mailbox_id", "code")
        }
        self.resolve: list[int] = []

    def open_new(
        self, *, domain: SendingDomain, mailbox: Mailbox | None, finding: Finding, now: datetime
    ) -> bool:
        """True when the alert is new (act once per episode)."""
        key = (domain.pk, mailbox.pk if mailbox else None, finding.code)
        if key in self.open:
            return False
        try:
            with transaction.atomic():
                alert = ReputationAlert.objects.create(
                    domain=domain,
                    mailbox=mailbox,
                    code=finding.code,
                    level=finding.level,
                    message=finding.message,
                    numbers=finding.numbers,
                    opened_at=now,
                )
        except IntegrityError:
            return False
        self.open[key] = alert.pk
        return True

    def keep_only(self, *, domain: SendingDomain, mailbox: Mailbox | None, codes: set[str]) -> None:
        mailbox_id = mailbox.pk if mailbox else None
        self.resolve += [
            pk
            for (d, m, code), pk in self.open.items()
            if d == domain.pk and m == mailbox_id and code not in codes
        ]

    def close(self, now: datetime) -> None:
        if self.resolve:
            ReputationAlert.objects.filter(pk__in=self.resolve).update(resolved_at=now)


def _domain_effect(domain: SendingDomain, finding: Finding) -> str:
    if finding.code == "spam_quarantine" and domain.status != DomainStatus.QUARANTINED:
        domain_quarantine(domain=domain, actor=None, reason=finding.message)
        return "The domain is quarantined."
    if finding.code == "spam_pause":
        paused = 0
        for mailbox in domain.mailboxes.filter(status=MailboxStatus.ACTIVE).select_related(
            "domain__workspace"
        ):
            mailbox_pause(mailbox=mailbox, actor=None, reason=finding.message)
            paused += 1
        return f"{paused} mailbox(es) paused."
    return ""


def _mailbox_effect(mailbox: Mailbox, finding: Finding, now: datetime) -> str:
    if finding.code == "bounce_pause" and mailbox.status == MailboxStatus.ACTIVE:
        mailbox_pause(mailbox=mailbox, actor=None, reason=finding.message)
        return "The mailbox is paused (auto-pause)."
    if finding.code == "bounce_spike" and mailbox.limit_cut_at is None:
        before = mailbox.daily_limit
        mailbox.limit_before_cut = before
        mailbox.daily_limit = limit_after_cut(before)
        mailbox.limit_cut_at = now
        mailbox.save(update_fields=["limit_before_cut", "daily_limit", "limit_cut_at"])
        return (
            f"Daily limit cut from {before} to {mailbox.daily_limit}; restored over 7 clean days."
        )
    return ""


def _last_24h(mailbox_ids: list[int], now: datetime) -> dict[int, WindowMetrics]:
    rows = (
        Event.objects.filter(mailbox_id__in=mailbox_ids, occurred_at__gte=now - timedelta(hours=24))
        .values("mailbox_id")
        .annotate(
            sent=Count("id", filter=Q(kind="sent")), hard=Count("id", filter=Q(kind="bounce_hard"))
        )
    )
    return {r["mailbox_id"]: WindowMetrics(sent=r["sent"], hard_bounces=r["hard"]) for r in rows}


def _recent_spam_blocks(domain_ids: set[int], now: datetime) -> dict[int, list[tuple[str, str]]]:
    """(recipient, reply) of each domain's spam blocks in the window, newest first."""
    found: dict[int, list[tuple[str, str]]] = {}
    if not domain_ids:
        return found
    rows = (
        Event.objects.filter(
            domain_id__in=domain_ids,
            kind="spam_block",
            occurred_at__gte=now - timedelta(hours=SPAM_BLOCK_WINDOW_HOURS),
        )
        .order_by("-occurred_at")
        .values_list("domain_id", "recipient", "detail")
    )
    for domain_id, recipient, detail in rows:
        found.setdefault(domain_id, []).append((recipient, detail))
    return found


def actions_evaluate(*, outcome, now: datetime, scores: dict) -> None:
    """Apply the automatic actions to the domains and mailboxes a batch touched."""
    min_sent = settings.REPUTATION_ACTION_MIN_SENT
    domains = {
        d.pk: d
        for d in SendingDomain.objects.filter(pk__in=outcome.domains).select_related("workspace")
    }
    sums = domain_window_sums(domains, now)
    book = AlertBook(domains)
    # Domains with new spam blocks, and those whose spam-block warning is still open (it is
    # resolved once the window holds none): rare, so the event table is read only for them.
    watched = set(outcome.spam_blocks) | {
        domain_id
        for domain_id, mailbox_id, code in book.open
        if mailbox_id is None and code == "spam_block"
    }
    spam_blocks = _recent_spam_blocks(watched & set(domains), now)
    for domain in domains.values():
        counters = sums.get(domain.pk, {})
        metrics = window_metrics(counters)
        delivered = counters.get("delivered", 0)
        finals = delivered + counters.get("hard_bounces", 0) + counters.get("spam_blocks", 0)
        findings = domain_findings(
            metrics, delivered=delivered, final_outcomes=finals, min_sent=min_sent
        )
        if domain.pk in spam_blocks:
            fresh = outcome.spam_blocks.get(domain.pk)
            recipients = [recipient for recipient, _ in spam_blocks[domain.pk]]
            example = fresh[0] if fresh else spam_blocks[domain.pk][0][1]
            finding = spam_block_finding(
                recipients,
                example=example,
                min_domains=settings.REPUTATION_SPAM_BLOCK_MIN_DOMAINS,
            )
            if finding:
                findings.append(finding)
        for finding in findings:
            if finding.code == "spam_block" and finding.level == "critical":
                # Not an episode: every run that brings new blocks re-checks (a domain released
                # from cool-down early is not put back by the same old blocks).
                if domain.pk in outcome.spam_blocks and domain.status == DomainStatus.VERIFIED:
                    domain_cooldown(
                        domain=domain,
                        actor=None,
                        reason=finding.message,
                        days=settings.REPUTATION_COOLDOWN_DAYS,
                    )
                    _announce(
                        domain=domain,
                        mailbox=None,
                        finding=finding,
                        action="reputation.cooldown",
                        effect=f"Out of rotation for {settings.REPUTATION_COOLDOWN_DAYS} days.",
                    )
                continue
            if book.open_new(domain=domain, mailbox=None, finding=finding, now=now):
                effect = _domain_effect(domain, finding)
                _announce(
                    domain=domain,
                    mailbox=None,
                    finding=finding,
                    action=f"reputation.{finding.code}",
                    effect=effect,
                )
        book.keep_only(domain=domain, mailbox=None, codes={f.code for f in findings})
        change = scores.get(domain.pk)
        if change and change.before_tier != change.tier:
            _tier_changed(domain, change)

    mailboxes = list(
        Mailbox.objects.filter(pk__in=outcome.mailboxes).select_related("domain__workspace")
    )
    if not mailboxes:
        book.close(now)
        return
    ids = [m.pk for m in mailboxes]
    window = mailbox_window_sums(ids, now)
    recent = _last_24h(ids, now)
    for mailbox in mailboxes:
        findings = mailbox_findings(
            window_metrics(window.get(mailbox.pk)),
            recent.get(mailbox.pk, WindowMetrics()),
            min_sent=min_sent,
        )
        complainers = outcome.warmup_complaints.get(mailbox.pk)
        if complainers and mailbox.status == MailboxStatus.ACTIVE:
            finding = Finding(
                "warmup_complaint",
                "critical",
                f"A warm-up recipient ({complainers[0]}) reported spam.",
                {"complaints": len(complainers)},
            )
            mailbox_pause(
                mailbox=mailbox, actor=None, reason="Paused for review: " + finding.message
            )
            _announce(
                domain=mailbox.domain,
                mailbox=mailbox,
                finding=finding,
                action="reputation.warmup_complaint",
                effect="Paused for review.",
            )
        for finding in findings:
            if book.open_new(domain=mailbox.domain, mailbox=mailbox, finding=finding, now=now):
                effect = _mailbox_effect(mailbox, finding, now)
                _announce(
                    domain=mailbox.domain,
                    mailbox=mailbox,
                    finding=finding,
                    action=f"reputation.{finding.code}",
                    effect=effect,
                )
        book.keep_only(domain=mailbox.domain, mailbox=mailbox, codes={f.code for f in findings})
    book.close(now)


def _tier_changed(domain: SendingDomain, change) -> None:
    score = "none" if change.score is None else f"{change.score:.2f}"
    demoted = change.tier in (Tier.REHAB.value, Tier.QUARANTINE.value) and change.before_tier in (
        Tier.PREMIUM.value,
        Tier.STANDARD.value,
    )
    reason = f"Trust score {score}: tier {change.before_tier} → {change.tier}." + (
        " External sending is locked; internal warming earns it back." if demoted else ""
    )
    audit_log_record(
        action="reputation.tier_change",
        actor=None,
        obj=domain,
        workspace=domain.workspace,
        reason=reason,
        before={"tier": change.before_tier, "score": change.before_score},
        after={
            "tier": change.tier,
            "score": change.score,
            "bounce_percent": round(change.metrics.bounce_percent, 2),
            "spam_percent": round(change.metrics.spam_percent, 4),
            "sent": change.metrics.sent,
        },
    )
    if demoted:
        owners_alert(
            domain=domain, subject=f"{domain.name} was demoted to {change.tier}", body=reason
        )
        staff_alert(subject=f"[demotion] {domain.workspace.public_id} {domain.name}", body=reason)


def mailbox_limits_restore(*, now: datetime | None = None) -> int:
    """Give back a cut daily limit over 7 clean days (a day without hard bounces).

    One step per mailbox per day however often it runs (`limit_restored_on`), in one UPDATE
    for all due mailboxes: the step depends only on (current, original) limit, so the rule is
    computed once per distinct pair and applied with CASE."""
    now = now or timezone.now()
    today = now.date()
    bounced = Event.objects.filter(
        mailbox=OuterRef("pk"), kind="bounce_hard", occurred_at__gte=now - timedelta(hours=24)
    )
    due = (
        Mailbox.objects.filter(
            limit_cut_at__isnull=False,
            limit_cut_at__lte=now - timedelta(hours=20),
            limit_before_cut__isnull=False,
        )
        .exclude(limit_restored_on__gte=today)
        .exclude(Exists(bounced))
    )
    pairs = {
        (current, original): limit_restored_step(current, original)
        for current, original in due.values_list("daily_limit", "limit_before_cut").distinct()
        if original is not None
    }
    if not pairs:
        return 0

    def pair(current: int, original: int) -> Q:
        return Q(daily_limit=current, limit_before_cut=original)

    restored = [key for key, step in pairs.items() if step >= key[1]]
    still_cut = ~reduce(operator.or_, (pair(*key) for key in restored), Q(pk__in=[]))
    return due.filter(reduce(operator.or_, (pair(*key) for key in pairs))).update(
        daily_limit=Case(
            *(When(pair(*key), then=Value(step)) for key, step in pairs.items()),
            default=F("daily_limit"),
            output_field=Mailbox._meta.get_field("daily_limit"),
        ),
        limit_restored_on=today,
        limit_cut_at=Case(
            When(still_cut, then=F("limit_cut_at")),
            default=Value(None),
            output_field=Mailbox._meta.get_field("limit_cut_at"),
        ),
        limit_before_cut=Case(
            When(still_cut, then=F("limit_before_cut")),
            default=Value(None),
            output_field=Mailbox._meta.get_field("limit_before_cut"),
        ),
    )
