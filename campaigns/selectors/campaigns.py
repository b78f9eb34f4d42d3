"""Reads for campaigns: the list (with counts, no N+1), one campaign, and its numbers.

The numbers come from what the other apps record about each message: its state (delivered,
bounced), its events (a hard bounce, an open, a reply, an unsubscribe), its human clicks and the
labels on the replies it got. Every count is one SQL aggregate grouped by step and variant.
"""

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any, NamedTuple
from zoneinfo import ZoneInfo

from django.db.models import (
    Case,
    CharField,
    Count,
    Exists,
    IntegerField,
    OuterRef,
    Q,
    QuerySet,
    Subquery,
    Value,
    When,
)
from django.db.models.functions import Cast, Coalesce, Concat, TruncDate
from django.utils import timezone

from accounts.models import Workspace
from campaigns.models import (
    Campaign,
    CampaignLead,
    CampaignLeadState,
    CampaignSend,
    CampaignStatus,
    CampaignStep,
    Lead,
    LeadListMembership,
    LeadStatus,
    StepVariant,
)
from inbox.models import Reply, ReplyKind, SystemLabel
from reputation.models import Event, EventKind
from sending.models import MessageState
from tracking.models import Click

DAILY_DAYS = 30


def _count_rows(model_queryset: QuerySet, outer: str = "pk") -> Coalesce:
    return Coalesce(
        Subquery(
            model_queryset.order_by().values(outer).annotate(total=Count("*")).values("total")[:1],
            output_field=IntegerField(),
        ),
        0,
    )


def campaign_list(*, workspace: Workspace) -> QuerySet[Campaign]:
    """The workspace's campaigns, newest first, with `lead_count` (enrolled leads; a draft's
    active leads on its lists), `sent_count`, `step_count` and `mailbox_count`."""
    return _annotated(Campaign.objects.filter(workspace=workspace))


def campaign_list_in(*, workspace_ids: Iterable[int] | QuerySet[Any]) -> QuerySet[Campaign]:
    """`campaign_list` over several workspaces (an API session sees all of its user's)."""
    return _annotated(Campaign.objects.filter(workspace_id__in=workspace_ids))


def _annotated(campaigns: QuerySet[Campaign]) -> QuerySet[Campaign]:
    enrolled = _count_rows(
        CampaignLead.objects.filter(campaign_id=OuterRef("pk")), outer="campaign_id"
    )
    listed = _count_rows(
        Lead.objects.filter(
            workspace_id=OuterRef("workspace_id"),
            status=LeadStatus.ACTIVE,
            pk__in=LeadListMembership.objects.filter(
                lead_list__campaigns=OuterRef(OuterRef("pk"))
            ).values("lead_id"),
        ),
        outer="workspace_id",
    )
    sent = _count_rows(
        CampaignSend.objects.filter(campaign_id=OuterRef("pk"), message__isnull=False),
        outer="campaign_id",
    )
    steps = _count_rows(
        CampaignStep.objects.filter(campaign_id=OuterRef("pk")), outer="campaign_id"
    )
    mailboxes = _count_rows(
        Campaign.mailboxes.through.objects.filter(campaign_id=OuterRef("pk")),
        outer="campaign_id",
    )
    return campaigns.annotate(
        enrolled_count=enrolled,
        lead_count=Case(
            When(status=CampaignStatus.DRAFT, then=listed),
            default=enrolled,
            output_field=IntegerField(),
        ),
        sent_count=sent,
        step_count=steps,
        mailbox_count=mailboxes,
    ).order_by("-created_at", "-id")


def campaign_get(*, workspace: Workspace, public_id: str) -> Campaign:
    """One campaign of the workspace; raises Campaign.DoesNotExist for another's or none."""
    return Campaign.objects.select_related("workspace").get(
        workspace=workspace, public_id=public_id
    )


def campaign_steps(*, campaign: Campaign) -> list[CampaignStep]:
    """The sequence with its variants (two queries)."""
    return list(
        CampaignStep.objects.filter(campaign=campaign)
        .prefetch_related("variants")
        .order_by("position")
    )


