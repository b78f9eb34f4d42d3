"""Reads for the Warming page: per mailbox, today's figure and why, the next 14 days, the end of
the ramp."""

from dataclasses import dataclass, replace
from datetime import UTC, date, timedelta, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from django.db.models import Count, Q, QuerySet
from django.utils import timezone

from accounts.models import Workspace
from sending.models import DomainStatus, Mailbox, MailboxStatus, MessageState, SendingDomain
from warming.models import GoldenSeed, Placement, Step, WarmupDay, WarmupSend, WarmupSettings
from warming.pairing import (
    GOOGLE,
    HEALTHY,
    MICROSOFT,
    NEW,
    OTHER,
    QUARANTINE,
    RECENT_DAYS,
    REHAB,
    SEED,
    Node,
)
from warming.schedule import MailboxWarming, Today, ramp_day, ramp_length, today_volume

PLAN_DAYS = 14


@dataclass(frozen=True)
class PlannedDay:
    day: date
    volume: int


@dataclass(frozen=True)
class MailboxPlan:
    mailbox: Mailbox
    settings: WarmupSettings
    today: Today
    days: list[PlannedDay]
    ramp_ends_on: date | None  # None: not warming, so no date can be promised
    # Messages the day's plan gave it (None: the day is not planned yet). Fewer than today's
    # figure when the network had no more partners for it (or the day began before the plan).
    planned_today: int | None = None


def _stopped_reason(mailbox: Mailbox, settings: WarmupSettings) -> str:
    """Why the mailbox sends no warm-up mail at all now, or ""."""
    if not mailbox.warmup_enabled:
        return "warm-up is off for this mailbox"
    if not mailbox.is_connected:
        return "waiting for a passing connection test"
    if mailbox.domain.status == DomainStatus.QUARANTINED:
        return "its domain is quarantined"
    if mailbox.domain.status == DomainStatus.PENDING_DNS:
        return "its domain is not verified yet: the domain page lists the DNS records missing"
    if mailbox.status == MailboxStatus.COOLDOWN:
        until = mailbox.cooldown_until
        return f"the mailbox is cooling down{f' until {until:%d %b}' if until else ''}"
    if mailbox.status == MailboxStatus.PAUSED:
        return (
            f"the mailbox is paused{f' ({mailbox.status_reason})' if mailbox.status_reason else ''}"
        )
    if settings.paused:
        return settings.paused_reason or "you paused its warm-up"
    if settings.agent_error:
        retry = settings.agent_retry_at
        when = f" (next try at {timezone.localtime(retry):%H:%M} UTC)" if retry else ""
        return f"the warm-up agent cannot log in to its inbox{when}: {settings.agent_error}"
    return ""


def warming_of(mailbox: Mailbox, settings: WarmupSettings) -> MailboxWarming:
    return MailboxWarming(
        key=str(mailbox.pk),
        started_on=settings.started_on,
        target=settings.target,
        daily_limit=mailbox.daily_limit,
        prewarmed=settings.prewarmed,
        weekdays_only=settings.weekdays_only,
        paused_reason=_stopped_reason(mailbox, settings),
    )


def ramp_end(warming: MailboxWarming) -> date | None:
    """The day the ramp reaches its target, counting only sending days."""
    if warming.paused_reason:
        return None
    length = ramp_length(target=warming.target, prewarmed=warming.prewarmed)
    day = warming.started_on
    while ramp_day(warming.started_on, day, weekdays_only=warming.weekdays_only) < length:
        day += timedelta(days=1)
    return day


def mailbox_plan(mailbox: Mailbox, settings: WarmupSettings, today: date) -> MailboxPlan:
    warming = warming_of(mailbox, settings)
    days = [
        PlannedDay(day, today_volume(warming, day).volume)
        for day in (today + timedelta(days=offset) for offset in range(PLAN_DAYS))
    ]
    return MailboxPlan(mailbox, settings, today_volume(warming, today), days, ramp_end(warming))


def warmup_settings_for(mailbox: Mailbox) -> WarmupSettings:
    """The mailbox's settings; defaults (unsaved) until the customer changes one, so the page
    shows a plan for every mailbox from the day it was added."""
    # A missing one-to-one row raises an AttributeError subclass: getattr's default covers it.
    saved: WarmupSettings | None = getattr(mailbox, "warmup", None)
    if saved is not None:
        return saved
    return WarmupSettings(mailbox=mailbox, started_on=timezone.localdate(mailbox.created_at))


