"""The campaign dispatcher: due steps become outbound messages, once each.

One run claims due `CampaignLead` rows (`FOR UPDATE SKIP LOCKED`, follow-ups first) and, in the
same transaction, decides each one: held (outside its window, a cap reached, no credit, no
mailbox free), stopped (suppressed, no longer active, a merge field it cannot fill), finished,
or sent. A send is a `CampaignSend` (unique per lead and step), its `Message` and its credit,
committed together: a crash before the commit leaves nothing, and after it the outbound path
hands the message over exactly once. So a retried run never sends a step twice.
"""

from __future__ import annotations

import functools
import logging
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from urllib.parse import quote

from django.conf import settings
from django.core import signing
from django.db import connection, transaction
from django.db.models import Count, Exists, OuterRef, Q, Sum
from django.urls import reverse
from django.utils import timezone

from accounts.models import Workspace
from accounts.services import audit_log_record, workspace_owners_email
from billing.selectors import external_sending_blocked
from billing.services.credits import credits_earn, credits_spend_many
from campaigns.lead_rules import recipient_provider
from campaigns.models import (
    Campaign,
    CampaignLead,
    CampaignLeadState,
    CampaignSend,
    CampaignStatus,
    CampaignStep,
    LeadStatus,
)
from campaigns.protection import LOOKBACK, bounce_verdict
from campaigns.selection import Caps, Rotation, Sender
from campaigns.services.rendering import (
    lead_fields,
    render_seed,
    variant_compile,
    variant_for,
)
from campaigns.templating import MissingField
from campaigns.window import holiday_calendar, next_send_at, zone_for
from config.errors import ApplicationError
from reputation.models import EventKind, MailboxDailyMetrics
from sending.models import DomainStatus, Mailbox, MailboxStatus, Message, MessageKind
from sending.services.outbound import (
    EXTERNAL_TIERS,
    MessageDraft,
    messages_reserve,
    suppressions_find,
)
from tracking.services.render import messages_track
from webhooks.services.deliveries import webhook_emit

logger = logging.getLogger(__name__)

UNSUBSCRIBE_SALT = "campaigns.unsubscribe"
HOLD = timedelta(hours=1)
BOUNCE_DAYS = 7


@dataclass
class DispatchSummary:
    claimed: int = 0
    sent: int = 0
    held: int = 0
    stopped: int = 0
    finished: int = 0
    completed: int = 0
    paused_campaigns: list[str] = field(default_factory=list)


def unsubscribe_token(campaign_lead_id: int) -> str:
    return signing.Signer(salt=UNSUBSCRIBE_SALT).sign(str(campaign_lead_id))


def unsubscribe_url(campaign_lead_id: int, *, token: str | None = None) -> str:
    path = _unsubscribe_path().replace("TOKEN", token or unsubscribe_token(campaign_lead_id))
    return settings.SITE_URL.rstrip("/") + path


@functools.cache
def _unsubscribe_path() -> str:
    # reverse() once per message showed in the dispatch profile; only the token differs.
    return reverse("unsubscribe", args=["TOKEN"])


def campaign_headers(
    *, campaign_lead: CampaignLead, sender: str, token: str | None = None
) -> dict[str, str]:
    """RFC 8058 one-click unsubscribe (an HTTPS URL and a mailto), and the thread's headers."""
    token = token or unsubscribe_token(campaign_lead.pk)
    headers = {
        "List-Unsubscribe": (
            f"<{unsubscribe_url(campaign_lead.pk, token=token)}>, "
            f"<mailto:{sender}?subject={quote('unsubscribe ' + token)}>"
        ),
        "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
    }
    if campaign_lead.thread_message_id:
        headers["In-Reply-To"] = f"<{campaign_lead.thread_message_id}>"
        headers["References"] = f"<{campaign_lead.thread_message_id}>"
    return headers


