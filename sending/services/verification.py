"""Checking a domain's DNS records and applying the verdict."""

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from accounts.models import User
from accounts.services import workspace_owners_email
from config.errors import ApplicationError
from sending.dns_checks import ERROR, FAIL, PASS, CheckResult, domain_checks, provider_from_mx
from sending.dns_records import DnsRecord
from sending.models import DkimKey, DkimKeyState, DomainStatus, SendingDomain
from sending.services.dkim import dkim_switch
from sending.services.dns import dns_lookup, domain_records, platform_dns
from sending.services.status import domain_status_set

PENDING_RECHECK = timedelta(minutes=15)
VERIFIED_RECHECK = timedelta(days=1)
ERROR_RECHECK = timedelta(hours=1)
# A domain on its own servers publishes no platform DKIM key: it is never among its records.
REQUIRED_KINDS = ("ownership", "spf", "dkim", "dmarc")
CHECK_FIELDS = ["provider", "dns_results", "dns_checked_at", "verified_at"]
KIND_NAMES = {"ownership": "Ownership record", "spf": "SPF", "dkim": "DKIM", "dmarc": "DMARC"}


def _records_to_check(domain: SendingDomain, keys: list[DkimKey]) -> list[DnsRecord]:
    # A retiring key's record may be removed at any time; it is not checked.
    checked = {k.selector for k in keys if k.state != DkimKeyState.RETIRING}
    return [r for r in domain_records(domain) if r.kind != "dkim" or r.selector in checked]


def _verified_reason(domain: SendingDomain) -> str:
    if domain.own_servers:
        return (
            "Ownership, SPF and DMARC check out; DKIM is confirmed from the first warm-up message."
        )
    return "SPF, DKIM, DMARC and ownership all check out."


@dataclass(frozen=True)
class Verification:
    domain: SendingDomain
    results: list[dict]
    verified: bool


def domain_verify(
    *, domain: SendingDomain, actor: User | None = None, now: datetime | None = None
) -> Verification:
    """Check every record now; verify, demote or keep the domain by what DNS says (a demo
    domain only records the results).

    DNS is asked outside any transaction (a slow resolver holds no lock); the outcome is then
    applied under a row lock, against the keys as they are at that moment."""
    now = now or timezone.now()
    domain = SendingDomain.objects.get(pk=domain.pk)
    if domain.status == DomainStatus.RETIRED:
        raise ApplicationError("This domain was removed.", code="domain_retired")
    results = domain_checks(
        domain=domain.name,
        records=_records_to_check(domain, list(domain.dkim_keys.all())),
        lookup=dns_lookup(),
        platform=platform_dns(),
        own_servers=domain.own_servers,
    )
    return _verification_apply(domain=domain, results=results, actor=actor, now=now)