# --- numbers -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class StatLine:
    sent: int = 0
    delivered: int = 0
    bounced: int = 0
    opened: int = 0  # by a person: machine opens record no event
    clicked: int = 0  # messages with at least one human click
    replied: int = 0
    positive: int = 0  # messages with a human reply labelled "interested"
    unsubscribed: int = 0

    def _rate(self, count: int) -> float | None:
        return round(100 * count / self.sent, 1) if self.sent else None

    @property
    def delivery_rate(self) -> float | None:
        return self._rate(self.delivered)

    @property
    def bounce_rate(self) -> float | None:
        return self._rate(self.bounced)

    @property
    def open_rate(self) -> float | None:
        return self._rate(self.opened)

    @property
    def click_rate(self) -> float | None:
        return self._rate(self.clicked)

    @property
    def reply_rate(self) -> float | None:
        return self._rate(self.replied)

    @property
    def positive_rate(self) -> float | None:
        return self._rate(self.positive)

    @property
    def unsubscribe_rate(self) -> float | None:
        return self._rate(self.unsubscribed)

    def __add__(self, other: "StatLine") -> "StatLine":
        return StatLine(
            sent=self.sent + other.sent,
            delivered=self.delivered + other.delivered,
            bounced=self.bounced + other.bounced,
            opened=self.opened + other.opened,
            clicked=self.clicked + other.clicked,
            replied=self.replied + other.replied,
            positive=self.positive + other.positive,
            unsubscribed=self.unsubscribed + other.unsubscribed,
        )

    def as_dict(self) -> dict[str, int | float | None]:
        return {
            "sent": self.sent,
            "delivered": self.delivered,
            "bounced": self.bounced,
            "opened": self.opened,
            "clicked": self.clicked,
            "replied": self.replied,
            "positive": self.positive,
            "unsubscribed": self.unsubscribed,
            "delivery_rate": self.delivery_rate,
            "bounce_rate": self.bounce_rate,
            "open_rate": self.open_rate,
            "click_rate": self.click_rate,
            "reply_rate": self.reply_rate,
            "positive_rate": self.positive_rate,
            "unsubscribe_rate": self.unsubscribe_rate,
        }


@dataclass(frozen=True)
class VariantStats:
    label: str
    subject: str
    active: bool
    numbers: StatLine


@dataclass(frozen=True)
class StepStats:
    position: int
    delay_days: int
    numbers: StatLine
    variants: list[VariantStats]


class DailyPoint(NamedTuple):
    day: date
    sent: int  # messages sent that day
    replied: int  # human replies received that day


@dataclass(frozen=True)
class CampaignStats:
    totals: StatLine
    steps: list[StepStats]
    # The last 30 days in the campaign's time zone, oldest first.
    daily: list[DailyPoint]
    # Enrolled leads by where they are: waiting, finished, stopped.
    leads: dict[str, int] = field(default_factory=dict)


def _event(kind: str) -> Exists:
    return Exists(Event.objects.filter(outbound_id=OuterRef("message_id"), kind=kind))


def _clicked() -> Exists:
    return Exists(Click.objects.filter(message_id=OuterRef("message_id"), machine=False))


def _positive() -> Exists:
    return Exists(
        Reply.objects.filter(
            in_reply_to=OuterRef("message_id"),
            kind=ReplyKind.HUMAN,
            labels__system=SystemLabel.INTERESTED,
        )
    )


def _unsubscribed() -> Exists:
    # The unsubscribe service records its event against the lead's last message by source key.
    key = Concat(Value("unsubscribe:"), Cast(OuterRef("message_id"), CharField()))
    return Exists(
        Event.objects.filter(kind=EventKind.UNSUBSCRIBED).filter(
            Q(outbound_id=OuterRef("message_id")) | Q(source_key=key)
        )
    )


def _zone(campaign: Campaign) -> ZoneInfo:
    try:
        return ZoneInfo(campaign.time_zone or "UTC")
    except (ValueError, KeyError):
        return ZoneInfo("UTC")


