"""A sending domain's lifecycle: claim, release from a penalty, removal, expiry of stale claims."""

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from accounts.models import User, Workspace
from accounts.services import audit_log_record
from billing.services.entitlements import entitlement_require_room
from config.errors import ApplicationError
from sending.dns_checks import ERROR, PASS
from sending.domain_names import DomainNameError, domain_name_normalise
from sending.models import (
    ConnectionType,
    DkimKeyState,
    DomainStatus,
    MailboxStatus,
    SendingDomain,
    SendsThrough,
)
from sending.services.dkim import dkim_key_new
from sending.services.permissions import require_role
from sending.services.status import domain_status_set
from sending.services.verification import (
    PENDING_RECHECK,
    REQUIRED_KINDS,
    Verification,
    domain_verify,
)


def _sends_through(value: str) -> str:
    if value not in SendsThrough.values:
        choices = ", ".join(SendsThrough.values)
        message = f"How the domain sends must be one of: {choices}."
        raise ApplicationError(message, fields={"sends_through": [message]})
    return value


def domain_create(
    *,
    workspace: Workspace,
    actor: User | None,
    name: str,
    sends_through: str = SendsThrough.PLATFORM,
) -> SendingDomain:
    """Claim a domain for the workspace and generate its first DKIM key (kept unused while the
    domain sends through its own servers, ready if it moves to the platform)."""
    if actor is not None:
        require_role(workspace=workspace, user=actor)
    sends_through = _sends_through(sends_through)
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
            # Locked so that two domains added at once cannot both fit the plan's last place.
            Workspace.objects.select_for_update().filter(pk=workspace.pk).first()
            entitlement_require_room(workspace=workspace, resource="domains")
            domain = SendingDomain.objects.create(
                workspace=workspace,
                name=ascii_name,
                sends_through=sends_through,
                next_check_at=now + PENDING_RECHECK,
            )
            key = dkim_key_new(domain=domain, state=DkimKeyState.ACTIVE, now=now)
            audit_log_record(
                action="domain.create",
                actor=actor,
                obj=domain,
                workspace=workspace,
                after={
                    "name": ascii_name,
                    "dkim_selector": key.selector,
                    "sends_through": sends_through,
                },
            )
    except IntegrityError:
        message = f"{ascii_name} was just claimed by another workspace."
        raise ApplicationError(message, code="domain_claimed", fields={"name": [message]}) from None
    return domain


SENDING_CLEARED: dict[str, Any] = {
    "dkim_confirmed_at": None,
    "dkim_confirmed_selector": "",
    "dkim_confirmed_auth_results": "",
    "dkim_last_observation": {},
    "dns_results": [],
    "dns_checked_at": None,
}


def domain_sending_change(
    *, domain: SendingDomain, actor: User | None, sends_through: str
) -> Verification:
    """Change how the domain sends (through the platform, or through its own servers) and
    check its records for the new way at once. Its DKIM confirmation starts over: another
    signer now signs its mail."""
    if actor is not None:
        require_role(workspace=domain.workspace, user=actor)
    sends_through = _sends_through(sends_through)
    with transaction.atomic():
        domain = (
            SendingDomain.objects.select_for_update().select_related("workspace").get(pk=domain.pk)
        )
        if domain.status == DomainStatus.RETIRED:
            raise ApplicationError("This domain was removed.", code="domain_retired")
        if domain.sends_through == sends_through:
            return Verification(domain=domain, results=domain.dns_results, verified=domain.can_send)
        platform_boxes = list(
            domain.mailboxes.filter(connection=ConnectionType.PLATFORM)
            .order_by("local_part")
            .values_list("local_part", flat=True)[:3]
        )
        if sends_through == SendsThrough.OWN_SERVERS and platform_boxes:
            addresses = ", ".join(f"{local}@{domain.name}" for local in platform_boxes)
            message = (
                f"{domain.name} has platform mailboxes ({addresses}): they send through the "
                "platform, which needs its SPF include and DKIM key. Delete them first, or keep "
                "the domain on the platform."
            )
            raise ApplicationError(
                message, code="domain_has_platform_mailboxes", fields={"sends_through": [message]}
            )
        before = domain.sends_through
        domain.sends_through = sends_through
        for field, value in SENDING_CLEARED.items():
            setattr(domain, field, value)
        domain.next_check_at = timezone.now()
        domain.save(update_fields=["sends_through", "next_check_at", *SENDING_CLEARED])
        audit_log_record(
            action="domain.sending_change",
            actor=actor,
            obj=domain,
            workspace=domain.workspace,
            before={"sends_through": before},
            after={"sends_through": sends_through},
        )
    # DNS is asked after the change is committed, outside any lock (as every check is).
    return domain_verify(domain=domain, actor=actor)


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
    domain_status_set(
        domain=domain,
        status=DomainStatus.RETIRED,
        actor=actor,
        now=now,
        reason=reason or "Removed by the customer.",
        action="domain.retire",
    )


