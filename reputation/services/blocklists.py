"""Blocklist monitoring, source pulls and pool rotation
(docs/tiers-and-actions.md#blocklist-monitoring)."""

import logging
from datetime import datetime

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from accounts.models import User
from accounts.services import audit_log_record
from reputation.core.pool_map import pool_map_export
from reputation.dnsbl import domain_query_name, interpret, ip_query_name
from reputation.models import BlocklistCheck, EgressSource, Pool, PoolMembership
from reputation.services.actions import owners_alert, staff_alert
from sending.dns_checks import DnsLookup, DnsLookupError
from sending.models import DomainStatus, SendingDomain
from sending.services.dns import dns_lookup
from sending.services.status import domain_cooldown

logger = logging.getLogger(__name__)


def _ask(lookup: DnsLookup, name: str) -> tuple[bool, str, str]:
    try:
        return interpret(lookup.a(name))
    except DnsLookupError as error:
        return False, "", str(error)[:200]


def _export_after_commit() -> None:
    transaction.on_commit(lambda: pool_map_export())


@transaction.atomic
def source_pull(*, source: EgressSource, actor: User | None, reason: str) -> EgressSource | None:
    """Take a source out of every pool (weight 0) and promote a standby source in its place.
    Returns the promoted source, if any."""
    before = {"state": source.state}
    source.state = EgressSource.State.PULLED
    source.state_reason = reason
    source.state_changed_at = timezone.now()
    source.save(update_fields=["state", "state_reason", "state_changed_at"])
    audit_log_record(
        action="source.pull",
        actor=actor,
        obj=source,
        reason=reason,
        before=before,
        after={"state": "pulled"},
    )
    pools = list(Pool.objects.filter(memberships__source=source))
    replacement = (
        EgressSource.objects.select_for_update()
        .filter(state=EgressSource.State.STANDBY)
        .order_by("warmup_started_on", "name")
        .first()
    )
    if replacement is not None:
        _activate(replacement, pools, actor, f"Replaces {source.name}: {reason}")
    staff_alert(
        subject=f"[source pulled] {source.name} {source.source_address}",
        body=reason
        + (
            f" {replacement.name} was promoted from standby."
            if replacement
            else " No standby source was left to promote."
        ),
    )
    _export_after_commit()
    return replacement


def _activate(source: EgressSource, pools: list[Pool], actor: User | None, reason: str) -> None:
    if source.state == EgressSource.State.STANDBY:
        source.warmup_started_on = timezone.localdate()  # its warm-up starts when it sends
    source.state = EgressSource.State.ACTIVE
    source.state_reason = reason
    source.state_changed_at = timezone.now()
    source.save(update_fields=["state", "state_reason", "state_changed_at", "warmup_started_on"])
    for pool in pools:
        PoolMembership.objects.get_or_create(pool=pool, source=source)
    audit_log_record(
        action="source.activate",
        actor=actor,
        obj=source,
        reason=reason,
        after={"state": "active", "pools": [p.name for p in pools]},
    )


@transaction.atomic
def source_reinstate(*, source: EgressSource, actor: User | None, reason: str) -> None:
    """Put a pulled or standby source back into service (staff)."""
    _activate(source, list(Pool.objects.filter(memberships__source=source)), actor, reason)
    _export_after_commit()


@transaction.atomic
def pool_rotate(*, pool: Pool, actor: User | None, reason: str) -> list[str]:
    """Swap standby sources in for the pool's active ones (which go to standby)."""
    active = list(pool.sources.filter(state=EgressSource.State.ACTIVE))
    standby = list(
        EgressSource.objects.filter(state=EgressSource.State.STANDBY).order_by("warmup_started_on")
    )
    if not standby:
        return []
    swapped = []
    for old, new in zip(active, standby, strict=False):
        old.state = EgressSource.State.STANDBY
        old.state_reason = f"Rotated out of {pool.name}: {reason}"
        old.state_changed_at = timezone.now()
        old.save(update_fields=["state", "state_reason", "state_changed_at"])
        _activate(new, [pool], actor, f"Rotated into {pool.name}: {reason}")
        swapped.append(f"{old.name} -> {new.name}")
    audit_log_record(
        action="pool.rotate", actor=actor, obj=pool, reason=reason, after={"swapped": swapped}
    )
    _export_after_commit()
    return swapped


def _listings(
    lookup: DnsLookup,
    *,
    kind: str,
    target: str,
    zones: list[str],
    query,
    now: datetime,
    checks: list[BlocklistCheck],
    **owner,
) -> list[str]:
    """Ask every zone about one target; record each answer; return the zones that list it."""
    listings = []
    for zone in zones:
        listed, answer, error = _ask(lookup, query(target, zone))
        checks.append(
            BlocklistCheck(
                kind=kind,
                target=target,
                zone=zone,
                listed=listed,
                answer=answer,
                error=error,
                checked_at=now,
                **owner,
            )
        )
        if listed:
            listings.append(f"{zone} ({answer})")
    return listings


def blocklists_check(*, now: datetime | None = None) -> dict[str, int]:
    """Query every DNSBL for active sources and verified domains; act on listings."""
    now = now or timezone.now()
    lookup = dns_lookup()
    checks: list[BlocklistCheck] = []
    pulled = cooled = 0
    for source in EgressSource.objects.exclude(state=EgressSource.State.PULLED):
        listings = _listings(
            lookup,
            kind="ip",
            target=source.source_address,
            zones=settings.DNSBL_IP_ZONES,
            query=ip_query_name,
            now=now,
            checks=checks,
            source=source,
        )
        if listings and source.state == EgressSource.State.ACTIVE:
            source_pull(
                source=source,
                actor=None,
                reason=f"{source.source_address} is listed on {', '.join(listings)}.",
            )
            pulled += 1
    domains = SendingDomain.objects.filter(status=DomainStatus.VERIFIED).select_related("workspace")
    for domain in domains:
        listings = _listings(
            lookup,
            kind="domain",
            target=domain.name,
            zones=settings.DNSBL_DOMAIN_ZONES,
            query=domain_query_name,
            now=now,
            checks=checks,
            domain=domain,
        )
        if listings:
            reason = f"{domain.name} is listed on {', '.join(listings)}."
            with transaction.atomic():
                domain_cooldown(
                    domain=domain, actor=None, reason=reason, days=settings.REPUTATION_COOLDOWN_DAYS
                )
                owners_alert(
                    domain=domain,
                    subject=f"{domain.name} is on a blocklist",
                    body=reason + " It is out of rotation for "
                    f"{settings.REPUTATION_COOLDOWN_DAYS} days (cool-down).",
                )
                staff_alert(subject=f"[domain listed] {domain.name}", body=reason)
            cooled += 1
    BlocklistCheck.objects.bulk_create(checks, batch_size=1000)
    return {"checks": len(checks), "sources_pulled": pulled, "domains_cooled": cooled}
