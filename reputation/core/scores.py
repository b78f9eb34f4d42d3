"""Trust scores and tiers from the window sums; history points and live pushes on change."""

from dataclasses import dataclass
from datetime import datetime
from functools import partial

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from accounts.services import workspace_notify
from config.celery import task_enqueue
from leaderboard.models import Participant
from reputation.core.metrics import domain_window_sums, window_metrics
from reputation.core.pool_map import tenant_pool_publish
from reputation.models import ScoreHistory
from reputation.rehab import RehabRules, RehabState, rehab_meter, rehab_state
from reputation.scoring import (
    SCORING_VERSION,
    Tier,
    TrustScore,
    WindowMetrics,
    tier_for,
    trust_score,
)
from sending.models import DomainStatus, SendingDomain
from webhooks.models import WebhookEndpoint

SCORE_FIELDS = [
    "trust_score",
    "tier",
    "score_provisional",
    "scoring_version",
    "score_metrics",
    "score_updated_at",
    "rehab_started_at",
]


@dataclass(frozen=True)
class ScoreChange:
    domain_id: int
    before_score: float | None
    before_tier: str
    score: float | None
    tier: str
    metrics: WindowMetrics


def _is_verified(domain: SendingDomain) -> bool:
    # The baseline is granted only while SPF, DKIM and DMARC check out
    # (docs/trust-score.md#verified-domains-only).
    return domain.verified_at is not None and domain.status not in (
        DomainStatus.PENDING_DNS,
        DomainStatus.RETIRED,
    )


def domain_score(domain: SendingDomain, metrics: WindowMetrics) -> tuple[TrustScore, Tier]:
    score = trust_score(metrics, verified=_is_verified(domain))
    previous = Tier(domain.tier) if domain.tier in Tier._value2member_map_ else None
    tier = tier_for(
        score=score,
        previous=previous,
        cooldown=domain.status == DomainStatus.COOLDOWN,
        quarantined=domain.status == DomainStatus.QUARANTINED,
        # A provisional window is too small to quarantine on (one complaint in ten sends).
        spam_percent=0.0 if score.provisional else metrics.spam_percent,
        hysteresis=settings.REPUTATION_PROMOTION_HYSTERESIS,
    )
    return score, tier


def metrics_snapshot(metrics: WindowMetrics) -> dict:
    return {
        "sent": metrics.sent,
        "delivered": metrics.delivered,
        "hard_bounces": metrics.hard_bounces,
        "complaints": metrics.complaints,
        "replies": metrics.replies,
        "unique_opens": metrics.unique_opens,
        "bounce_percent": round(metrics.bounce_percent, 3),
        "spam_percent": round(metrics.spam_percent, 4),
        "reply_percent": round(metrics.reply_percent, 2),
        "open_percent": round(metrics.open_percent, 2),
    }


def rehab_rules() -> RehabRules:
    return RehabRules(
        reply_rate=settings.REHAB_REPLY_RATE,
        open_rate=settings.REHAB_OPEN_RATE,
        target=70.0 + settings.REPUTATION_PROMOTION_HYSTERESIS,
        max_messages=settings.REHAB_MAX_MESSAGES,
        window_days=settings.REPUTATION_WINDOW_DAYS,
    )


def domain_rehab_state(domain: SendingDomain) -> RehabState:
    return rehab_state(
        tier=domain.tier,
        scored=domain.trust_score is not None,
        provisional=domain.score_provisional,
        cooldown=domain.status == DomainStatus.COOLDOWN,
    )


def rehab_numbers(
    domain: SendingDomain,
    window: WindowMetrics,
    *,
    now: datetime,
    done: int = 0,
    start: WindowMetrics | None = None,
    first_score: bool = True,
    by_hand: int = 0,
) -> dict:
    """The rehabilitation meter of a domain (docs/rehabilitation.md): its state, what is done,
    what remains now (from the current `window`) and why."""
    rules = rehab_rules()
    state = domain_rehab_state(domain)
    rehabilitating = state in (RehabState.REHAB, RehabState.COOLDOWN)
    since = domain.rehab_started_at if rehabilitating else None
    meter = rehab_meter(
        state,
        window=window,
        rules=rules,
        now=now,
        done=done,
        since=since,
        start=start,
        first_score=first_score,
        cooldown_until=domain.cooldown_until if domain.status == DomainStatus.COOLDOWN else None,
        by_hand=by_hand,
    )
    unlock = meter.unlock
    return {
        "state": meter.state.value,
        "done": meter.done,
        "by_hand": meter.by_hand,
        "remaining": meter.remaining,
        "percent": meter.percent,
        "since": since,
        "summary": meter.summary,
        "explanation": meter.explanation,
        "target_score": rules.target,
        "score_unlock": unlock.messages if unlock else None,
        "bounce_dilution": meter.bounce_dilution,
        "reachable": unlock.reachable if unlock else meter.remaining is not None,
        "limit_score": round(unlock.limit_score, 2) if unlock else None,
        "reason": unlock.reason if unlock else "",
        "progress": meter.done,  # the earlier name of `done`
    }