def campaigns_dispatch(*, now: datetime | None = None, limit: int | None = None) -> DispatchSummary:
    """Send what is due now, within windows, caps, the score gate and credits."""
    now = now or timezone.now()
    summary = DispatchSummary()
    _scheduled_start(now)
    summary.paused_campaigns = campaigns_bounce_protect()
    with transaction.atomic():
        due = list(
            CampaignLead.objects.select_for_update(skip_locked=True, of=("self",))
            .filter(
                state=CampaignLeadState.WAITING,
                next_at__lte=now,
                campaign__status=CampaignStatus.RUNNING,
            )
            .select_related("lead")
            .order_by("-next_step", "next_at", "pk")[: limit or settings.CAMPAIGN_DISPATCH_BATCH]
        )
        summary.claimed = len(due)
        if due:
            # A few campaigns serve thousands of rows: loaded once each, not joined per row.
            campaigns = Campaign.objects.select_related("workspace").in_bulk(
                {row.campaign_id for row in due}
            )
            for row in due:
                row.campaign = campaigns[row.campaign_id]
            _Run(now, summary).dispatch(due)
    return summary


# The columns a dispatch run changes on a claimed row, with their SQL types.
_WRITTEN = (
    ("state", "varchar"),
    ("state_reason", "varchar"),
    ("next_step", "smallint"),
    ("next_at", "timestamptz"),
    ("waiting_for", "varchar"),
    ("mailbox_id", "bigint"),
    ("thread_message_id", "varchar"),
    ("thread_subject", "varchar"),
    ("last_sent_at", "timestamptz"),
)
_WRITE_BATCH = 5000


def campaign_leads_write(rows: list[CampaignLead]) -> None:
    """Write the decided rows back in one `UPDATE ... FROM unnest(arrays)` per few thousand:
    Django's bulk_update builds a CASE per column and row, most of a run at this size."""
    latest = list({row.pk: row for row in rows}.values())
    if connection.vendor != "postgresql":  # the embedded profile's SQLite
        CampaignLead.objects.bulk_update(latest, [name for name, _ in _WRITTEN], batch_size=500)
        return
    table = CampaignLead._meta.db_table
    names = ", ".join(name for name, _ in _WRITTEN)
    assign = ", ".join(f"{name} = v.{name}" for name, _ in _WRITTEN)
    arrays = ", ".join(["%s::bigint[]", *(f"%s::{kind}[]" for _, kind in _WRITTEN)])
    sql = (
        f"UPDATE {table} AS c SET {assign} FROM unnest({arrays}) "  # noqa: S608
        f"AS v(id, {names}) WHERE c.id = v.id"
    )
    with connection.cursor() as cursor:
        for start in range(0, len(latest), _WRITE_BATCH):
            chunk = latest[start : start + _WRITE_BATCH]
            columns = [[row.pk for row in chunk]]
            columns.extend([getattr(row, name) for row in chunk] for name, _ in _WRITTEN)
            cursor.execute(sql, columns)


def _scheduled_start(now: datetime) -> None:
    Campaign.objects.filter(status=CampaignStatus.SCHEDULED, start_at__lte=now).update(
        status=CampaignStatus.RUNNING, launched_at=now
    )


