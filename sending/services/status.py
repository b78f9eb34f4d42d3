"""The domain status machine: every change is audit-logged, re-tiers the domain, updates what
the MTA may route and sign for, and is pushed to the workspace's pages."""

from datetime import datetime, timedelta
from typing import Any

from django.db import transaction
from django.utils import timezone

from accounts.models import User
from accounts.services import audit_log_record, workspace_notify
from reputation.core.pool_map import dkim_key_publish, tenant_pool_publish
from reputation.core.scores import scores_recompute
from sending.models import DomainStatus, SendingDomain


def domain_status_set(
    *,
    domain: SendingDomain,
    status: str,
    actor: User | None,
    reason: str,
    now: datetime,
    action: str,
    cooldown_until: datetime | None = None,
) -> None:
    """Move the domain to `status` with its side effects (call inside a transaction)."""
    before = {"status": domain.status}
    domain.status = status
    domain.status_reason = reason
    domain.status_changed_at = now
    domain.cooldown_until = cooldown_until
    domain.save(update_fields=["status", "status_reason", "status_changed_at", "cooldown_until"])
    after: dict[str, Any] = {"status": status}
    if cooldown_until:
        after["cooldown_until"] = cooldown_until.isoformat()
    audit_log_record(
        action=action,
        actor=actor,
        obj=domain,
        workspace=domain.workspace,
        reason=reason,
        before=before,
        after=after,
    )
    # Status drives the tier (cool-down -> rehab, quarantine -> quarantine, verified -> scored)
    # and whether the MTA may route and sign for the domain at all.
    scores_recompute(domain_ids=[domain.pk], now=now)
    domain.refresh_from_db(fields=["tier"])
    tenant_pool_publish(domain=domain)
    dkim_key_publish(domain=domain)
    workspace_notify(
        workspace=domain.workspace,
        event="domain.status",
        payload={
            "domain": domain.public_id,
            "status": status,
            "text": f"{domain.name}: {domain.get_status_display()}. {reason}".strip(),
        },
    )


@transaction.atomic
def domain_cooldown(
    *, domain: SendingDomain, actor: User | None, reason: str, days: int = 14
) -> None:
    """Take the domain out of rotation for `days` (docs/tiers-and-actions.md)."""
    now = timezone.now()
    domain_status_set(
        domain=domain,
        status=DomainStatus.COOLDOWN,
        actor=actor,
        now=now,
        reason=reason,
        action="domain.cooldown",
        cooldown_until=now + timedelta(days=days),
    )


@transaction.atomic
def domain_quarantine(*, domain: SendingDomain, actor: User | None, reason: str) -> None:
    """Stop all sending from the domain until staff lift the quarantine."""
    domain_status_set(
        domain=domain,
        status=DomainStatus.QUARANTINED,
        actor=actor,
        now=timezone.now(),
        reason=reason,
        action="domain.quarantine",
    )
