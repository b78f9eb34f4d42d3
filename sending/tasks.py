"""Celery adapters for sending domains."""

from celery import shared_task

from sending import services
from sending.models import SendingDomain


@shared_task
def domains_tick() -> dict[str, int]:
    """Fan out due re-checks; end cool-downs, retire replaced DKIM keys, free stale claims."""
    claimed = services.domains_recheck_claim()
    for domain_id in claimed:
        domain_recheck.delay(domain_id)
    return {
        "rechecks": len(claimed),
        "released": services.domains_release_due(),
        "dkim_retired": services.dkim_keys_retire_due(),
        "claims_expired": services.domain_claims_expire(),
    }


@shared_task(autoretry_for=(OSError,), retry_backoff=True, max_retries=3)
def domain_recheck(domain_id: int) -> bool:
    domain = SendingDomain.objects.filter(pk=domain_id).first()
    if domain is None or domain.status == "retired":
        return False
    return services.domain_verify(domain=domain).verified
