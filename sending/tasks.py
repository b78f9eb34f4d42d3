"""Celery adapters for sending domains."""

from celery import shared_task

from sending.models import SendingDomain
from sending.services.dkim import dkim_keys_retire_due
from sending.services.domains import domain_claims_expire, domains_release_due
from sending.services.verification import domain_verify, domains_recheck_claim


@shared_task
def domains_tick() -> dict[str, int]:
    """Fan out due re-checks; end cool-downs, retire replaced DKIM keys, free stale claims."""
    claimed = domains_recheck_claim()
    for domain_id in claimed:
        domain_recheck.delay(domain_id)
    return {
        "rechecks": len(claimed),
        "released": domains_release_due(),
        "dkim_retired": dkim_keys_retire_due(),
        "claims_expired": domain_claims_expire(),
    }


@shared_task(autoretry_for=(OSError,), retry_backoff=True, max_retries=3)
def domain_recheck(domain_id: int) -> bool:
    domain = SendingDomain.objects.filter(pk=domain_id).first()
    if domain is None or domain.status == "retired":
        return False
    return domain_verify(domain=domain).verified
