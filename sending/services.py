"""Writes and side effects for sending domains, DKIM keys and mailboxes."""

import logging
import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from accounts.crypto import secret_decrypt, secret_encrypt
from accounts.models import Membership, Role, User, Workspace
from accounts.services import audit_log_record, workspace_notify, workspace_owners_email
from config.errors import ApplicationError, PermissionDenied
from sending.connection_test import ConnectionResult, ServerSpec, imap_login, smtp_login
from sending.dkim import dkim_keypair_new, dkim_selector_for
from sending.dns_checks import ERROR, FAIL, PASS, DnsLookup, domain_checks, provider_from_mx
from sending.dns_records import DnsRecord, PlatformDns, records_to_publish
from sending.domain_names import DomainNameError, domain_name_normalise
from sending.models import (
    ConnectionType,
    DkimKey,
    DkimKeyState,
    DomainStatus,
    Mailbox,
    MailboxStatus,
    Provider,
    SendingDomain,
    TlsMode,
)

logger = logging.getLogger(__name__)

PENDING_RECHECK = timedelta(minutes=15)
VERIFIED_RECHECK = timedelta(days=1)
ERROR_RECHECK = timedelta(hours=1)
REQUIRED_KINDS = ("ownership", "spf", "dkim", "dmarc")


def platform_dns() -> PlatformDns:
    return PlatformDns(
        spf_include=settings.PLATFORM_SPF_INCLUDE,
        dmarc_rua=settings.PLATFORM_DMARC_RUA,
        ownership_prefix=settings.PLATFORM_OWNERSHIP_PREFIX,
        tracking_host=settings.PLATFORM_TRACKING_HOST,
        inbound_mx=settings.PLATFORM_INBOUND_MX,
    )


def dns_lookup() -> DnsLookup:
    return DnsLookup(settings.DNS_NAMESERVERS, settings.DNS_TIMEOUT_SECONDS)


def require_role(*, workspace: Workspace, user: User, role: str = Role.ADMIN) -> None:
    membership = Membership.objects.filter(workspace=workspace, user=user).first()
    if membership is None or not membership.has_role(role):
        raise PermissionDenied("Only owners and admins can change domains and mailboxes.")


# --- Domains -----------------------------------------------------------------------------------


def _dkim_key_new(*, domain: SendingDomain, state: str, now: datetime) -> DkimKey:
    taken = set(domain.dkim_keys.values_list("selector", flat=True))
    pair = dkim_keypair_new()
    return DkimKey.objects.create(
        domain=domain,
        selector=dkim_selector_for(now.date(), taken),
        public_key=pair.public_b64,
        private_key_encrypted=secret_encrypt(pair.private_pem),
        state=state,
        activated_at=now if state == DkimKeyState.ACTIVE else None,
    )


def domain_create(*, workspace: Workspace, actor: User | None, name: str) -> SendingDomain:
    """Claim a domain for the workspace and generate its first DKIM key."""
    if actor is not None:
        require_role(workspace=workspace, user=actor)
    try:
        ascii_name = domain_name_normalise(name)
    except DomainNameError as error:
        raise ApplicationError(str(error), fields={"name": [str(error)]}) from None
    claimed = SendingDomain.objects.filter(name=ascii_name).exclude(status=DomainStatus.RETIRED)
    if claimed.filter(workspace=workspace).exists():
        message = f"{ascii_name} is already in this workspace."
        raise ApplicationError(message, code="domain_exists", fields={"name": [message]})
    if claimed.exists():
        message = (
            f"{ascii_name} is already claimed by another workspace. If it is yours, contact "
            "support: we will ask you to prove ownership with a DNS record."
        )
        raise ApplicationError(message, code="domain_claimed", fields={"name": [message]})
    now = timezone.now()
    try:
        with transaction.atomic():
            domain = SendingDomain.objects.create(
                workspace=workspace, name=ascii_name, next_check_at=now + PENDING_RECHECK
            )
            key = _dkim_key_new(domain=domain, state=DkimKeyState.ACTIVE, now=now)
            audit_log_record(
                action="domain.create",
                actor=actor,
                obj=domain,
                workspace=workspace,
                after={"name": ascii_name, "dkim_selector": key.selector},
            )
    except IntegrityError:
        message = f"{ascii_name} was just claimed by another workspace."
        raise ApplicationError(message, code="domain_claimed", fields={"name": [message]}) from None
    return domain


