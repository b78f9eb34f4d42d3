"""Reads for the reputation views and API."""

from dataclasses import dataclass
from datetime import datetime, timedelta

import httpx
from django.conf import settings
from django.db.models import Exists, OuterRef, Q
from django.utils import timezone

from accounts.models import AuditLog
from reputation.charts import gauge
from reputation.core.metrics import domain_window_sums, window_metrics
from reputation.core.scores import domain_rehab_state, rehab_numbers
from reputation.models import Event, EventKind, ScoreHistory
from reputation.rehab import RehabState
from reputation.scoring import WindowMetrics
from reputation.tsa import BOUNCED_PATH, SUSPENDED_PATH, TsaAction, tsa_actions
from sending.models import SendingDomain
from warming.models import Step, WarmupSend


def domain_actions(domain: SendingDomain, limit: int = 20) -> list[AuditLog]:
    """The audit trail of a domain and its mailboxes: what happened, who or what did it, why."""
    mailbox_ids = [str(pk) for pk in domain.mailboxes.values_list("pk", flat=True)]
    return list(
        AuditLog.objects.filter(
            Q(object_type="sending.SendingDomain", object_id=str(domain.pk))
            | Q(object_type="sending.Mailbox", object_id__in=mailbox_ids)
        )
        .select_related("actor")
        .order_by("-created_at", "-id")[:limit]
    )


def score_history(domain: SendingDomain, days: int = 30) -> list[ScoreHistory]:
    since = timezone.now() - timedelta(days=days)
    return list(domain.score_history.filter(at__gte=since).order_by("at", "id"))


def rehab_progress(domain: SendingDomain) -> int:
    """Clean internal warming messages since the demotion: warm-up mail the MTA accepted that
    neither hard-bounced nor drew a complaint. They count toward the target."""
    start = domain.rehab_started_at
    if start is None:
        return 0
    spoiled = Event.objects.filter(
        domain=domain,
        kind__in=[EventKind.BOUNCE_HARD, EventKind.COMPLAINT],
        occurred_at__gte=start,
        message_id=OuterRef("message_id"),
        recipient=OuterRef("recipient"),
    )
    return (
        Event.objects.filter(
            domain=domain, kind=EventKind.SENT, message_kind="warmup", occurred_at__gte=start
        )
        .exclude(~Q(message_id=""), Exists(spoiled))
        .count()
    )


def rehab_tasks_done(domain: SendingDomain) -> int:
    """Warming tasks the owner handled by hand for the domain's mailboxes since the demotion."""
    start = domain.rehab_started_at
    if start is None:
        return 0
    return WarmupSend.objects.filter(
        recipient__domain=domain, by_hand=True, step=Step.DONE, read_at__gte=start
    ).count()


def _rehab_start_window(domain: SendingDomain) -> WindowMetrics | None:
    """The window as it stood when rehabilitation began (the history point written then)."""
    if domain.rehab_started_at is None:
        return None
    point = (
        domain.score_history.filter(at__lte=domain.rehab_started_at, provisional=False)
        .order_by("-at", "-id")
        .only("metrics")
        .first()
    )
    return window_metrics(point.metrics) if point and point.metrics else None


def domain_rehab(domain: SendingDomain, now: datetime) -> dict:
    """The rehabilitation meter: what is done, what remains now and why
    (docs/rehabilitation.md)."""
    state = domain_rehab_state(domain)
    if state not in (RehabState.NEW, RehabState.REHAB, RehabState.COOLDOWN):
        return rehab_numbers(domain, WindowMetrics(), now=now)
    # What remains is recomputed from the window as it is now, not from the last score's
    # snapshot (the window ages between hourly recomputations).
    window = window_metrics(domain_window_sums([domain.pk], now).get(domain.pk))
    if state == RehabState.NEW:
        scored_before = domain.score_history.filter(provisional=False, score__isnull=False).exists()
        return rehab_numbers(domain, window, now=now, first_score=not scored_before)
    return rehab_numbers(
        domain,
        window,
        now=now,
        done=rehab_progress(domain),
        start=_rehab_start_window(domain),
        by_hand=rehab_tasks_done(domain),
    )


def domain_reputation(domain: SendingDomain) -> dict:
    """Everything the domain page, the dashboard card and the API show about a domain's score."""
    snapshot = domain.score_metrics or {}
    now = timezone.now()
    rehab = domain_rehab(domain, now)
    history = score_history(domain)
    return {
        "score": domain.trust_score,
        "tier": domain.tier,
        "provisional": domain.score_provisional,
        "verified": domain.verified_at is not None and domain.status != "pending_dns",
        "scoring_version": domain.scoring_version,
        "updated_at": domain.score_updated_at,
        "metrics": snapshot or None,
        "window_days": settings.REPUTATION_WINDOW_DAYS,
        "rehab": rehab,
        "history": [
            {"at": h.at, "score": h.score, "tier": h.tier, "provisional": h.provisional}
            for h in history
        ],
        "gauge": gauge(domain.trust_score),
    }


def event_list(*, workspace_ids, filters: dict):
    events = Event.objects.filter(domain__workspace_id__in=workspace_ids).select_related(
        "domain", "mailbox"
    )
    if filters.get("domain"):
        events = events.filter(domain__public_id=filters["domain"])
    if filters.get("kind"):
        events = events.filter(kind=filters["kind"])
    if filters.get("mailbox"):
        events = events.filter(mailbox_id=filters["mailbox"])
    if filters.get("recipient"):
        events = events.filter(recipient=filters["recipient"].lower())
    if filters.get("since"):
        events = events.filter(occurred_at__gte=filters["since"])
    if filters.get("until"):
        events = events.filter(occurred_at__lt=filters["until"])
    return events.order_by("-occurred_at", "-id")


@dataclass(frozen=True)
class TsaState:
    configured: bool
    rows: list[tuple[TsaAction, str]]  # each action with the domain its tenant id names
    error: str = ""


def tsa_state_get() -> TsaState:
    """The Traffic Shaping Automation daemon's active suspensions and bounces (KUMO_TSA_URL)."""
    base = settings.KUMO_TSA_URL.rstrip("/")
    if not base:
        return TsaState(configured=False, rows=[])
    try:
        with httpx.Client(timeout=3.0) as client:
            suspended = client.get(base + SUSPENDED_PATH)
            bounced = client.get(base + BOUNCED_PATH)
        suspended.raise_for_status()
        bounced.raise_for_status()
        actions = tsa_actions(suspended.json(), bounced.json())
    except (httpx.HTTPError, ValueError) as error:
        return TsaState(configured=True, rows=[], error=str(error)[:300])
    tenants = {action.tenant for action in actions if action.tenant}
    domains = dict(
        SendingDomain.objects.filter(public_id__in=tenants).values_list("public_id", "name")
    )
    return TsaState(
        configured=True, rows=[(action, domains.get(action.tenant, "")) for action in actions]
    )
