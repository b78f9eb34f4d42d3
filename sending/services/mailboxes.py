"""Mailboxes: create, change, delete, and their status (pause, resume, cool-down)."""

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.db import transaction
from django.utils import timezone

from accounts.crypto import secret_encrypt
from accounts.models import User, Workspace
from accounts.services import audit_log_record, workspace_notify
from billing.services.entitlements import entitlement_require_room
from config.errors import ApplicationError
from sending.mailbox_fields import (
    MailboxInputError,
    connection_parse,
    local_part_parse,
    mailbox_input_parse,
)
from sending.models import (
    ConnectionType,
    DkimState,
    DomainStatus,
    GrantStatus,
    Mailbox,
    MailboxStatus,
    Provider,
    SendingDomain,
    TlsMode,
)
from sending.oauth import ProviderConfig
from sending.services.permissions import require_role
from sending.services.verification import domain_missing

PROVIDER_SERVERS: dict[str, tuple[str, int, str, str, int, str]] = {
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
# Changing any of these means the last connection test no longer speaks for the mailbox.
CONNECTION_FIELDS = frozenset(
    f"{prefix}_{key}"
    for prefix in ("smtp", "imap")
    for key in ("host", "port", "security", "username", "password_encrypted")
)


def _parsed(
    data: dict, *, connection: str, creating: bool, passwords: bool = True
) -> dict[str, Any]:
    """Model fields from the input: the shared parser's verdict, passwords encrypted."""
    try:
        fields = mailbox_input_parse(
            data, connection=connection, creating=creating, passwords=passwords
        )
    except MailboxInputError as error:
        raise ApplicationError("Some fields are invalid.", fields=error.fields) from None
    for prefix in ("smtp", "imap"):
        password = fields.pop(f"{prefix}_password", None)
        if password:
            fields[f"{prefix}_password_encrypted"] = secret_encrypt(password)
    return fields


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


def _oauth_servers(data: dict, config: ProviderConfig, address: str) -> dict:
    """An OAuth mailbox logs in to its provider's servers as its own address, no password."""
    filled = dict(data)
    for prefix, server in (("smtp", config.smtp), ("imap", config.imap)):
        filled.update(
            {
                f"{prefix}_host": server.host,
                f"{prefix}_port": server.port,
                f"{prefix}_security": server.security,
                f"{prefix}_username": address,
            }
        )
    return filled


def mailbox_use_oauth(*, mailbox: Mailbox, oauth: ProviderConfig) -> None:
    """An existing external mailbox signs in with its provider from now on: the provider's
    servers, its own address as the login, no stored passwords, untested until its next test
    (the grant itself is stored by sending.services.oauth)."""
    fields = {
        **_oauth_servers({}, oauth, mailbox.address),
        "smtp_password_encrypted": "",
        "imap_password_encrypted": "",
        "provider": oauth.name,
        "connection_ok": None,
        "connection_checked_at": None,
        "connection_error": "",
    }
    for name, value in fields.items():
        setattr(mailbox, name, value)
    mailbox.save(update_fields=list(fields))


@transaction.atomic
def mailbox_create(
    *,
    domain: SendingDomain,
    actor: User | None,
    data: dict,
    oauth: ProviderConfig | None = None,
) -> Mailbox:
    """Add a mailbox on a verified domain (platform-hosted, or the customer's own servers); an
    external one also on a domain that sends through its own servers and waits for DNS.

    An external mailbox is not connected until a connection test passes. With `oauth`, it logs
    in with the provider's tokens (sending.services.oauth stores the grant) instead of
    passwords."""
    if actor is not None:
        require_role(workspace=domain.workspace, user=actor)
    try:
        connection = connection_parse(data.get("connection"))
        local_part = local_part_parse(data.get("local_part"))
    except MailboxInputError as error:
        message = next(iter(error.fields.values()))[0]
        raise ApplicationError(message, fields=error.fields) from None
    if connection == ConnectionType.PLATFORM and domain.own_servers:
        message = (
            f"{domain.name} sends through its own mail servers, so its mailboxes are external: "
            "connect them with their SMTP and IMAP settings. Platform mailboxes need a domain "
            "that sends through the platform."
        )
        raise ApplicationError(message, code="domain_own_servers", fields={"connection": [message]})
    # An external mailbox on a domain that sends through its own servers may come before the
    # domain's DNS checks out: its connection test works, its warm-up waits for the domain.
    early = domain.own_servers and domain.status == DomainStatus.PENDING_DNS
    if domain.status != DomainStatus.VERIFIED and not early:
        message = (
            f"{domain.name} is not verified yet: publish its DNS records and check them before "
            "adding mailboxes."
        )
        if domain.status != DomainStatus.PENDING_DNS:
            message = f"{domain.name} cannot take new mailboxes while it is "
            message += f"{domain.get_status_display().lower()}."
        raise ApplicationError(message, code="domain_not_verified", fields={"domain": [message]})
    if oauth is not None:
        data = _oauth_servers(data, oauth, f"{local_part}@{domain.name}")
    elif connection == ConnectionType.EXTERNAL:
        data = _with_provider_defaults(data, domain.provider)
    fields = _parsed(data, connection=connection, creating=True, passwords=oauth is None)
    with transaction.atomic():
        # Locked so that two mailboxes added at once cannot both fit the plan's last place.
        Workspace.objects.select_for_update().filter(pk=domain.workspace_id).first()
        if Mailbox.objects.filter(domain=domain, local_part=local_part).exists():
            message = f"{local_part}@{domain.name} already exists."
            raise ApplicationError(message, code="mailbox_exists", fields={"local_part": [message]})
        entitlement_require_room(workspace=domain.workspace, resource="mailboxes")
        mailbox = Mailbox.objects.create(
            domain=domain,
            local_part=local_part,
            connection=connection,
            provider=oauth.name if oauth else domain.provider,
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


@transaction.atomic
def mailbox_update(*, mailbox: Mailbox, actor: User | None, data: dict) -> Mailbox:
    """Change the settings given (an update is partial); an empty password keeps the stored one.
    New server settings take the mailbox back to "not connected" until a test passes."""
    if actor is not None:
        require_role(workspace=mailbox.domain.workspace, user=actor)
    mailbox = (
        Mailbox.objects.select_for_update().select_related("domain__workspace").get(pk=mailbox.pk)
    )
    fields = _parsed(data, connection=mailbox.connection, creating=False)
    servers = sorted(
        k.removesuffix("_encrypted") for k in fields if k.startswith(("smtp_", "imap_"))
    )
    grant = mailbox.oauth_grant
    if grant is not None and servers:
        label = grant.get_provider_display()
        message = (
            f"{mailbox.address} signs in with {label}: its servers and login come from "
            f"{label}. To change them, reconnect it with {label}."
        )
        raise ApplicationError(
            message, code="mailbox_oauth", fields={name: [message] for name in servers}
        )
    if mailbox.limit_cut_at and fields.get("daily_limit", 0) > mailbox.daily_limit:
        message = "The daily limit was cut after a bounce spike; it comes back over clean days."
        raise ApplicationError(message, code="limit_cut", fields={"daily_limit": [message]})
    changed = {k: v for k, v in fields.items() if getattr(mailbox, k) != v}
    before = {k: getattr(mailbox, k) for k in changed if not k.endswith("_encrypted")}
    for key, value in changed.items():
        setattr(mailbox, key, value)
    if CONNECTION_FIELDS & changed.keys():
        mailbox.connection_ok = None
        mailbox.connection_checked_at = None
        mailbox.connection_error = ""
        changed.update(connection_ok=None, connection_checked_at=None, connection_error="")
    if changed:
        mailbox.save(update_fields=list(changed))
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
    """Delete the mailbox (its history stays in the audit log)."""
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
    by_system: bool | None = None,
) -> Mailbox:
    """`by_system` (default: no actor) keeps the mailbox stopped until staff resume it."""
    before = {"status": mailbox.status}
    mailbox.status = status
    mailbox.status_reason = reason
    mailbox.status_changed_at = timezone.now()
    mailbox.cooldown_until = cooldown_until
    if by_system is None:
        by_system = actor is None
    mailbox.status_set_by_system = by_system and status != MailboxStatus.ACTIVE
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
def mailbox_pause(
    *, mailbox: Mailbox, actor: User | None, reason: str, by_system: bool | None = None
) -> Mailbox:
    """Stop sending from the mailbox until it is resumed (an automatic pause waits for staff
    unless `by_system=False`: the customer can fix its cause, e.g. by reconnecting)."""
    return _mailbox_status_set(
        mailbox=mailbox,
        status=MailboxStatus.PAUSED,
        actor=actor,
        reason=reason,
        action="mailbox.pause",
        by_system=by_system,
    )


@transaction.atomic
def mailbox_reconnected(*, mailbox: Mailbox, actor: User | None, reason: str) -> Mailbox:
    """Resume a mailbox that was paused only because its sign-in stopped working."""
    return _mailbox_status_set(
        mailbox=mailbox,
        status=MailboxStatus.ACTIVE,
        actor=actor,
        reason=reason,
        action="mailbox.resume",
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
    grant = mailbox.oauth_grant
    if grant is not None and grant.status == GrantStatus.REVOKED:
        label = grant.get_provider_display()
        raise ApplicationError(
            f"{mailbox.address} cannot sign in to {label} any more: reconnect it with {label} "
            "(it resumes by itself once reconnected).",
            code="mailbox_reconnect_needed",
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


@dataclass(frozen=True)
class WarmupStep:
    """One condition of a mailbox's warm-up, met or not, in words for its page."""

    key: str  # domain | connection | enabled | dkim
    done: bool
    blocking: bool  # warm-up waits for it (DKIM is confirmed by warm-up itself: never blocks)
    text: str


def _domain_step(domain: SendingDomain) -> WarmupStep:
    if domain.status == DomainStatus.VERIFIED:
        return WarmupStep("domain", True, True, f"{domain.name} is verified.")
    if domain.status == DomainStatus.PENDING_DNS:
        problems = "; ".join(f"{m.name}: {m.message}" for m in domain_missing(domain))
        text = f"{domain.name} is not verified yet"
        return WarmupStep("domain", False, True, f"{text}. {problems}" if problems else text + ".")
    status = domain.get_status_display().lower()
    return WarmupStep("domain", False, True, f"{domain.name} is {status}.")


def _dkim_step(domain: SendingDomain) -> WarmupStep:
    if domain.dkim_state == DkimState.CONFIRMED:
        when = f"{domain.dkim_confirmed_at:%d %b %Y}" if domain.dkim_confirmed_at else ""
        selector = domain.dkim_confirmed_selector
        return WarmupStep("dkim", True, False, f"DKIM confirmed on {when} (selector {selector}).")
    if domain.dkim_state == DkimState.FAILED:
        reason = domain.dkim_last_observation.get("reason", "")
        return WarmupStep("dkim", False, False, f"DKIM not confirmed: {reason}")
    return WarmupStep(
        "dkim",
        False,
        False,
        "DKIM pending: confirmed from the first warm-up message the agent reads.",
    )


def mailbox_warmup_steps(mailbox: Mailbox) -> list[WarmupStep]:
    """What a mailbox's warm-up needs, done or not: its domain verified, a passing connection
    test (external), warm-up switched on, and (own servers) the DKIM confirmation."""
    domain = mailbox.domain
    steps = [_domain_step(domain)]
    grant = mailbox.oauth_grant
    if grant is not None and grant.status == GrantStatus.REVOKED:
        label = grant.get_provider_display()
        steps.append(
            WarmupStep(
                "connection", False, True, f"Reconnect with {label}: its sign-in stopped working."
            )
        )
    elif mailbox.connection == ConnectionType.EXTERNAL:
        if mailbox.is_connected:
            steps.append(WarmupStep("connection", True, True, "The connection test passed."))
        else:
            steps.append(
                WarmupStep(
                    "connection",
                    False,
                    True,
                    "Run Test connection: both servers must accept the login.",
                )
            )
    if not mailbox.warmup_enabled:
        steps.append(
            WarmupStep("enabled", False, True, "Warm-up is off for this mailbox (see Settings).")
        )
    if domain.own_servers:
        steps.append(_dkim_step(domain))
    return steps
