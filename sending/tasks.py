"""Celery adapters for sending domains."""

from celery import shared_task

from sending import services


@shared_task
def domains_tick() -> dict[str, int]:
    """Re-check due domains, end cool-downs, retire replaced DKIM keys, free stale claims."""
    return {
        "rechecked": services.domains_recheck_due(),
        "released": services.domains_release_due(),
        "dkim_retired": services.dkim_keys_retire_due(),
        "claims_expired": services.domain_claims_expire(),
    }
