from celery import shared_task

from tracking.services.domains import tracking_domains_recheck


@shared_task
def tracking_domains_recheck_tick() -> int:
    """Re-check custom tracking domains not checked for a while (safe to run twice)."""
    return tracking_domains_recheck()