# The penalties staff (or time) lift, with the audit action and the words for it.
PENALTIES = {
    DomainStatus.QUARANTINED: ("domain.quarantine_lift", "quarantine lifted"),
    DomainStatus.COOLDOWN: ("domain.cooldown_end", "cool-down ended"),
}
KIND_LABELS = {"ownership": "ownership record"}


@dataclass(frozen=True)
class DnsOutcome:
    """What a DNS check made of a domain, in words for the console and the audit log."""

    domain: SendingDomain
    verification: Verification
    summary: str  # "acme.com: quarantine lifted; DNS re-checked — verified"


def _blocking(domain: SendingDomain, results: list[dict]) -> list[dict]:
    """The records that keep the domain from verifying (the ones verification gates on: a
    pending DKIM key only blocks its switch, not the domain)."""
    keys = domain.dkim_keys.filter(state=DkimKeyState.ACTIVE)
    active = keys.values_list("selector", flat=True).first()
    return [
        r
        for r in results
        if r["kind"] in REQUIRED_KINDS
        and r["status"] != PASS
        and (r["kind"] != "dkim" or r["selector"] == active)
    ]


def _problem(result: dict) -> str:
    kind = result["kind"]
    label = KIND_LABELS.get(kind, kind.upper())
    if result["status"] == ERROR:
        return f"{label} could not be checked"
    words = " ".join(w for w in result["code"].split("_") if w != kind)
    return f"{label} {words or 'wrong'}"


def _dns_verdict(status: str, blocking: list[dict]) -> str:
    """How a domain in `status` stands after a check that found `blocking` records."""
    if status == DomainStatus.VERIFIED:
        return "verified"
    problems = ", ".join(_problem(r) for r in blocking)
    if status == DomainStatus.PENDING_DNS:
        return (
            f"waiting for DNS: {problems or 'not verified yet'} (the domain cannot send until "
            "the records check out)"
        )
    penalty = "in cool-down" if status == DomainStatus.COOLDOWN else "quarantined"
    return f"still {penalty}; records: {problems or 'all check out'}"


def _with_outcome(reason: str, outcome: str) -> str:
    """The staff's reason, then what happened, as one audit-log reason."""
    reason = reason.strip()
    if not reason:
        return outcome[:1].upper() + outcome[1:] + "."
    end = "" if reason[-1] in ".!?" else "."
    return f"{reason}{end} {outcome[:1].upper()}{outcome[1:]}."


def domain_release(*, domain: SendingDomain, actor: User | None, reason: str) -> DnsOutcome:
    """End a cool-down or quarantine and re-check DNS at once: the domain sends again only if
    its records check out. The summary (also the lift's audit reason) says which way it went."""
    if domain.status not in PENALTIES:
        raise ApplicationError(f"{domain.name} is not in cool-down or quarantine.")
    # DNS is asked first, while the penalty still holds and outside any lock, so that the
    # lift's audit entry (and the reason the customer sees) can say what it found.
    checked = domain_verify(domain=domain, actor=actor)
    with transaction.atomic():
        domain = (
            SendingDomain.objects.select_for_update().select_related("workspace").get(pk=domain.pk)
        )
        if domain.status not in PENALTIES:
            raise ApplicationError(f"{domain.name} is no longer in cool-down or quarantine.")
        action, lifted = PENALTIES[DomainStatus(domain.status)]
        # A demo domain's DNS is treated as verified (checks never move it): it goes straight back.
        blocking = [] if domain.is_demo else _blocking(domain, checked.results)
        expected = DomainStatus.PENDING_DNS if blocking else DomainStatus.VERIFIED
        verdict = _dns_verdict(expected, blocking)
        domain_status_set(
            domain=domain,
            status=DomainStatus.VERIFIED if domain.is_demo else DomainStatus.PENDING_DNS,
            actor=actor,
            now=timezone.now(),
            reason=_with_outcome(reason, f"{lifted}; DNS re-checked — {verdict}"),
            action=action,
        )
    if blocking or domain.is_demo:
        verification = Verification(domain=domain, results=checked.results, verified=not blocking)
    else:
        # The records check out: verification itself moves the domain back to verified.
        verification = domain_verify(domain=domain, actor=actor)
        domain = verification.domain
    verdict = _dns_verdict(domain.status, _blocking(domain, verification.results))
    return DnsOutcome(
        domain=domain,
        verification=verification,
        summary=f"{domain.name}: {lifted}; DNS re-checked — {verdict}",
    )


def domain_recheck(*, domain: SendingDomain, actor: User | None, reason: str) -> DnsOutcome:
    """Check the domain's DNS now at staff request; the audit log says why and what was found."""
    before = domain.status
    verification = domain_verify(domain=domain, actor=actor)
    domain = verification.domain
    verdict = _dns_verdict(domain.status, _blocking(domain, verification.results))
    audit_log_record(
        action="domain.dns_recheck",
        actor=actor,
        obj=domain,
        workspace=domain.workspace,
        reason=_with_outcome(reason, f"DNS re-checked — {verdict}"),
        before={"status": before},
        after={"status": domain.status},
    )
    return DnsOutcome(
        domain=domain,
        verification=verification,
        summary=f"{domain.name}: DNS re-checked — {verdict}",
    )


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
