"""Penalties cannot be shrugged off, and one message never counts twice."""

import pytest

from config.errors import ApplicationError
from reputation.core.pool_map import key, kumo_redis, pool_map_export
from reputation.models import Event
from sending.models import Mailbox
from sending.services.domains import domain_retire
from sending.services.mailboxes import mailbox_pause, mailbox_resume, mailbox_update
from sending.services.status import domain_quarantine
from tests.reputation.records import sent, soft_bounce, traffic

pytestmark = pytest.mark.django_db


def test_a_message_retried_past_five_soft_bounces_counts_one_hard_bounce(post, sender):
    message = "e" * 32
    rcpt = "stuck@example.org"
    post(
        [sent(sender, rcpt, message_id=message)]
        + [soft_bounce(sender, rcpt, message_id=message, attempt=n) for n in range(1, 16)]
    )
    assert Event.objects.filter(kind="bounce_hard").count() == 1
    assert sender.daily.get().hard_bounces == 1


def test_a_customer_cannot_retire_a_quarantined_domain_to_start_clean(verified_domain, owner):
    domain_quarantine(domain=verified_domain, actor=None, reason="spam above 0.3 %")
    with pytest.raises(ApplicationError, match="cannot be removed"):
        domain_retire(domain=verified_domain, actor=owner.user)
    verified_domain.refresh_from_db()
    assert verified_domain.status == "quarantined"


def test_an_automatic_pause_waits_for_staff(post, sender, owner):
    post(traffic(sender, 100, bounces=6))
    mailbox = Mailbox.objects.get()
    assert mailbox.status == "paused" and mailbox.status_set_by_system
    with pytest.raises(ApplicationError, match="review by support"):
        mailbox_resume(mailbox=mailbox, actor=owner.user)
    owner.user.is_staff = True
    mailbox_resume(mailbox=mailbox, actor=owner.user)
    mailbox.refresh_from_db()
    assert mailbox.status == "active"
    mailbox_pause(mailbox=mailbox, actor=owner.user, reason="by hand")
    owner.user.is_staff = False
    mailbox_resume(mailbox=mailbox, actor=owner.user)  # a customer's own pause is theirs to lift


def test_a_cut_limit_cannot_be_raised_by_hand(post, sender, owner):
    post(traffic(sender, 100, bounces=4))
    mailbox = Mailbox.objects.get()
    with pytest.raises(ApplicationError, match="comes back over clean days"):
        mailbox_update(mailbox=mailbox, actor=owner.user, data={"daily_limit": 40})
    mailbox.refresh_from_db()
    assert mailbox.daily_limit == 24


def test_the_export_routes_by_status_even_with_a_stale_tier(verified_domain, settings):
    settings.KUMO_REDIS_PREFIX = "test:stale:kumo:"
    type(verified_domain).objects.filter(pk=verified_domain.pk).update(
        status="quarantined", tier="standard"
    )
    pool_map_export()
    client = kumo_redis()
    assert client.hget(key("tenant_pool"), verified_domain.public_id) == b"quarantine"
    for name in client.scan_iter("test:stale:kumo:*"):
        client.delete(name)
