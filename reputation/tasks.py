"""Celery adapters for reputation."""

import json
import logging
import urllib.parse

from celery import shared_task
from django.conf import settings
from django.core.cache import cache
from django.core.mail import send_mail

from config.http import post_json
from reputation.core import pool_map, scores
from reputation.services import actions, bad_apples, blocklists, processing
from reputation.services.intake import PROCESSING_SCHEDULED

logger = logging.getLogger(__name__)


@shared_task(acks_late=True)
def records_process() -> int:
    """Process stored records; batches are claimed with SKIP LOCKED, so workers can share."""
    cache.delete(PROCESSING_SCHEDULED)  # batches posted from now on schedule another run
    return processing.records_process()


@shared_task
def scores_recompute_all() -> int:
    return scores.scores_recompute_all()


@shared_task
def mailbox_limits_restore() -> int:
    return actions.mailbox_limits_restore()


def _post(url: str, payload: dict) -> None:
    post_json(url, json.dumps(payload).encode())


@shared_task(autoretry_for=(OSError,), retry_backoff=True, max_retries=5)
def staff_alert_send(subject: str, body: str) -> None:
    """Email staff, and post to the optional webhook and Telegram chat."""
    if settings.STAFF_ALERT_EMAILS:
        send_mail(
            subject=f"[{settings.PRODUCT_NAME} staff] {subject}",
            message=body,
            from_email=None,
            recipient_list=settings.STAFF_ALERT_EMAILS,
        )
    if settings.STAFF_ALERT_WEBHOOK_URL:
        _post(settings.STAFF_ALERT_WEBHOOK_URL, {"subject": subject, "text": body})
    if settings.STAFF_ALERT_TELEGRAM_BOT_TOKEN and settings.STAFF_ALERT_TELEGRAM_CHAT_ID:
        token = urllib.parse.quote(settings.STAFF_ALERT_TELEGRAM_BOT_TOKEN, safe=":")
        _post(
            f"{settings.TELEGRAM_API_URL.rstrip('/')}/bot{token}/sendMessage",
            {"chat_id": settings.STAFF_ALERT_TELEGRAM_CHAT_ID, "text": f"{subject}\n\n{body}"},
        )


@shared_task(bind=True, max_retries=pool_map.BUMP_RETRIES)
def config_epoch_bump(self, nodes: list[str] | None = None) -> None:
    """Bump every node's config epoch (or, on a retry, the nodes that failed), retrying the
    nodes that could not be reached with a growing delay."""
    failed = pool_map.config_epoch_bump(nodes)
    if not failed:
        return
    if self.request.retries >= self.max_retries:
        logger.error(
            "gave up bumping the config epoch on %s after %d attempts; the next full export "
            "bumps every node",
            ", ".join(failed),
            self.request.retries + 1,
        )
        return
    delay = pool_map.BUMP_RETRY_DELAY * 2**self.request.retries
    logger.warning("bumping the config epoch again in %.0f s on %s", delay, ", ".join(failed))
    raise self.retry(args=[failed], countdown=delay)


@shared_task
def pool_map_export() -> int:
    """Periodic full export: repairs any missed single-tenant update."""
    return pool_map.pool_map_export().version


@shared_task
def blocklists_check() -> dict:
    return blocklists.blocklists_check()


@shared_task
def bad_apples_isolate() -> list[str]:
    return bad_apples.bad_apples_isolate()