class _Run:
    """One dispatch run's state: today's counts (updated as it sends) and its decisions."""

    def __init__(self, now: datetime, summary: DispatchSummary) -> None:
        self.now = now
        self.summary = summary
        self.day_start = now.replace(hour=0, minute=0, second=0, microsecond=0)
        self.changed: list[CampaignLead] = []

    def dispatch(self, due: list[CampaignLead]) -> None:
        by_campaign: dict[int, list[CampaignLead]] = defaultdict(list)
        for row in due:
            by_campaign[row.campaign_id].append(row)
        campaigns = {row.campaign_id: row.campaign for row in due}
        steps = self.steps = self._steps(set(by_campaign))
        blocked = external_sending_blocked(
            workspace_ids={c.workspace_id for c in campaigns.values()}, now=self.now
        )
        suppressed = suppressions_find(
            pairs={(row.campaign.workspace_id, row.lead.email) for row in due}
        )
        self._load_counts(campaigns.values())
        ready: dict[int, list[tuple[CampaignLead, MessageDraft, CampaignStep, int]]] = defaultdict(
            list
        )
        for campaign_id, rows in by_campaign.items():
            campaign = campaigns[campaign_id]
            rotation = self._rotation(campaign)
            for row in rows:
                decided = self._decide(
                    row, campaign, steps[campaign_id], rotation, blocked, suppressed
                )
                if decided is not None:
                    ready[campaign.workspace_id].append(decided)
        for workspace_id, items in ready.items():
            self._send(workspace_id, items)
        campaign_leads_write(self.changed)
        self._complete(set(by_campaign))

    def _complete(self, campaign_ids: set[int]) -> None:
        """A running campaign with no lead left waiting is completed (adding leads reopens it)."""
        waiting = CampaignLead.objects.filter(
            campaign_id=OuterRef("pk"), state=CampaignLeadState.WAITING
        )
        done = Campaign.objects.filter(pk__in=campaign_ids, status=CampaignStatus.RUNNING).exclude(
            Exists(waiting)
        )
        self.summary.completed += done.update(
            status=CampaignStatus.COMPLETED, finished_at=self.now, status_reason=""
        )

    # --- loading ---------------------------------------------------------------------------

    def _steps(self, campaign_ids: set[int]) -> dict[int, dict[int, CampaignStep]]:
        steps: dict[int, dict[int, CampaignStep]] = defaultdict(dict)
        for step in CampaignStep.objects.filter(campaign_id__in=campaign_ids).prefetch_related(
            "variants"
        ):
            steps[step.campaign_id][step.position] = step
        return steps

    def _load_counts(self, campaigns: Iterable[Campaign]) -> None:
        ids = [c.pk for c in campaigns]
        today = CampaignSend.objects.filter(created_at__gte=self.day_start)
        self.campaign_sent: dict[int, int] = defaultdict(int)
        self.campaign_new: dict[int, int] = defaultdict(int)
        for campaign_id, total, new in (
            today.filter(campaign_id__in=ids)
            .values("campaign_id")
            .annotate(total=Count("id"), new=Count("id", filter=Q(step__position=1)))
            .values_list("campaign_id", "total", "new")
        ):
            self.campaign_sent[campaign_id] = total
            self.campaign_new[campaign_id] = new
        mailboxes = list(
            Mailbox.objects.filter(campaigns__in=ids).select_related("domain").distinct()
        )
        self.mailboxes = {m.pk: m for m in mailboxes}
        self.mailbox_sent: dict[int, int] = defaultdict(int)
        self.domain_sent: dict[int, int] = defaultdict(int)
        self.provider_sent: dict[str, int] = defaultdict(int)
        domains = {m.domain_id for m in mailboxes}
        for mailbox_id, domain_id, provider, count in (
            today.filter(mailbox__domain_id__in=domains)
            .values("mailbox_id", "mailbox__domain_id", "mailbox__provider")
            .annotate(n=Count("id"))
            .values_list("mailbox_id", "mailbox__domain_id", "mailbox__provider", "n")
        ):
            self.mailbox_sent[mailbox_id] += count
            self.domain_sent[domain_id] += count
            self.provider_sent[provider] += count
        since = self.now.date() - timedelta(days=BOUNCE_DAYS)
        self.bounce_rate: dict[int, float] = {}
        for mailbox_id, sent, bounces in (
            MailboxDailyMetrics.objects.filter(mailbox__in=self.mailboxes, day__gte=since)
            .values("mailbox_id")
            .annotate(sent=Sum("sent"), bounces=Sum("hard_bounces"))
            .values_list("mailbox_id", "sent", "bounces")
        ):
            if sent:
                self.bounce_rate[mailbox_id] = 100 * bounces / sent
        self.campaign_mailboxes: dict[int, list[int]] = defaultdict(list)
        for campaign_id, mailbox_id in Campaign.mailboxes.through.objects.filter(
            campaign_id__in=ids
        ).values_list("campaign_id", "mailbox_id"):
            self.campaign_mailboxes[campaign_id].append(mailbox_id)

    def _rotation(self, campaign: Campaign) -> Rotation:
        senders = []
        for mailbox_id in self.campaign_mailboxes[campaign.pk]:
            mailbox = self.mailboxes[mailbox_id]
            domain = mailbox.domain
            active = (
                mailbox.status == MailboxStatus.ACTIVE
                and mailbox.is_connected
                and domain.status == DomainStatus.VERIFIED
                and domain.tier in EXTERNAL_TIERS
                and domain.workspace_id == campaign.workspace_id
            )
            senders.append(
                Sender(
                    id=mailbox.pk,
                    domain_id=domain.pk,
                    provider=mailbox.provider,
                    active=active,
                    daily_limit=mailbox.daily_limit,
                    sent_today=self.mailbox_sent[mailbox.pk],
                    bounce_rate=self.bounce_rate.get(mailbox.pk, 0.0),
                )
            )
        caps = Caps(
            mailbox_ceiling=settings.CAMPAIGN_MAILBOX_CEILING,
            domain_daily=settings.CAMPAIGN_DOMAIN_DAILY_CAP,
            provider_daily=settings.CAMPAIGN_PROVIDER_DAILY_CAPS,
            domain_sent=dict(self.domain_sent),
            provider_sent=dict(self.provider_sent),
        )
        return Rotation(senders, caps)

    # --- deciding --------------------------------------------------------------------------

    def _hold(self, row: CampaignLead, until: datetime, why: str) -> None:
        row.next_at, row.waiting_for = until, why
        self.changed.append(row)
        self.summary.held += 1

    def _stop(self, row: CampaignLead, why: str) -> None:
        row.state, row.state_reason, row.next_at, row.waiting_for = (
            CampaignLeadState.STOPPED,
            why,
            None,
            "",
        )
        self.changed.append(row)
        self.summary.stopped += 1

    def _decide(
        self,
        row: CampaignLead,
        campaign: Campaign,
        steps: dict[int, CampaignStep],
        rotation: Rotation,
        blocked: set[int],
        suppressed: dict[tuple[int, str], str],
    ) -> tuple[CampaignLead, MessageDraft, CampaignStep, int] | None:
        lead, now = row.lead, self.now
        step = steps.get(row.next_step)
        if step is None:
            row.state, row.next_at, row.waiting_for = CampaignLeadState.FINISHED, None, ""
            self.changed.append(row)
            self.summary.finished += 1
            return None
        if lead.status == LeadStatus.OUT_OF_OFFICE and lead.out_of_office_until:
            back = datetime.combine(
                lead.out_of_office_until, datetime.min.time(), tzinfo=now.tzinfo
            )
            if back > now:
                self._hold(row, back, f"Out of office until {lead.out_of_office_until}.")
                return None
        elif lead.status != LeadStatus.ACTIVE and not (
            lead.status == LeadStatus.REPLIED and not campaign.stop_on_reply
        ):
            self._stop(row, f"The lead is {lead.get_status_display().lower()}.")
            return None
        reason = suppressed.get((campaign.workspace_id, lead.email))
        if reason:
            self._stop(row, f"On the suppression list ({reason.replace('_', ' ')}).")
            return None
        zone = zone_for(
            lead_zone=lead.time_zone,
            campaign_zone=campaign.time_zone,
            use_lead_zone=campaign.use_lead_time_zone,
        )
        try:
            opens = next_send_at(
                now=now,
                zone=zone,
                days=frozenset(campaign.send_days),
                start=campaign.window_start,
                end=campaign.window_end,
                is_holiday=holiday_calendar(campaign.holiday_country),
            )
        except ValueError as error:
            self._hold(row, now + HOLD, f"The sending window cannot open: {error}")
            return None
        if opens > now:
            self._hold(row, opens, "Outside the sending window.")
            return None
        if campaign.workspace_id in blocked:
            self._hold(row, now + HOLD, "Campaigns are stopped until the plan is paid.")
            return None
        if self.campaign_sent[campaign.pk] >= campaign.daily_limit:
            self._hold(row, self._tomorrow(), "The campaign's daily limit is reached.")
            return None
        first = row.next_step == 1
        if first and self.campaign_new[campaign.pk] >= campaign.daily_new_leads:
            self._hold(row, self._tomorrow(), "Today's new leads are all started.")
            return None
        mailbox_id = rotation.pick(
            sticky=row.mailbox_id,
            recipient_provider=recipient_provider(lead.email),
            provider_matching=campaign.provider_matching,
        )
        if mailbox_id is None:
            self._hold(row, now + HOLD, "No mailbox of the campaign can send now.")
            return None
        mailbox = self.mailboxes[mailbox_id]
        variant = variant_for(variants=list(step.variants.all()), campaign_lead_id=row.pk)
        compiled = variant_compile(variant)
        token = unsubscribe_token(row.pk)
        fields = lead_fields(
            lead=lead, mailbox=mailbox, unsubscribe_url=unsubscribe_url(row.pk, token=token)
        )
        seed = render_seed(campaign_lead_id=row.pk, step_position=step.position)
        try:
            body = compiled.body.render(fields, seed=seed)
            if compiled.subject is not None:
                subject = compiled.subject.render(fields, seed=seed)
            else:
                subject = (
                    row.thread_subject
                    if row.thread_subject.startswith("Re: ")
                    else (f"Re: {row.thread_subject}" if row.thread_subject else "")
                )
        except MissingField as error:
            self._stop(row, f"Step {step.position}: {error}")
            return None
        if mailbox_id != row.mailbox_id and row.mailbox_id is not None:
            row.waiting_for = "Its first mailbox stopped: another of the same domain took over."
        row.mailbox = mailbox
        self.campaign_sent[campaign.pk] += 1
        self.campaign_new[campaign.pk] += int(first)
        draft = MessageDraft(
            mailbox=mailbox,
            kind=MessageKind.CAMPAIGN,
            recipient=lead.email,
            recipient_name=lead.full_name,
            subject=subject,
            text_body=body,
            campaign_ref=campaign.public_id,
            headers=campaign_headers(campaign_lead=row, sender=mailbox.address, token=token),
        )
        return row, draft, step, variant.pk

    def _tomorrow(self) -> datetime:
        return self.day_start + timedelta(days=1)

    # --- sending ---------------------------------------------------------------------------

    def _send(
        self,
        workspace_id: int,
        items: list[tuple[CampaignLead, MessageDraft, CampaignStep, int]],
    ) -> None:
        workspace = items[0][0].campaign.workspace
        references = [f"campaign:{row.pk}:{step.position}" for row, _, step, _ in items]
        charged = set(credits_spend_many(workspace=workspace, references=references))
        paid_refs = [ref for ref in references if ref in charged]
        paid = [item for item, ref in zip(items, references, strict=True) if ref in charged]
        for item, ref in zip(items, references, strict=True):
            if ref not in charged:
                self._unpick(item)
                self._hold(item[0], self.now + HOLD, "No credits left: waiting for more.")
        reserved = self._reserve(workspace, paid, paid_refs)
        # Before this transaction commits (and queues the hand-over): the tracked HTML part.
        messages_track(messages=[message for _, message in reserved])
        sends = []
        for (row, draft, step, variant_id), message in reserved:
            sends.append(
                CampaignSend(
                    campaign_id=row.campaign_id,
                    campaign_lead=row,
                    step=step,
                    variant_id=variant_id,
                    mailbox=draft.mailbox,
                    message=message,
                    created_at=self.now,
                )
            )
            if not row.thread_message_id:
                row.thread_message_id, row.thread_subject = message.message_id, draft.subject
            row.last_sent_at = self.now
            row.next_step = step.position + 1
            following = self.steps[row.campaign_id].get(row.next_step)
            if following is None:
                row.state, row.next_at = CampaignLeadState.FINISHED, None
                self.summary.finished += 1
            else:
                row.next_at = self.now + timedelta(days=following.delay_days)
            row.waiting_for = ""
            self.changed.append(row)
            self.summary.sent += 1
        CampaignSend.objects.bulk_create(sends, batch_size=1000)

    def _reserve(
        self,
        workspace: Workspace,
        paid: list[tuple[CampaignLead, MessageDraft, CampaignStep, int]],
        references: list[str],
    ) -> list[tuple[tuple[CampaignLead, MessageDraft, CampaignStep, int], Message]]:
        """Reserve the paid messages in one go; should one be refused (its content cannot be
        written), one by one, and the refused ones' leads stop and their credits come back."""
        if not paid:
            return []
        try:
            with transaction.atomic():
                rows = messages_reserve(drafts=[item[1] for item in paid], now=self.now)
            return list(zip(paid, rows, strict=True))
        except ApplicationError:
            pass
        reserved = []
        by_item = dict(zip((id(item) for item in paid), references, strict=False))
        for item in paid:
            row, draft, step, _ = item
            try:
                with transaction.atomic():
                    (message,) = messages_reserve(drafts=[draft], now=self.now)
            except ApplicationError as error:
                self._stop(row, f"Step {step.position} could not be sent: {error}")
                credits_earn(
                    workspace=workspace,
                    amount=1,
                    reference=f"refund:{by_item[id(item)]}",
                    reason="Refund: the message could not be written",
                )
                continue
            reserved.append((item, message))
        return reserved

    def _unpick(self, item: tuple[CampaignLead, MessageDraft, CampaignStep, int]) -> None:
        row, _, step, _ = item
        self.campaign_sent[row.campaign_id] -= 1
        self.campaign_new[row.campaign_id] -= int(step.position == 1)