def campaign_stats(*, campaign: Campaign, now: datetime | None = None) -> CampaignStats:
    """Sent, delivered, bounced, opened, clicked, replied, replied with interest and
    unsubscribed: in total, per step and per variant, with the daily series for the last 30
    days."""
    now = now or timezone.now()
    sends = CampaignSend.objects.filter(campaign=campaign, message__isnull=False).exclude(
        message__state=MessageState.FAILED
    )
    grouped = (
        sends.annotate(
            hard_bounce=_event(EventKind.BOUNCE_HARD),
            was_opened=_event(EventKind.OPENED),
            was_clicked=_clicked(),
            was_replied_event=_event(EventKind.REPLIED),
            was_replied_human=Exists(
                Reply.objects.filter(in_reply_to=OuterRef("message_id"), kind=ReplyKind.HUMAN)
            ),
            was_positive=_positive(),
            was_unsubscribed=_unsubscribed(),
        )
        .values("step_id", "variant_id")
        .annotate(
            sent=Count("id"),
            delivered=Count("id", filter=Q(message__state=MessageState.DELIVERED)),
            bounced=Count(
                "id", filter=Q(message__state=MessageState.BOUNCED) | Q(hard_bounce=True)
            ),
            opened=Count("id", filter=Q(was_opened=True)),
            clicked=Count("id", filter=Q(was_clicked=True)),
            replied=Count("id", filter=Q(was_replied_event=True) | Q(was_replied_human=True)),
            positive=Count("id", filter=Q(was_positive=True)),
            unsubscribed=Count("id", filter=Q(was_unsubscribed=True)),
        )
        .order_by()
    )
    lines: dict[tuple[int, int | None], StatLine] = {}
    for row in grouped:
        lines[(row["step_id"], row["variant_id"])] = StatLine(
            sent=row["sent"],
            delivered=row["delivered"],
            bounced=row["bounced"],
            opened=row["opened"],
            clicked=row["clicked"],
            replied=row["replied"],
            positive=row["positive"],
            unsubscribed=row["unsubscribed"],
        )
    totals = StatLine()
    steps: list[StepStats] = []
    for step in campaign_steps(campaign=campaign):
        variants: list[StepVariant] = list(step.variants.all())
        known = {v.pk for v in variants}
        step_line = StatLine()
        per_variant = []
        for variant in variants:
            line = lines.get((step.pk, variant.pk), StatLine())
            step_line += line
            per_variant.append(
                VariantStats(
                    label=variant.label,
                    subject=variant.subject,
                    active=variant.active,
                    numbers=line,
                )
            )
        # Sends whose variant was since removed still count for the step.
        for (step_id, variant_id), line in lines.items():
            if step_id == step.pk and variant_id not in known:
                step_line += line
        totals += step_line
        steps.append(
            StepStats(
                position=step.position,
                delay_days=step.delay_days,
                numbers=step_line,
                variants=per_variant,
            )
        )
    return CampaignStats(
        totals=totals,
        steps=steps,
        daily=_daily(campaign, sends, now),
        leads=_lead_states(campaign),
    )


def _daily(campaign: Campaign, sends: QuerySet[CampaignSend], now: datetime) -> list[DailyPoint]:
    zone = _zone(campaign)
    today = now.astimezone(zone).date()
    first = today - timedelta(days=DAILY_DAYS - 1)
    since = datetime.combine(first, datetime.min.time(), zone)
    sent = _per_day(sends.filter(created_at__gte=since), "created_at", zone)
    replied = _per_day(
        Reply.objects.filter(campaign=campaign, kind=ReplyKind.HUMAN, received_at__gte=since),
        "received_at",
        zone,
    )
    days = [first + timedelta(days=offset) for offset in range(DAILY_DAYS)]
    return [DailyPoint(day, sent.get(day, 0), replied.get(day, 0)) for day in days]


def _per_day(rows: QuerySet[Any], column: str, zone: ZoneInfo) -> dict[date, int]:
    return dict(
        rows.annotate(day=TruncDate(column, tzinfo=zone))
        .values("day")
        .annotate(n=Count("id"))
        .values_list("day", "n")
        .order_by()
    )


def _lead_states(campaign: Campaign) -> dict[str, int]:
    counts = {state.value: 0 for state in CampaignLeadState}
    for state, n in (
        CampaignLead.objects.filter(campaign=campaign)
        .values("state")
        .annotate(n=Count("id"))
        .values_list("state", "n")
        .order_by()
    ):
        counts[state] = n
    return counts