def domain_published_keys(domain: SendingDomain) -> list[DkimKey]:
    """Keys whose TXT record must stay published: signing, waiting to sign, being replaced."""
    live = (DkimKeyState.ACTIVE, DkimKeyState.PENDING, DkimKeyState.RETIRING)
    return [k for k in domain.dkim_keys.all() if k.state in live]


def domain_records(domain: SendingDomain) -> list[DnsRecord]:
    return records_to_publish(
        domain=domain.name,
        ownership_token=domain.ownership_token,
        dkim_keys=[(k.selector, k.public_key) for k in domain_published_keys(domain)],
        platform=platform_dns(),
    )


def _records_to_check(domain: SendingDomain, keys: list[DkimKey]) -> list[DnsRecord]:
    # A retiring key's record may be removed at any time; it is not checked.
    checked = {k.selector for k in keys if k.state != DkimKeyState.RETIRING}
    return [r for r in domain_records(domain) if r.kind != "dkim" or r.selector in checked]


def _domain_status_set(
    *,
    domain: SendingDomain,
    status: str,
    actor: User | None,
    reason: str,
    now: datetime,
    action: str,
    cooldown_until: datetime | None = None,
) -> None:
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
    from reputation.services import scores_recompute
    from reputation.services.pool_map import dkim_key_publish, tenant_pool_publish

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


@dataclass(frozen=True)
class Verification:
    domain: SendingDomain
    results: list[dict]
    verified: bool


