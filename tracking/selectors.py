"""Reads: tracking numbers per campaign, step and variant; switches; the custom domain and
whether a request's host is one."""

from collections import defaultdict
from dataclasses import dataclass, field

from django.core.cache import cache
from django.db.models import Count, Exists, OuterRef, Q

from accounts.models import Workspace
from campaigns.models import Campaign, CampaignSend, CampaignStep
from tracking.models import CampaignTracking, Click, Open, TrackingDomain, TrackingDomainState


@dataclass(frozen=True)
class TrackingLine:
    sent: int = 0
    opens: int = 0  # messages opened by a person (unique human opens)
    machine_opens: int = 0  # messages whose pixel only machines fetched
    clicks: int = 0  # human clicks, all of them
    clickers: int = 0  # messages (so leads) with a human click

    def _rate(self, count: int) -> float | None:
        return round(100 * count / self.sent, 1) if self.sent else None

    def __add__(self, other: "TrackingLine") -> "TrackingLine":
        return TrackingLine(
            sent=self.sent + other.sent,
            opens=self.opens + other.opens,
            machine_opens=self.machine_opens + other.machine_opens,
            clicks=self.clicks + other.clicks,
            clickers=self.clickers + other.clickers,
        )

    def as_dict(self) -> dict[str, int | float | None]:
        return {
            "opens": self.opens,
            "machine_opens": self.machine_opens,
            "clicks": self.clicks,
            "clickers": self.clickers,
            "open_rate": self._rate(self.opens),
            "click_rate": self._rate(self.clickers),
        }


@dataclass(frozen=True)
class VariantTracking:
    label: str
    numbers: TrackingLine


@dataclass(frozen=True)
class StepTracking:
    position: int
    numbers: TrackingLine
    variants: list[VariantTracking] = field(default_factory=list)


@dataclass(frozen=True)
class TrackingStats:
    totals: TrackingLine
    steps: list[StepTracking]

    def as_dict(self) -> dict[str, object]:
        return {
            **self.totals.as_dict(),
            "steps": [
                {
                    "position": step.position,
                    **step.numbers.as_dict(),
                    "variants": [{"label": v.label, **v.numbers.as_dict()} for v in step.variants],
                }
                for step in self.steps
            ],
        }


def tracking_stats(*, campaign: Campaign) -> TrackingStats:
    """Human opens, machine-only opens, human clicks and clickers, per step and variant (three
    queries whatever the campaign's size)."""
    human_open = Open.objects.filter(message_id=OuterRef("message_id"), machine=False)
    machine_open = Open.objects.filter(message_id=OuterRef("message_id"), machine=True)
    human_click = Click.objects.filter(message_id=OuterRef("message_id"), machine=False)
    sends = CampaignSend.objects.filter(campaign=campaign, message__isnull=False)
    rows = (
        sends.annotate(
            h_open=Exists(human_open), m_open=Exists(machine_open), h_click=Exists(human_click)
        )
        .values("step_id", "variant_id")
        .annotate(
            sent=Count("id"),
            opens=Count("id", filter=Q(h_open=True)),
            machine_opens=Count("id", filter=Q(m_open=True, h_open=False)),
            clickers=Count("id", filter=Q(h_click=True)),
        )
        .order_by()
    )
    clicks = {
        (row["message__campaign_send__step_id"], row["message__campaign_send__variant_id"]): row[
            "n"
        ]
        for row in Click.objects.filter(machine=False, message__campaign_send__campaign=campaign)
        .values("message__campaign_send__step_id", "message__campaign_send__variant_id")
        .annotate(n=Count("id"))
        .order_by()
    }
    lines: dict[tuple[int, int | None], TrackingLine] = {}
    for row in rows:
        key = (row["step_id"], row["variant_id"])
        lines[key] = TrackingLine(
            sent=row["sent"],
            opens=row["opens"],
            machine_opens=row["machine_opens"],
            clicks=clicks.get(key, 0),
            clickers=row["clickers"],
        )
    by_step: dict[int, list[tuple[int | None, TrackingLine]]] = defaultdict(list)
    for (step_id, variant_id), line in lines.items():
        by_step[step_id].append((variant_id, line))
    totals = TrackingLine()
    steps = []
    for step in (
        CampaignStep.objects.filter(campaign=campaign)
        .prefetch_related("variants")
        .order_by("position")
    ):
        step_line = TrackingLine()
        for _, line in by_step.get(step.pk, []):
            step_line += line
        variants = [
            VariantTracking(label=v.label, numbers=lines.get((step.pk, v.pk), TrackingLine()))
            for v in step.variants.all()
        ]
        totals += step_line
        steps.append(StepTracking(position=step.position, numbers=step_line, variants=variants))
    return TrackingStats(totals=totals, steps=steps)


def campaign_tracking_get(*, campaign: Campaign) -> CampaignTracking:
    """The campaign's switches (an unsaved row with both on when none was set)."""
    found = CampaignTracking.objects.filter(campaign=campaign).first()
    return found or CampaignTracking(campaign=campaign)


def tracking_domain_get(*, workspace: Workspace) -> TrackingDomain | None:
    return TrackingDomain.objects.filter(workspace=workspace).first()


# --- custom tracking hostnames at the door -------------------------------------------------------

HOST_CACHE_SECONDS = 60


def _host_key(hostname: str) -> str:
    return f"tracking-host:{hostname}"


def tracking_host_known(*, hostname: str) -> bool:
    """Whether `hostname` is a workspace's tracking hostname (in any state: links already sent
    keep working while a recheck is pending). Cached for a minute, misses included, so a flood
    of made-up Host headers costs no queries; the domain services forget the entry on change."""
    key = _host_key(hostname)
    known = cache.get(key)
    if known is None:
        known = TrackingDomain.objects.filter(hostname=hostname).exists()
        cache.set(key, known, HOST_CACHE_SECONDS)
    return bool(known)


def tracking_host_verified(*, hostname: str) -> bool:
    """Whether `hostname` is a tracking hostname whose CNAME checked out (certificates)."""
    return TrackingDomain.objects.filter(
        hostname=hostname[:253], state=TrackingDomainState.VERIFIED
    ).exists()


def tracking_host_forget(*, hostname: str) -> None:
    cache.delete(_host_key(hostname))
