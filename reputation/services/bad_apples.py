"""Bad-apple isolation (docs/tiers-and-actions.md#bad-apple-isolation): when a shared pool's last
hour crosses the lines, the tenants that put it there are quarantined, worst first, with the
evidence in the audit log."""

from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db.models import Count, Q
from django.utils import timezone

from reputation.models import Event
from reputation.scoring import WindowMetrics
from reputation.thresholds import BOUNCE_PAUSE, SPAM_QUARANTINE
from sending.models import DomainStatus, SendingDomain
from sending.services.status import domain_quarantine

SHARED_POOLS = ("premium", "standard", "rehab")


def _pool_rates(rows: Sequence[Mapping[str, Any]]) -> WindowMetrics:
    return WindowMetrics(
        sent=sum(r["sent"] for r in rows),
        hard_bounces=sum(r["hard"] for r in rows),
        complaints=sum(r["complaints"] for r in rows),
    )


def bad_apples_isolate(*, now: datetime | None = None) -> list[str]:
    """Quarantine the fewest worst tenants that bring each shared pool back under the lines."""
    now = now or timezone.now()
    quarantined = []
    for pool in SHARED_POOLS:
        rows = list(
            Event.objects.filter(
                occurred_at__gte=now - timedelta(hours=1),
                domain__tier=pool,
                domain__status=DomainStatus.VERIFIED,
            )
            .values("domain_id")
            .annotate(
                sent=Count("id", filter=Q(kind="sent")),
                hard=Count("id", filter=Q(kind="bounce_hard")),
                complaints=Count("id", filter=Q(kind="complaint")),
            )
        )
        total = _pool_rates(rows)
        if total.sent < settings.BAD_APPLE_MIN_SENT or len(rows) < 2:
            continue  # a pool with one sender has nobody to protect: its own actions apply
        if total.bounce_percent <= BOUNCE_PAUSE and total.spam_percent <= SPAM_QUARANTINE:
            continue
        # Worst contribution first: complaints weigh 100x a bounce, as in the score formula
        # (docs/trust-score.md#score-formula).
        ranked = sorted(rows, key=lambda r: 100 * r["complaints"] + r["hard"], reverse=True)
        remaining = list(rows)
        for offender in ranked:
            if not (offender["hard"] or offender["complaints"]):
                break
            rates = _pool_rates(remaining)
            if rates.bounce_percent <= BOUNCE_PAUSE and rates.spam_percent <= SPAM_QUARANTINE:
                break
            domain = SendingDomain.objects.select_related("workspace").get(pk=offender["domain_id"])
            domain_quarantine(
                domain=domain,
                actor=None,
                reason=(
                    f"Bad apple in the {pool} pool: in the last hour the pool's hard bounce rate "
                    f"was {rates.bounce_percent:.2f}% and spam rate {rates.spam_percent:.3f}% "
                    f"over {rates.sent} messages; this domain sent {offender['sent']} of them "
                    f"with {offender['hard']} hard bounces and {offender['complaints']} "
                    "complaints, the largest share."
                ),
            )
            remaining.remove(offender)
            quarantined.append(domain.name)
    return quarantined