@transaction.atomic
def scores_recompute(*, domain_ids, now: datetime | None = None) -> dict[int, ScoreChange]:
    """Recompute the given domains from their window; store, record and push what changed."""
    now = now or timezone.now()
    ids = list(domain_ids)
    if not ids:
        return {}
    sums = domain_window_sums(ids, now)
    changes: dict[int, ScoreChange] = {}
    updated: list[SendingDomain] = []
    history: list[ScoreHistory] = []
    # Locked (in id order) so a status change committed meanwhile is not overwritten by a tier
    # computed from the old status.
    domains = (
        SendingDomain.objects.filter(pk__in=ids)
        .select_related("workspace")
        .select_for_update(of=("self",))
        .order_by("pk")
    )
    for domain in domains:
        metrics = window_metrics(sums.get(domain.pk))
        previous_tier = domain.tier
        score, tier = domain_score(domain, metrics)
        value = score.value
        snapshot = metrics_snapshot(metrics)
        moved = (
            value != domain.trust_score
            or tier.value != domain.tier
            or score.provisional != domain.score_provisional
            or domain.scoring_version != SCORING_VERSION
        )
        if not moved and snapshot == domain.score_metrics:
            continue
        if moved:
            changes[domain.pk] = ScoreChange(
                domain.pk, domain.trust_score, domain.tier, value, tier.value, metrics
            )
            history.append(
                ScoreHistory(
                    domain=domain,
                    at=now,
                    score=value,
                    tier=tier.value,
                    provisional=score.provisional,
                    scoring_version=SCORING_VERSION,
                    metrics=snapshot,
                )
            )
        # Progress counts from the demotion on. A domain that waited in rehab while its score
        # was provisional is demoted by its first real score below the gate: what it sent
        # before that was not done toward the way back. (A passing DNS failure, or the end of
        # a cool-down, goes through "no score" and keeps the count.)
        first_real_score = value is not None and not score.provisional and domain.score_provisional
        if tier != Tier.REHAB:
            domain.rehab_started_at = None
        elif domain.rehab_started_at is None or domain.tier != Tier.REHAB.value or first_real_score:
            domain.rehab_started_at = now
        domain.trust_score = value
        domain.tier = tier.value
        domain.score_provisional = score.provisional
        domain.scoring_version = SCORING_VERSION
        domain.score_metrics = snapshot
        domain.score_updated_at = now
        updated.append(domain)
        payload = {
            "domain": domain.public_id,
            "score": value,
            "tier": tier.value,
            "provisional": score.provisional,
        }
        if moved:
            payload["text"] = _change_text(domain.name, changes[domain.pk])
        if tier.value != previous_tier:
            tenant_pool_publish(domain=domain)  # the MTA routes by tier: one HSET after commit
        # Unchanged scores still push: the page's metrics and rehab progress move with the counts.
        workspace_notify(workspace=domain.workspace, event="score", payload=payload)
    SendingDomain.objects.bulk_update(updated, SCORE_FIELDS, batch_size=500)
    ScoreHistory.objects.bulk_create(history, batch_size=500)
    _score_webhooks([d for d in updated if d.pk in changes], changes, now)
    _leaderboard_refresh({d.workspace_id for d in updated if d.pk in changes})
    return changes


def _leaderboard_refresh(workspace_ids: set[int]) -> None:
    """Participants whose domains' scores moved: their board numbers are recomputed and pushed
    once the change commits (the leaderboard layer sits above this one: by task name)."""
    if not workspace_ids:
        return
    taking_part = sorted(
        Participant.objects.filter(workspace_id__in=workspace_ids).values_list(
            "workspace_id", flat=True
        )
    )
    if taking_part:
        transaction.on_commit(
            partial(task_enqueue, "leaderboard.tasks.leaderboard_workspaces_refresh", taking_part)
        )


def _score_webhooks(
    domains: list[SendingDomain], changes: dict[int, ScoreChange], now: datetime
) -> None:
    """Score and tier changes as webhook events of workspaces that have an endpoint, queued
    once the change commits (the webhooks layer sits above this one: by task name)."""
    if not domains:
        return
    listening = set(
        WebhookEndpoint.objects.filter(
            active=True, workspace_id__in={d.workspace_id for d in domains}
        ).values_list("workspace_id", flat=True)
    )
    for domain in domains:
        if domain.workspace_id not in listening:
            continue
        change = changes[domain.pk]
        data = {
            "domain": domain.name,
            "domain_id": domain.public_id,
            "score": change.score,
            "before_score": change.before_score,
            "tier": change.tier,
            "before_tier": change.before_tier,
        }
        kinds = [
            kind
            for kind, moved in (
                ("domain.score_changed", change.score != change.before_score),
                ("domain.tier_changed", change.tier != change.before_tier),
            )
            if moved
        ]
        for kind in kinds:
            event_id = f"evt_{kind.split('.')[1]}_{domain.public_id}_{int(now.timestamp())}"
            transaction.on_commit(
                partial(
                    task_enqueue,
                    "webhooks.tasks.webhook_emit_event",
                    domain.workspace_id,
                    kind,
                    data,
                    now.isoformat(),
                    event_id,
                )
            )


def _change_text(name: str, change: ScoreChange) -> str:
    score = "no score" if change.score is None else f"{change.score:.1f}"
    if change.before_tier != change.tier:
        return f"{name}: trust score {score}, tier {change.before_tier} → {change.tier}"
    return f"{name}: trust score {score}"


def scores_recompute_all(*, now: datetime | None = None, chunk: int = 1000) -> int:
    """Window ageing: recompute every live domain, a chunk of ids at a time."""
    now = now or timezone.now()
    ids = list(
        SendingDomain.objects.exclude(status=DomainStatus.RETIRED)
        .order_by("pk")
        .values_list("pk", flat=True)
    )
    changed = 0
    for start in range(0, len(ids), chunk):
        changed += len(scores_recompute(domain_ids=ids[start : start + chunk], now=now))
    return changed