@transaction.atomic
def _verification_apply(
    *, domain: SendingDomain, results: list[CheckResult], actor: User | None, now: datetime
) -> Verification:
    checked_as = domain.sends_through
    domain = SendingDomain.objects.select_for_update().select_related("workspace").get(pk=domain.pk)
    if domain.status == DomainStatus.RETIRED:
        raise ApplicationError("This domain was removed.", code="domain_retired")
    if domain.sends_through != checked_as:
        # How it sends changed while DNS was asked: these results answer the wrong question.
        return Verification(
            domain=domain,
            results=domain.dns_results,
            verified=domain.status == DomainStatus.VERIFIED,
        )
    keys = list(domain.dkim_keys.all())
    by_selector = {r.selector: r for r in results if r.kind == "dkim"}
    active = next((k for k in keys if k.state == DkimKeyState.ACTIVE), None)
    pending = next((k for k in keys if k.state == DkimKeyState.PENDING), None)
    pending_result = by_selector.get(pending.selector) if pending else None
    if pending and pending_result and pending_result.status == PASS and not domain.is_demo:
        dkim_switch(domain=domain, new=pending, old=active, actor=actor, now=now)
        active = pending
    # Verification needs ownership, SPF, DMARC and the signing key; a pending key only blocks
    # the switch, not the domain.
    gating = [
        r
        for r in results
        if r.kind in REQUIRED_KINDS
        and (r.kind != "dkim" or (active and r.selector == active.selector))
    ]
    all_pass = bool(gating) and all(r.status == PASS for r in gating)
    definitive_failure = any(r.status == FAIL for r in gating)
    lookup_errors = any(r.status == ERROR for r in results)
    mx = next((r for r in results if r.kind == "mx"), None)
    if mx and mx.found and not domain.is_demo:
        domain.provider = provider_from_mx(mx.found)

    domain.dns_results = [r.as_dict() for r in results]
    domain.dns_checked_at = now
    if domain.is_demo:
        # Demo data is shown as verified but its DNS is not really published: report what DNS
        # says and change nothing else, so checking the demo never breaks it.
        domain.save(update_fields=["dns_results", "dns_checked_at"])
    elif domain.status == DomainStatus.PENDING_DNS and all_pass:
        domain.verified_at = now
        domain.save(update_fields=CHECK_FIELDS)
        domain_status_set(
            domain=domain,
            status=DomainStatus.VERIFIED,
            actor=actor,
            now=now,
            reason=_verified_reason(domain),
            action="domain.verify",
        )
    elif domain.status == DomainStatus.VERIFIED and definitive_failure:
        broken = ", ".join(r.kind.upper() for r in gating if r.status == FAIL)
        reason = f"DNS records broke: {broken}. Sending stops until they are fixed."
        domain.save(update_fields=CHECK_FIELDS)
        domain_status_set(
            domain=domain,
            status=DomainStatus.PENDING_DNS,
            actor=actor,
            now=now,
            reason=reason,
            action="domain.dns_broken",
        )
        workspace_owners_email(
            workspace=domain.workspace,
            subject=f"{domain.name} stopped sending: DNS records broke",
            body=f"{reason}\n\n"
            + "\n".join(f"- {r.kind.upper()}: {r.message}" for r in gating if r.status == FAIL)
            + f"\n\nFix them and press Check now on the domain page ({settings.SITE_URL}).",
        )
    else:
        domain.save(update_fields=CHECK_FIELDS)
    wait = (
        ERROR_RECHECK
        if lookup_errors
        else (VERIFIED_RECHECK if domain.status == DomainStatus.VERIFIED else PENDING_RECHECK)
    )
    SendingDomain.objects.filter(pk=domain.pk).update(next_check_at=now + wait)
    return Verification(
        domain=domain,
        results=domain.dns_results,
        verified=domain.status == DomainStatus.VERIFIED,
    )


def domains_recheck_claim(*, now: datetime | None = None, limit: int = 1000) -> list[int]:
    """Claim the domains due for a re-check (a conditional update per row, so two ticks never
    take the same domain); the caller verifies each one."""
    now = now or timezone.now()
    due = list(
        SendingDomain.objects.filter(
            next_check_at__lte=now,
            status__in=[DomainStatus.PENDING_DNS, DomainStatus.VERIFIED],
        )
        .order_by("next_check_at")
        .values_list("pk", "next_check_at")[:limit]
    )
    claimed = []
    for pk, next_at in due:
        if SendingDomain.objects.filter(pk=pk, next_check_at=next_at).update(
            next_check_at=now + ERROR_RECHECK
        ):
            claimed.append(pk)
    return claimed


@dataclass(frozen=True)
class Missing:
    """One thing that keeps a domain from verifying, in words for the pages and the API."""

    kind: str  # ownership | spf | dkim | dmarc
    name: str
    message: str

    def as_dict(self) -> dict[str, str]:
        return {"kind": self.kind, "name": self.name, "message": self.message}


def domain_missing(domain: SendingDomain) -> list[Missing]:
    """The records a domain waiting for DNS still needs, as of its last check: the ones
    verification gates on for how it sends (a pending rotation key never blocks)."""
    if domain.status != DomainStatus.PENDING_DNS or domain.is_demo:
        return []
    results = {(r["kind"], r.get("selector", "")): r for r in domain.dns_results}
    active = next(
        (k.selector for k in domain.dkim_keys.all() if k.state == DkimKeyState.ACTIVE), None
    )
    missing = []
    for record in domain_records(domain):
        if record.kind not in REQUIRED_KINDS or (
            record.kind == "dkim" and record.selector != active
        ):
            continue
        result = results.get((record.kind, record.selector))
        if result is None:
            message = f"Not checked yet: publish the {record.type} record at {record.host}, then "
            message += "press Check now."
        elif result["status"] == PASS:
            continue
        else:
            message = result["message"]
        missing.append(Missing(record.kind, KIND_NAMES[record.kind], message))
    return missing
