"""A sending domain's lifecycle: claim, release from a penalty, removal, expiry of stale claims."""

from datetime import datetime, timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from accounts.models import User, Workspace
from accounts.services import audit_log_record
from config.errors import ApplicationError
from sending.domain_names import DomainNameError, domain_name_normalise
from sending.models import DkimKeyState, DomainStatus, MailboxStatus, SendingDomain
from sending.services.dkim import dkim_key_new
from sending.services.permissions import require_role
from sending.services.status import domain_status_set
from sending.services.verification import PENDING_RECHECK, domain_verify


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
            key = dkim_key_new(domain=domain, state=DkimKeyState.ACTIVE, now=now)
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
    domain_status_set(
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
