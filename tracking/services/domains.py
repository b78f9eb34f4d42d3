"""A workspace's custom tracking domain: add it, check its CNAME, remove it.

The customer publishes `<hostname> CNAME <PLATFORM_TRACKING_HOST>`; the check asks the same
resolver the platform's domain checks use. Tracking links move to the hostname once the check
passes and back to the platform's domain when a later check finds the record gone or changed."""

from datetime import datetime, timedelta
from functools import partial
from urllib.parse import urlsplit

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from accounts.models import User, Workspace
from accounts.services import audit_log_record
from config.errors import ApplicationError
from sending.dns_checks import DnsLookupError
from sending.domain_names import DomainNameError, domain_name_normalise, organizational_domain
from sending.services.dns import dns_lookup
from tracking.models import TrackingDomain, TrackingDomainState
from tracking.selectors import tracking_host_forget

RECHECK_EVERY = timedelta(hours=6)


def cname_target() -> str:
    """The host a custom tracking domain must point to."""
    return str(settings.PLATFORM_TRACKING_HOST).lower().rstrip(".")


def _refuse(message: str) -> ApplicationError:
    return ApplicationError(message, code="invalid_hostname", fields={"hostname": [message]})


def tracking_hostname_clean(raw: str) -> str:
    """The hostname in its ASCII form, or a refusal saying why it cannot be used."""
    try:
        hostname = domain_name_normalise(raw)
    except DomainNameError as error:
        raise _refuse(str(error)) from None
    if hostname == organizational_domain(hostname):
        raise _refuse(
            f"Use a subdomain such as track.{hostname}: a domain's own name cannot carry a CNAME."
        )
    ours = {cname_target(), (urlsplit(settings.SITE_URL).hostname or "").lower()}
    if hostname in ours:
        raise _refuse(f"{hostname} is the platform's own host; enter a hostname of your domain.")
    return hostname


def _host_forget(hostname: str) -> None:
    """Drop the door's cached answer for `hostname` now and again at commit (a request read
    in between may have cached the old one)."""
    tracking_host_forget(hostname=hostname)
    transaction.on_commit(partial(tracking_host_forget, hostname=hostname))


@transaction.atomic
def tracking_domain_set(
    *, workspace: Workspace, hostname: str, actor: User | None
) -> TrackingDomain:
    """Use `hostname` for the workspace's tracking links once its CNAME checks out (replacing
    any hostname set before); it starts pending."""
    name = tracking_hostname_clean(hostname)
    existing = TrackingDomain.objects.select_for_update().filter(workspace=workspace).first()
    if existing is not None and existing.hostname == name:
        return existing
    before = {"hostname": existing.hostname} if existing else None
    if existing is not None:
        existing.delete()
    try:
        with transaction.atomic():
            row = TrackingDomain.objects.create(workspace=workspace, hostname=name)
    except IntegrityError:
        raise _refuse(f"{name} is already in use as a tracking domain.") from None
    for host in {name, *(before.values() if before else ())}:
        _host_forget(host)
    audit_log_record(
        action="tracking_domain.set",
        actor=actor,
        obj=row,
        workspace=workspace,
        before=before,
        after={"hostname": name},
    )
    return row


@transaction.atomic
def tracking_domain_check(
    *, tracking_domain: TrackingDomain, now: datetime | None = None
) -> TrackingDomain:
    """Look up the hostname's CNAME: verified when it points to the platform's tracking host,
    failed (with the reason) when it is missing or points elsewhere. A lookup that fails says
    nothing about the record: the state stays and the error is noted."""
    now = now or timezone.now()
    row = TrackingDomain.objects.select_for_update().get(pk=tracking_domain.pk)
    target = cname_target()
    try:
        found = dns_lookup().cname(row.hostname)
    except DnsLookupError as error:
        row.error = f"The DNS lookup did not answer ({error}); checked again later."
    else:
        if found == target:
            if row.state != TrackingDomainState.VERIFIED:
                row.verified_at = now
            row.state, row.error = TrackingDomainState.VERIFIED, ""
        else:
            row.state = TrackingDomainState.FAILED
            row.verified_at = None
            row.error = (
                f"No CNAME record at {row.hostname}: publish {row.hostname} CNAME {target}."
                if found is None
                else f"{row.hostname} points to {found}, not {target}: change the CNAME."
            )
    row.last_checked_at = now
    row.save(update_fields=["state", "error", "verified_at", "last_checked_at"])
    return row


@transaction.atomic
def tracking_domain_remove(*, tracking_domain: TrackingDomain, actor: User | None) -> None:
    """Stop using the hostname; tracking links go back to the platform's domain."""
    audit_log_record(
        action="tracking_domain.remove",
        actor=actor,
        obj=tracking_domain,
        workspace=tracking_domain.workspace,
        before={"hostname": tracking_domain.hostname, "state": tracking_domain.state},
    )
    TrackingDomain.objects.filter(pk=tracking_domain.pk).delete()
    _host_forget(tracking_domain.hostname)


def tracking_domains_recheck(*, now: datetime | None = None, limit: int = 500) -> int:
    """Check the domains checked longest ago (a periodic tick); returns how many."""
    now = now or timezone.now()
    stale = now - RECHECK_EVERY
    rows = list(
        TrackingDomain.objects.filter(last_checked_at__lt=stale).order_by("last_checked_at")[:limit]
    ) + list(TrackingDomain.objects.filter(last_checked_at__isnull=True)[:limit])
    for row in rows:
        tracking_domain_check(tracking_domain=row, now=now)
    return len(rows)
