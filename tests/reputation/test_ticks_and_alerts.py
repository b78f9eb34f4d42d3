"""Window ageing, limit restoration, rehabilitation progress and staff alert channels."""

import json
import threading
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from django.utils import timezone

from reputation.core.scores import scores_recompute_all
from reputation.models import DomainDailyMetrics, ScoreHistory
from reputation.selectors import domain_reputation
from reputation.services.actions import mailbox_limits_restore
from reputation.tasks import staff_alert_send
from sending.models import Mailbox
from tests.reputation.records import sent, traffic

pytestmark = pytest.mark.django_db


def test_window_ageing_drops_old_bounces_and_the_score_recovers(post, sender, settings):
    post(traffic(sender, 100, bounces=5))
    sender.refresh_from_db()
    assert sender.trust_score == 0.0
    old = timezone.now().date() - timedelta(days=settings.REPUTATION_WINDOW_DAYS + 1)
    DomainDailyMetrics.objects.filter(domain=sender).update(day=old)
    post(traffic(sender, 30, prefix="fresh"))
    assert scores_recompute_all() == 0  # already recomputed by the batch above
    sender.refresh_from_db()
    assert sender.score_metrics["sent"] == 30
    assert sender.trust_score == 50.0
    DomainDailyMetrics.objects.filter(domain=sender, day__gt=old).update(
        day=old - timedelta(days=1)
    )
    assert scores_recompute_all() == 1  # the hourly job ages the window out
    sender.refresh_from_db()
    assert (sender.score_metrics["sent"], sender.score_provisional) == (0, True)
    assert ScoreHistory.objects.filter(domain=sender).count() >= 3


def test_a_cut_limit_comes_back_over_clean_days(post, sender):
    post(traffic(sender, 100, bounces=4))
    mailbox = Mailbox.objects.get()
    assert mailbox.daily_limit == 24
    later = timezone.now() + timedelta(days=2)  # 24 h without hard bounces
    limits = []
    for day in range(8):
        mailbox_limits_restore(now=later + timedelta(days=day))
        mailbox.refresh_from_db()
        limits.append(mailbox.daily_limit)
    assert limits[:3] == [27, 30, 33]
    assert limits[-1] == 40 and mailbox.limit_cut_at is None


def test_running_the_restore_twice_on_one_day_steps_the_limit_once(post, sender):
    post(traffic(sender, 100, bounces=4))
    mailbox = Mailbox.objects.get()
    later = timezone.now() + timedelta(days=2)
    assert mailbox_limits_restore(now=later) == 1
    # Later the same UTC day (the suite may run late in the evening).
    same_day = min(later + timedelta(hours=3), later.replace(hour=23, minute=59, second=59))
    assert mailbox_limits_restore(now=same_day) == 0
    mailbox.refresh_from_db()
    assert mailbox.daily_limit == 27
    assert mailbox_limits_restore(now=later + timedelta(days=1)) == 1
    mailbox.refresh_from_db()
    assert mailbox.daily_limit == 30


def test_a_hard_bounce_in_the_last_day_holds_the_restore(post, sender):
    post(traffic(sender, 100, bounces=4))
    mailbox = Mailbox.objects.get()
    assert mailbox_limits_restore(now=timezone.now() + timedelta(hours=21)) == 0
    mailbox.refresh_from_db()
    assert mailbox.daily_limit == 24 and mailbox.limit_restored_on is None


def test_the_restore_is_one_update_whatever_the_number_of_mailboxes(
    sender, django_assert_max_num_queries
):
    template = Mailbox.objects.get()
    cut_at = timezone.now() - timedelta(days=1)
    Mailbox.objects.bulk_create(
        [
            Mailbox(
                domain=sender,
                local_part=f"box{i}",
                connection="platform",
                daily_limit=limit,
                limit_before_cut=original,
                limit_cut_at=cut_at,
            )
            for i, (limit, original) in enumerate([(24, 40), (24, 40), (30, 50), (49, 50)] * 25)
        ]
    )
    template.delete()
    with django_assert_max_num_queries(2):
        assert mailbox_limits_restore() == 100
    limits = Mailbox.objects.values_list("daily_limit", "limit_before_cut", "limit_cut_at")
    assert sorted(set(limits)) == sorted({(27, 40, cut_at), (33, 50, cut_at), (50, None, None)})


def test_rehab_progress_counts_internal_warming_since_the_demotion(post, sender):
    post(traffic(sender, 100, bounces=5))
    sender.refresh_from_db()
    assert sender.tier == "rehab" and sender.rehab_started_at is not None
    before = domain_reputation(sender)["rehab"]
    assert before["progress"] == 0
    warmup = [
        sent(sender, f"peer{i}@peers.example", meta={"tenant": sender.public_id, "kind": "warmup"})
        for i in range(40)
    ]
    post(warmup)
    sender.refresh_from_db()
    after = domain_reputation(sender)["rehab"]
    assert after["progress"] == after["done"] == 40
    assert after["percent"] == 100 * 40 // (40 + after["remaining"])


class _Capture(BaseHTTPRequestHandler):
    received: list = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.received.append((self.path, json.loads(body)))
        self.send_response(200)
        self.end_headers()
        self.wfile.write(b'{"ok": true}')

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def alert_receiver():
    _Capture.received = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Capture)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}", _Capture.received
    server.shutdown()


def test_staff_alerts_go_to_email_webhook_and_telegram(settings, alert_receiver, mailoutbox):
    base, received = alert_receiver
    settings.STAFF_ALERT_EMAILS = ["ops@platform.test"]
    settings.STAFF_ALERT_WEBHOOK_URL = f"{base}/hooks/alerts"
    settings.STAFF_ALERT_TELEGRAM_BOT_TOKEN = "123:abc"
    settings.STAFF_ALERT_TELEGRAM_CHAT_ID = "-10042"
    settings.TELEGRAM_API_URL = base  # a loopback stand-in for api.telegram.org
    staff_alert_send.apply(args=["[critical] demo", "spam above 0.3 %"]).get()
    assert mailoutbox[-1].to == ["ops@platform.test"]
    paths = {path: body for path, body in received}
    assert paths["/hooks/alerts"] == {"subject": "[critical] demo", "text": "spam above 0.3 %"}
    telegram = paths["/bot123:abc/sendMessage"]
    assert telegram == {"chat_id": "-10042", "text": "[critical] demo\n\nspam above 0.3 %"}


@pytest.mark.django_db
def test_a_full_export_bumps_the_config_epoch_on_every_mta_node(settings, alert_receiver):
    from reputation.core.pool_map import pool_map_export

    base, received = alert_receiver
    settings.KUMO_REDIS_PREFIX = "test:epoch:kumo:"
    settings.KUMO_NODES = [f"{base}/node-1", f"{base}/node-2/"]
    pool_map_export()
    assert sorted(path for path, _ in received) == [
        "/node-1/api/admin/bump-config-epoch",
        "/node-2/api/admin/bump-config-epoch",
    ]