def warming_mailboxes(*, workspace: Workspace) -> QuerySet[Mailbox]:
    return (
        Mailbox.objects.filter(domain__workspace=workspace)
        .exclude(domain__status=DomainStatus.RETIRED)
        .select_related("domain", "warmup")
        .order_by("domain__name", "local_part")
    )


def local_today(settings: WarmupSettings) -> date:
    """The date in the mailbox's own time zone: its "today" starts at its midnight."""
    return timezone.now().astimezone(_zone(settings.time_zone)).date()


def warming_overview(*, workspace: Workspace, today: date | None = None) -> list[MailboxPlan]:
    plans = []
    mailboxes = list(warming_mailboxes(workspace=workspace))
    days = {m.pk: today or local_today(warmup_settings_for(m)) for m in mailboxes}
    planned_days = set(
        WarmupDay.objects.filter(day__in=set(days.values())).values_list("day", flat=True)
    )
    counts = {
        (row["sender_id"], row["day"]): row["count"]
        for row in WarmupSend.objects.filter(
            sender__in=mailboxes, day__in=planned_days, parent__isnull=True
        )
        .values("sender_id", "day")
        .annotate(count=Count("pk"))
        .order_by()
    }
    for mailbox in mailboxes:
        day = days[mailbox.pk]
        plan = mailbox_plan(mailbox, warmup_settings_for(mailbox), day)
        planned = counts.get((mailbox.pk, day), 0) if day in planned_days else None
        plans.append(replace(plan, planned_today=planned))
    return plans


# --- The network, as the daily planner sees it -------------------------------------------------


def _cluster(domain: SendingDomain) -> str:
    """A mailbox's warming cluster, from its domain's standing (docs/warming.md#clusters)."""
    if domain.status == DomainStatus.QUARANTINED or domain.tier == "quarantine":
        return QUARANTINE
    if domain.tier == "rehab":
        return REHAB
    return NEW if domain.score_provisional else HEALTHY


def _provider(value: str) -> str:
    return value if value in (GOOGLE, MICROSOFT) else OTHER


def _zone(name: str) -> tzinfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return UTC


@dataclass(frozen=True)
class Network:
    nodes: list[Node]
    addresses: dict[str, str]  # node key -> address


def warming_network(*, day: date) -> Network:
    """Every mailbox that warms on `day` (with its volume from the ramp) and every active seed."""
    nodes: list[Node] = []
    addresses: dict[str, str] = {}
    mailboxes = (
        Mailbox.objects.filter(domain__status__in=[DomainStatus.VERIFIED, DomainStatus.QUARANTINED])
        .select_related("domain", "warmup")
        .order_by("pk")
    )
    for mailbox in mailboxes.iterator(chunk_size=2000):
        settings = warmup_settings_for(mailbox)
        key = f"m{mailbox.pk}"
        addresses[key] = mailbox.address
        nodes.append(
            Node(
                key=key,
                workspace=str(mailbox.domain.workspace_id),
                domain=str(mailbox.domain_id),
                provider=_provider(mailbox.provider),
                cluster=_cluster(mailbox.domain),
                sends=today_volume(warming_of(mailbox, settings), day).volume,
                window=(settings.window_start, settings.window_end),
                tz=_zone(settings.time_zone),
            )
        )
    for seed in GoldenSeed.objects.filter(active=True).order_by("pk"):
        key = f"s{seed.pk}"
        addresses[key] = seed.address
        nodes.append(
            Node(
                key=key,
                workspace=f"seed-{seed.pk}",
                domain=seed.address.rsplit("@", 1)[-1],
                provider=seed.provider,
                cluster=SEED,
                seed_budget=seed.daily_budget,
            )
        )
    return Network(nodes, addresses)


def recent_pairs(*, day: date) -> set[tuple[str, str]]:
    """The pairs that exchanged warm-up mail in the 7 days before `day`, as node keys."""
    rows = WarmupSend.objects.filter(
        day__gte=day - timedelta(days=RECENT_DAYS), day__lt=day
    ).values_list("sender_id", "sender_seed_id", "recipient_id", "recipient_seed_id")
    return {
        (f"m{s}" if s else f"s{ss}", f"m{r}" if r else f"s{rs}") for s, ss, r, rs in rows.iterator()
    }


# --- What happened to the warm-up mail ---------------------------------------------------------