def campaigns_bounce_protect() -> list[str]:
    """Pause running campaigns whose last 100 sends hold too many hard bounces; their owners
    are told. Returns the paused campaigns' public ids."""
    paused = []
    for campaign in Campaign.objects.filter(status=CampaignStatus.RUNNING).select_related(
        "workspace"
    ):
        sends = CampaignSend.objects.filter(campaign=campaign, message__isnull=False)
        if campaign.bounces_counted_from:
            sends = sends.filter(created_at__gte=campaign.bounces_counted_from)
        recent = list(sends.order_by("-id").values_list("message_id", flat=True)[:LOOKBACK])
        if not recent:
            continue
        bounced = (
            CampaignSend.objects.filter(message_id__in=recent)
            .filter(message__events__kind=EventKind.BOUNCE_HARD)
            .values("message_id")
            .distinct()
            .count()
        )
        verdict = bounce_verdict(sends=len(recent), hard_bounces=bounced)
        if verdict.trips and _campaign_pause_by_system(campaign=campaign, reason=verdict.reason):
            paused.append(campaign.public_id)
    return paused


@transaction.atomic
def _campaign_pause_by_system(*, campaign: Campaign, reason: str) -> bool:
    changed = Campaign.objects.filter(pk=campaign.pk, status=CampaignStatus.RUNNING).update(
        status=CampaignStatus.PAUSED, status_reason=reason, paused_by_system=True
    )
    if not changed:
        return False
    audit_log_record(
        action="campaign.bounce_protection",
        actor=None,
        obj=campaign,
        workspace=campaign.workspace,
        reason=reason,
        before={"status": CampaignStatus.RUNNING},
        after={"status": CampaignStatus.PAUSED},
    )
    workspace_owners_email(
        workspace=campaign.workspace,
        subject=f"Campaign paused: {campaign.name}",
        body=f"{reason}\n\nResuming it needs an action by you on the campaign's page.",
    )
    now = timezone.now()
    webhook_emit(
        workspace_id=campaign.workspace_id,
        event_type="campaign.paused",
        data={"campaign": campaign.public_id, "name": campaign.name, "reason": reason},
        occurred_at=now,
        event_id=f"evt_paused_{campaign.public_id}_{int(now.timestamp())}",
    )
    return True
