"""Reads for the reputation views and API."""

from datetime import timedelta

from django.conf import settings
from django.db.models import Q
from django.utils import timezone

from accounts.models import AuditLog
from reputation.charts import gauge, history_points
from reputation.core.metrics import window_metrics
from reputation.core.scores import rehab_numbers
from reputation.models import Event, ScoreHistory
from sending.models import SendingDomain


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
    """Internal warming messages sent since the demotion: they count toward the target."""
    if domain.rehab_started_at is None:
        return 0
    return Event.objects.filter(
        domain=domain, kind="sent", message_kind="warmup", occurred_at__gte=domain.rehab_started_at
    ).count()


def domain_reputation(domain: SendingDomain) -> dict:
    """Everything the domain page, the dashboard card and the API show about a domain's score."""
    snapshot = domain.score_metrics or {}
    metrics = window_metrics(snapshot)
    rehab = rehab_numbers(domain, metrics) if domain.tier in ("rehab",) else None
    if rehab is not None:
        # The remaining target shrinks as warm-up mail joins the window, so the whole distance
        # is what was done plus what is left.
        progress = rehab_progress(domain)
        remaining = rehab["score_unlock"] or 0
        rehab["progress"] = progress
        rehab["percent"] = 100 if not remaining else round(100 * progress / (progress + remaining))
    history = score_history(domain)
    now = timezone.now()
    chart = history_points(
        [(h.at, h.score) for h in history], start=now - timedelta(days=30), end=now
    )
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
        "chart": chart,
        "chart_dots": [pair.split(",") for pair in chart.split()][-30:],
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