PLACEMENT_DAYS = 14
PROVIDER_LABELS = {GOOGLE: "Google", MICROSOFT: "Microsoft", OTHER: "other providers"}


@dataclass
class Share:
    """Warm-up messages the agent looked for: in the inbox, in spam, never arrived."""

    inbox: int = 0
    spam: int = 0
    missing: int = 0

    @property
    def total(self) -> int:
        return self.inbox + self.spam + self.missing

    @property
    def percent(self) -> int | None:
        """Inbox placement in whole per cent (None: nothing looked at yet)."""
        return round(100 * self.inbox / self.total) if self.total else None

    def add(self, placement: str, count: int) -> None:
        setattr(self, placement, getattr(self, placement) + count)


@dataclass
class PlacementReport:
    days: int
    overall: Share
    by_mailbox: dict[int, Share]
    by_domain: dict[int, Share]
    by_provider: dict[str, Share]  # the recipients' providers, labelled


def inbox_placement(*, workspace: Workspace, today: date | None = None) -> PlacementReport:
    """Inbox placement of the workspace's warm-up mail over the last PLACEMENT_DAYS days, per
    sending mailbox, per domain and per recipient provider (one grouped query)."""
    today = today or timezone.localdate()
    rows = (
        WarmupSend.objects.filter(
            sender__domain__workspace=workspace,
            day__gt=today - timedelta(days=PLACEMENT_DAYS),
            placement__in=[Placement.INBOX, Placement.SPAM, Placement.MISSING],
        )
        .values(
            "sender_id",
            "sender__domain_id",
            "placement",
            "recipient__provider",
            "recipient_seed__provider",
        )
        .annotate(count=Count("pk"))
        .order_by()
    )
    report = PlacementReport(PLACEMENT_DAYS, Share(), {}, {}, {})
    for row in rows:
        provider = _provider(row["recipient__provider"] or row["recipient_seed__provider"] or "")
        for share in (
            report.overall,
            report.by_mailbox.setdefault(row["sender_id"], Share()),
            report.by_domain.setdefault(row["sender__domain_id"], Share()),
            report.by_provider.setdefault(PROVIDER_LABELS[provider], Share()),
        ):
            share.add(row["placement"], row["count"])
    return report


def warming_activity(*, workspace: Workspace, limit: int = 20) -> list[WarmupSend]:
    """The workspace's latest warm-up messages, sent or received, with what happened to them."""
    return list(
        WarmupSend.objects.filter(
            Q(sender__domain__workspace=workspace) | Q(recipient__domain__workspace=workspace)
        )
        .exclude(step=Step.PLANNED)
        .select_related("sender__domain", "sender_seed", "recipient__domain", "recipient_seed")
        .order_by("-send_at", "-pk")[:limit]
    )


def warming_task_list(*, workspace: Workspace):
    """The workspace's warming tasks still to do: rehabilitation warm-up messages to its
    mailboxes, sent and not handled yet (docs/warming.md#warming-tasks)."""
    arrived = Q(step__in=[Step.FIND, Step.READ]) | Q(
        step=Step.PLANNED, message__state__in=[MessageState.HANDED_OVER, MessageState.DELIVERED]
    )
    return (
        WarmupSend.objects.filter(
            arrived, recipient__domain__workspace=workspace, cluster=REHAB, by_hand=False
        )
        .select_related("recipient__domain")
        .order_by("send_at", "pk")
    )


@dataclass(frozen=True)
class WarmingToday:
    """The workspace's warm-up mail of the last 24 hours, for the dashboard."""

    sent: int
    read: int
    rescued: int
    answered: int
    waiting: int  # sent, not looked at yet

    @property
    def any(self) -> bool:
        return bool(self.sent or self.waiting)


def warming_today(*, workspace: Workspace) -> WarmingToday:
    """What the network did with the workspace's warm-up mail in the last 24 hours (one query)."""
    since = timezone.now() - timedelta(days=1)
    counts = WarmupSend.objects.filter(
        sender__domain__workspace=workspace, send_at__gte=since
    ).aggregate(
        sent=Count("pk", filter=~Q(step__in=[Step.PLANNED, Step.FAILED])),
        read=Count("pk", filter=Q(read_at__isnull=False)),
        rescued=Count("pk", filter=Q(rescued=True)),
        answered=Count("pk", filter=Q(replied_at__isnull=False)),
        waiting=Count("pk", filter=Q(step__in=[Step.FIND, Step.READ])),
    )
    return WarmingToday(**counts)
