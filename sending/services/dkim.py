"""DKIM keys: generation, rotation beside the current key, the switch, retirement."""

from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from accounts.crypto import secret_encrypt
from accounts.models import User
from accounts.services import audit_log_record
from config.errors import ApplicationError
from reputation.core.pool_map import dkim_key_publish
from sending.dkim import dkim_keypair_new, dkim_selector_for
from sending.models import DkimKey, DkimKeyState, DomainStatus, SendingDomain
from sending.services.permissions import require_role


def dkim_key_new(*, domain: SendingDomain, state: str, now: datetime) -> DkimKey:
    """A fresh 2048-bit key with a dated selector, stored encrypted."""
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


def dkim_switch(
    *, domain: SendingDomain, new: DkimKey, old: DkimKey | None, actor: User | None, now: datetime
) -> None:
    """Sign with `new` from now on; `old` stays published until its grace period ends."""
    if old is not None:
        old.state = DkimKeyState.RETIRING
        old.retire_after = now + timedelta(days=settings.DKIM_RETIRE_AFTER_DAYS)
        old.save(update_fields=["state", "retire_after"])
    new.state = DkimKeyState.ACTIVE
    new.activated_at = now
    new.save(update_fields=["state", "activated_at"])
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
    if domain.own_servers:
        raise ApplicationError(
            "This domain sends through its own mail servers, which sign with their own DKIM "
            "key: rotate it there.",
            code="dkim_not_ours",
        )
    if domain.dkim_keys.filter(state=DkimKeyState.PENDING).exists():
        raise ApplicationError(
            "A new DKIM key is already waiting to be published.", code="rotation_in_progress"
        )
    key = dkim_key_new(domain=domain, state=DkimKeyState.PENDING, now=timezone.now())
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
