"""The Warming page: one figure per mailbox for today and what sets it, the next 14 days, and
the settings that change them."""

from datetime import timedelta

import pytest
from django.utils import timezone

from accounts.models import AuditLog
from sending.models import DomainStatus, Mailbox, MailboxStatus, SendingDomain
from warming.models import WarmupSettings

pytestmark = pytest.mark.django_db


def _page(client, owner) -> str:
    response = client.get(f"/w/{owner.workspace.public_id}/warming/")
    assert response.status_code == 200
    return response.content.decode()


def test_a_new_mailbox_shows_ramp_day_one_and_its_next_fourteen_days(sender, owner, owner_client):
    body = _page(owner_client, owner)
    assert "alex@acme-outreach.com" in body
    assert "Ramp day 1 of 14" in body
    row = body.split('data-testid="warming-row"', 1)[1]
    today = int(row.split('data-testid="warming-today">', 1)[1].split("<", 1)[0])
    assert 5 <= today <= 6  # 5, varied by up to 10 %
    assert row.count("<span title=") == 14
    ends = (timezone.localdate() + timedelta(days=13)).strftime("%-d %b %Y")
    assert ends in row


def test_a_paused_mailbox_sends_nothing_and_the_page_says_why(sender, owner, owner_client):
    Mailbox.objects.update(status=MailboxStatus.PAUSED, status_reason="bounce spike")
    body = _page(owner_client, owner)
    assert 'data-testid="warming-today">0<' in body
    assert "Paused: the mailbox is paused (bounce spike)" in body
    assert "not while stopped" in body


def test_a_mailbox_of_an_unverified_domain_waits_and_the_page_says_so(sender, owner, owner_client):
    SendingDomain.objects.update(status=DomainStatus.PENDING_DNS)
    body = _page(owner_client, owner)
    assert 'data-testid="warming-today">0<' in body
    assert "its domain is not verified yet" in body


def test_settings_out_of_range_are_refused_beside_the_field(sender, owner, owner_client):
    mailbox = Mailbox.objects.get()
    url = f"/w/{owner.workspace.public_id}/warming/{mailbox.pk}/"
    form = {
        "target": "40",
        "reply_rate": "45",
        "window_start": "09:00",
        "window_end": "17:00",
        "time_zone": "Europe/Paris",
    }
    response = owner_client.post(url, form)
    body = response.content.decode()
    assert response.status_code == 200
    assert "Nothing was saved" in body
    assert "less than or equal to 30" in body.split('id="id_reply_rate"', 1)[0]
    assert not WarmupSettings.objects.exists()
    form.update(reply_rate="20", window_end="08:00")
    body = owner_client.post(url, form).content.decode()
    assert "must end after it starts" in body
    form.update(window_end="17:00", time_zone="Mars/Olympus")
    assert "Unknown time zone" in owner_client.post(url, form).content.decode()
    assert not WarmupSettings.objects.exists()


def test_saved_settings_change_the_figure_and_are_audit_logged(sender, owner, owner_client):
    mailbox = Mailbox.objects.get()
    Mailbox.objects.update(daily_limit=3)
    url = f"/w/{owner.workspace.public_id}/warming/{mailbox.pk}/"
    form = {
        "target": "30",
        "reply_rate": "20",
        "window_start": "08:30",
        "window_end": "16:00",
        "time_zone": "Europe/Paris",
        "tag": "sales team",
    }
    assert owner_client.post(url, form).status_code == 302
    saved = WarmupSettings.objects.get()
    assert (saved.target, saved.reply_rate, saved.tag) == (30, 20, "sales team")
    body = _page(owner_client, owner)
    assert "Daily limit 3" in body and "sales team" in body
    log = AuditLog.objects.get(action="warmup.settings")
    assert log.after["target"] == "30" and log.before["target"] == "40"
    form["paused"] = "on"
    owner_client.post(url, form)
    assert "Paused: you paused its warm-up" in _page(owner_client, owner)


def test_members_read_but_cannot_change_and_strangers_see_nothing(
    sender, owner, teammate_client, stranger_client
):
    mailbox = Mailbox.objects.get()
    url = f"/w/{owner.workspace.public_id}/warming/{mailbox.pk}/"
    assert teammate_client.get(url).status_code == 200
    assert teammate_client.post(url, {"target": "10"}).status_code == 403
    assert stranger_client.get(url).status_code == 404
    assert stranger_client.get(f"/w/{owner.workspace.public_id}/warming/").status_code == 404