def domain_verify(
    *, domain: SendingDomain, actor: User | None = None, now: datetime | None = None
) -> Verification:
    """Check every record now; verify, demote or keep the domain by what DNS says.

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
    )
    return _verification_apply(domain=domain, results=results, actor=actor, now=now)


@transaction.atomic
def _verification_apply(
    *, domain: SendingDomain, results: list, actor: User | None, now: datetime
) -> Verification:
    domain = SendingDomain.objects.select_for_update().select_related("workspace").get(pk=domain.pk)
    if domain.status == DomainStatus.RETIRED:
        raise ApplicationError("This domain was removed.", code="domain_retired")
    keys = list(domain.dkim_keys.all())
    by_selector = {r.selector: r for r in results if r.kind == "dkim"}
    active = next((k for k in keys if k.state == DkimKeyState.ACTIVE), None)
    pending = next((k for k in keys if k.state == DkimKeyState.PENDING), None)
    if (
        pending
        and by_selector.get(pending.selector)
        and by_selector[pending.selector].status == PASS
    ):
        _dkim_switch(domain=domain, new=pending, old=active, actor=actor, now=now)
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
    if mx and mx.found:
        domain.provider = provider_from_mx(mx.found)

    domain.dns_results = [r.as_dict() for r in results]
    domain.dns_checked_at = now
    if domain.status == DomainStatus.PENDING_DNS and all_pass:
        domain.verified_at = now
        domain.save()
        _domain_status_set(
            domain=domain,
            status=DomainStatus.VERIFIED,
            actor=actor,
            now=now,
            reason="SPF, DKIM, DMARC and ownership all check out.",
            action="domain.verify",
        )
    elif domain.status == DomainStatus.VERIFIED and definitive_failure:
        broken = ", ".join(r.kind.upper() for r in gating if r.status == FAIL)
        reason = f"DNS records broke: {broken}. Sending stops until they are fixed."
        domain.save()
        _domain_status_set(
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
        domain.save()
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


def _dkim_switch(
    *, domain: SendingDomain, new: DkimKey, old: DkimKey | None, actor: User | None, now: datetime
) -> None:
    if old is not None:
        old.state = DkimKeyState.RETIRING
        old.retire_after = now + timedelta(days=settings.DKIM_RETIRE_AFTER_DAYS)
        old.save(update_fields=["state", "retire_after"])
    new.state = DkimKeyState.ACTIVE
    new.activated_at = now
    new.save(update_fields=["state", "activated_at"])
    from reputation.services.pool_map import dkim_key_publish

    dkim_key_publish(domain=domain)
    audit_log_record(
        action="dkim.switch",
        actor=actor,
        obj=domain,
        workspace=domain.workspace,
        reason="The new DKIM record verified; signing moved to the new key.",
        before={"selector": old.selector if old else None},
        after={"selector": new.selector},
    )


@transaction.atomic
def dkim_rotation_start(*, domain: SendingDomain, actor: User | None) -> DkimKey:
    """Generate a new key to publish beside the current one; the switch waits for DNS."""
    if actor is not None:
        require_role(workspace=domain.workspace, user=actor)
    if domain.status == DomainStatus.RETIRED:
        raise ApplicationError("This domain was removed.", code="domain_retired")
    if domain.dkim_keys.filter(state=DkimKeyState.PENDING).exists():
        raise ApplicationError(
            "A new DKIM key is already waiting to be published.", code="rotation_in_progress"
        )
    key = _dkim_key_new(domain=domain, state=DkimKeyState.PENDING, now=timezone.now())
    audit_log_record(
        action="dkim.rotation_start",
        actor=actor,
        obj=domain,
        workspace=domain.workspace,
        after={"selector": key.selector},
    )
    return key


def dkim_keys_retire_due(*, now: datetime | None = None) -> int:
    """Retire replaced keys past their grace period and wipe their private key."""
    now = now or timezone.now()
    return DkimKey.objects.filter(state=DkimKeyState.RETIRING, retire_after__lte=now).update(
        state=DkimKeyState.RETIRED, retired_at=now, private_key_encrypted=""
    )


def dkim_private_key(key: DkimKey) -> str:
    """The PEM private key (for the MTA export); only while the key is live."""
    if not key.private_key_encrypted:
        raise ApplicationError("This DKIM key was retired.", code="dkim_retired")
    return secret_decrypt(key.private_key_encrypted)


@transaction.atomic
def domain_retire(*, domain: SendingDomain, actor: User | None, reason: str = "") -> None:
    """Remove a domain: it stops sending, its name is freed, its keys are wiped."""
    if actor is not None:
        require_role(workspace=domain.workspace, user=actor)
        if (
            domain.status in (DomainStatus.QUARANTINED, DomainStatus.COOLDOWN)
            and not actor.is_staff
        ):
            # Removing and re-adding it would start a clean record: the penalty must run out.
            raise ApplicationError(
                f"{domain.name} is {domain.get_status_display().lower()}; it cannot be removed "
                "until that ends. Contact support if you need it gone sooner.",
                code="domain_penalised",
            )
    now = timezone.now()
    domain.mailboxes.exclude(status=MailboxStatus.PAUSED).update(
        status=MailboxStatus.PAUSED, status_reason="Domain removed.", status_changed_at=now
    )
    domain.dkim_keys.exclude(state=DkimKeyState.RETIRED).update(
        state=DkimKeyState.RETIRED, retired_at=now, private_key_encrypted=""
    )
    domain.next_check_at = None
    domain.save(update_fields=["next_check_at"])
    _domain_status_set(
        domain=domain,
        status=DomainStatus.RETIRED,
        actor=actor,
        now=now,
        reason=reason or "Removed by the customer.",
        action="domain.retire",
    )


@transaction.atomic
def domain_cooldown(
    *, domain: SendingDomain, actor: User | None, reason: str, days: int = 14
) -> None:
    """Take the domain out of rotation for `days` (SPEC §3.4)."""
    now = timezone.now()
    _domain_status_set(
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
    _domain_status_set(
        domain=domain,
        status=DomainStatus.QUARANTINED,
        actor=actor,
        now=timezone.now(),
        reason=reason,
        action="domain.quarantine",
    )


@transaction.atomic
def domain_release(*, domain: SendingDomain, actor: User | None, reason: str) -> None:
    """End a cool-down or quarantine; the domain goes back through DNS verification."""
    if domain.status not in (DomainStatus.COOLDOWN, DomainStatus.QUARANTINED):
        raise ApplicationError("This domain is not in cool-down or quarantine.")
    action = (
        "domain.quarantine_lift"
        if domain.status == DomainStatus.QUARANTINED
        else ("domain.cooldown_end")
    )
    _domain_status_set(
        domain=domain,
        status=DomainStatus.PENDING_DNS,
        actor=actor,
        now=timezone.now(),
        reason=reason,
        action=action,
    )
    domain_verify(domain=domain, actor=actor)


def domain_claims_expire(*, now: datetime | None = None) -> int:
    """Free names that were claimed but never verified within DOMAIN_CLAIM_TTL_DAYS."""
    now = now or timezone.now()
    stale = SendingDomain.objects.filter(
        status=DomainStatus.PENDING_DNS,
        verified_at__isnull=True,
        created_at__lte=now - timedelta(days=settings.DOMAIN_CLAIM_TTL_DAYS),
    )
    count = 0
    for domain in stale.select_related("workspace"):
        domain_retire(
            domain=domain,
            actor=None,
            reason=f"Never verified within {settings.DOMAIN_CLAIM_TTL_DAYS} days; name released.",
        )
        count += 1
    return count


def domains_release_due(*, now: datetime | None = None) -> int:
    """End cool-downs whose time is up."""
    now = now or timezone.now()
    due = SendingDomain.objects.filter(status=DomainStatus.COOLDOWN, cooldown_until__lte=now)
    count = 0
    for domain in due.select_related("workspace"):
        domain_release(domain=domain, actor=None, reason="The cool-down period ended.")
        count += 1
    return count


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


# --- Mailboxes ---------------------------------------------------------------------------------

LOCAL_PART = re.compile(r"^[a-z0-9!#$%&'*+/=?^_`{|}~-]+(\.[a-z0-9!#$%&'*+/=?^_`{|}~-]+)*$")
HOSTNAME = re.compile(
    r"^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$"
)
PROVIDER_SERVERS = {
    Provider.GOOGLE: ("smtp.gmail.com", 465, TlsMode.SSL, "imap.gmail.com", 993, TlsMode.SSL),
    Provider.MICROSOFT: (
        "smtp.office365.com",
        587,
        TlsMode.STARTTLS,
        "outlook.office365.com",
        993,
        TlsMode.SSL,
    ),
}


def _clean_server(prefix: str, data: dict, errors: dict, *, creating: bool) -> dict:
    out: dict[str, Any] = {}
    host = str(data.get(f"{prefix}_host") or "").strip().lower().rstrip(".")
    if not HOSTNAME.match(host):
        errors[f"{prefix}_host"] = ["Enter the server's host name, such as smtp.example.com."]
    out[f"{prefix}_host"] = host
    try:
        port = int(data.get(f"{prefix}_port") or 0)
    except (TypeError, ValueError):
        port = 0
    if not 1 <= port <= 65535:
        errors[f"{prefix}_port"] = ["Enter a port between 1 and 65535."]
    out[f"{prefix}_port"] = port
    security = data.get(f"{prefix}_security") or ""
    if security not in TlsMode.values:
        errors[f"{prefix}_security"] = [f"Choose one of {', '.join(TlsMode.values)}."]
    out[f"{prefix}_security"] = security
    username = str(data.get(f"{prefix}_username") or "").strip()
    if not username or len(username) > 254:
        errors[f"{prefix}_username"] = ["Enter the login name (1 to 254 characters)."]
    out[f"{prefix}_username"] = username
    password = data.get(f"{prefix}_password") or ""
    if len(password) > 1024:
        errors[f"{prefix}_password"] = ["At most 1024 characters."]
    elif password:
        out[f"{prefix}_password_encrypted"] = secret_encrypt(password)
    elif creating:
        errors[f"{prefix}_password"] = [
            "Enter the password (an app password for Google/Microsoft)."
        ]
    return out


def _mailbox_fields(data: dict, *, connection: str, creating: bool) -> dict:
    """Validate mailbox input into model fields; ApplicationError with per-field messages."""
    errors: dict[str, list[str]] = {}
    fields: dict[str, Any] = {}
    if "display_name" in data or creating:
        display = " ".join(str(data.get("display_name") or "").split())
        if len(display) > 120:
            errors["display_name"] = ["At most 120 characters."]
        fields["display_name"] = display
    if "daily_limit" in data or creating:
        raw = data.get("daily_limit")
        try:
            limit = 40 if raw in (None, "") else int(raw)
        except (TypeError, ValueError):
            limit = 0
        if not 1 <= limit <= settings.MAILBOX_DAILY_LIMIT_MAX:
            errors["daily_limit"] = [
                f"Enter a daily limit from 1 to {settings.MAILBOX_DAILY_LIMIT_MAX}."
            ]
        fields["daily_limit"] = limit
    if "warmup_enabled" in data:
        fields["warmup_enabled"] = bool(data["warmup_enabled"])
    if connection == ConnectionType.EXTERNAL:
        for prefix in ("smtp", "imap"):
            fields.update(_clean_server(prefix, data, errors, creating=creating))
    if errors:
        raise ApplicationError("Some fields are invalid.", fields=errors)
    return fields


@transaction.atomic
def mailbox_create(*, domain: SendingDomain, actor: User | None, data: dict) -> Mailbox:
    """Add a mailbox on a verified domain (platform-hosted, or the customer's own servers)."""
    if actor is not None:
        require_role(workspace=domain.workspace, user=actor)
    connection = data.get("connection")
    if connection not in ConnectionType.values:
        raise ApplicationError(
            "Choose platform or external.",
            fields={"connection": [f"Choose one of {', '.join(ConnectionType.values)}."]},
        )
    local_part = str(data.get("local_part") or "").strip().lower()
    if not LOCAL_PART.match(local_part) or len(local_part) > 64:
        raise ApplicationError(
            "Enter the part before the @ (letters, digits, dots; at most 64 characters).",
            fields={"local_part": ["Not a valid address part."]},
        )
    if domain.status != DomainStatus.VERIFIED:
        message = (
            f"{domain.name} is not verified yet: publish its DNS records and check them before "
            "adding mailboxes."
        )
        raise ApplicationError(message, code="domain_not_verified", fields={"domain": [message]})
    data = (
        _with_provider_defaults(data, domain.provider)
        if connection == ConnectionType.EXTERNAL
        else data
    )
    fields = _mailbox_fields(data, connection=connection, creating=True)
    if Mailbox.objects.filter(domain=domain, local_part=local_part).exists():
        message = f"{local_part}@{domain.name} already exists."
        raise ApplicationError(message, code="mailbox_exists", fields={"local_part": [message]})
    mailbox = Mailbox.objects.create(
        domain=domain,
        local_part=local_part,
        connection=connection,
        provider=domain.provider,
        **fields,
    )
    audit_log_record(
        action="mailbox.create",
        actor=actor,
        obj=mailbox,
        workspace=domain.workspace,
        after={"address": mailbox.address, "connection": connection},
    )
    return mailbox


def _with_provider_defaults(data: dict, provider: str) -> dict:
    """Fill in Google's or Microsoft's servers when the customer left them empty."""
    preset = PROVIDER_SERVERS.get(provider)
    if not preset:
        return data
    filled = dict(data)
    keys = ("smtp_host", "smtp_port", "smtp_security", "imap_host", "imap_port", "imap_security")
    for key, value in zip(keys, preset, strict=True):
        filled[key] = filled.get(key) or value
    return filled


@transaction.atomic
def mailbox_update(*, mailbox: Mailbox, actor: User | None, data: dict) -> Mailbox:
    """Change a mailbox's settings; an empty password keeps the stored one."""
    if actor is not None:
        require_role(workspace=mailbox.domain.workspace, user=actor)
    fields = _mailbox_fields(data, connection=mailbox.connection, creating=False)
    if mailbox.limit_cut_at and fields.get("daily_limit", 0) > mailbox.daily_limit:
        message = "The daily limit was cut after a bounce spike; it comes back over clean days."
        raise ApplicationError(message, code="limit_cut", fields={"daily_limit": [message]})
    before = {k: getattr(mailbox, k) for k in fields if not k.endswith("_encrypted")}
    for key, value in fields.items():
        setattr(mailbox, key, value)
    mailbox.save()
    audit_log_record(
        action="mailbox.update",
        actor=actor,
        obj=mailbox,
        workspace=mailbox.domain.workspace,
        before=before,
        after={k: getattr(mailbox, k) for k in before},
    )
    return mailbox


@transaction.atomic
def mailbox_delete(*, mailbox: Mailbox, actor: User | None) -> None:
    if actor is not None:
        require_role(workspace=mailbox.domain.workspace, user=actor)
    audit_log_record(
        action="mailbox.delete",
        actor=actor,
        obj=mailbox,
        workspace=mailbox.domain.workspace,
        before={"address": mailbox.address},
    )
    mailbox.delete()


def _mailbox_status_set(
    *,
    mailbox: Mailbox,
    status: str,
    actor: User | None,
    reason: str,
    action: str,
    cooldown_until: datetime | None = None,
) -> Mailbox:
    before = {"status": mailbox.status}
    mailbox.status = status
    mailbox.status_reason = reason
    mailbox.status_changed_at = timezone.now()
    mailbox.cooldown_until = cooldown_until
    mailbox.status_set_by_system = actor is None and status != MailboxStatus.ACTIVE
    mailbox.save(
        update_fields=[
            "status",
            "status_reason",
            "status_changed_at",
            "cooldown_until",
            "status_set_by_system",
        ]
    )
    audit_log_record(
        action=action,
        actor=actor,
        obj=mailbox,
        workspace=mailbox.domain.workspace,
        reason=reason,
        before=before,
        after={"status": status},
    )
    workspace_notify(
        workspace=mailbox.domain.workspace,
        event="mailbox.status",
        payload={"mailbox": mailbox.pk, "status": status, "text": f"{mailbox.address}: {status}"},
    )
    return mailbox


@transaction.atomic
def mailbox_pause(*, mailbox: Mailbox, actor: User | None, reason: str) -> Mailbox:
    """Stop sending from the mailbox until it is resumed."""
    return _mailbox_status_set(
        mailbox=mailbox,
        status=MailboxStatus.PAUSED,
        actor=actor,
        reason=reason,
        action="mailbox.pause",
    )


@transaction.atomic
def mailbox_resume(*, mailbox: Mailbox, actor: User | None, reason: str = "") -> Mailbox:
    """Let a paused or cooling-down mailbox send again."""
    if actor is not None and not actor.is_staff and mailbox.status_set_by_system:
        raise ApplicationError(
            f"{mailbox.address} was stopped automatically ({mailbox.status_reason}) and waits for "
            "review by support.",
            code="mailbox_under_review",
        )
    if mailbox.domain.status != DomainStatus.VERIFIED:
        raise ApplicationError(
            f"{mailbox.domain.name} cannot send right now ({mailbox.domain.get_status_display()})."
        )
    return _mailbox_status_set(
        mailbox=mailbox,
        status=MailboxStatus.ACTIVE,
        actor=actor,
        reason=reason,
        action="mailbox.resume",
    )


@transaction.atomic
def mailbox_cooldown(
    *, mailbox: Mailbox, actor: User | None, reason: str, days: int = 14
) -> Mailbox:
    """Rest the mailbox: no campaign or warm-up mail for `days`."""
    return _mailbox_status_set(
        mailbox=mailbox,
        status=MailboxStatus.COOLDOWN,
        actor=actor,
        reason=reason,
        action="mailbox.cooldown",
        cooldown_until=timezone.now() + timedelta(days=days),
    )


def mailbox_test_connection(*, mailbox: Mailbox) -> list[ConnectionResult]:
    """Log in to the external mailbox's SMTP and IMAP servers and record the outcome."""
    if mailbox.connection != ConnectionType.EXTERNAL:
        raise ApplicationError("Platform mailboxes have no servers of their own to test.")
    options = {
        "timeout": settings.MAILBOX_CONNECT_TIMEOUT_SECONDS,
        "ca_file": settings.MAILBOX_TLS_CA_FILE,
        "allow_private": settings.MAILBOX_ALLOW_PRIVATE_HOSTS,
    }
    results = [
        smtp_login(_server_spec(mailbox, "smtp"), **options),
        imap_login(_server_spec(mailbox, "imap"), **options),
    ]
    failures = [f"{r.server.upper()}: {r.message}" for r in results if not r.ok]
    Mailbox.objects.filter(pk=mailbox.pk).update(
        connection_checked_at=timezone.now(),
        connection_ok=not failures,
        connection_error=" ".join(failures),
    )
    return results


def _server_spec(mailbox: Mailbox, prefix: str) -> ServerSpec:
    encrypted = getattr(mailbox, f"{prefix}_password_encrypted")
    return ServerSpec(
        host=getattr(mailbox, f"{prefix}_host"),
        port=getattr(mailbox, f"{prefix}_port") or 0,
        security=getattr(mailbox, f"{prefix}_security"),
        username=getattr(mailbox, f"{prefix}_username"),
        password=secret_decrypt(encrypted) if encrypted else "",
    )
