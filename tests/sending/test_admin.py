"""Staff actions on domains and mailboxes go through services and are audit-logged."""

import pytest
from django.test import Client

from accounts.models import AuditLog
from sending.models import DomainStatus, Mailbox, MailboxStatus
from sending.services.mailboxes import mailbox_create

pytestmark = pytest.mark.django_db


def act(client: Client, model: str, action: str, pk: int) -> None:
    response = client.post(
        f"/admin/sending/{model}/",
        {"action": action, "_selected_action": [pk], "apply": "1", "reason": "Support ticket 42"},
    )
    assert response.status_code == 302


def test_staff_cool_down_quarantine_and_lift_a_domain(staff_client, verified_domain):
    act(staff_client, "sendingdomain", "cooldown", verified_domain.pk)
    verified_domain.refresh_from_db()
    assert verified_domain.status == DomainStatus.COOLDOWN
    assert verified_domain.cooldown_until is not None

    act(staff_client, "sendingdomain", "quarantine", verified_domain.pk)
    verified_domain.refresh_from_db()
    assert verified_domain.status == DomainStatus.QUARANTINED

    act(staff_client, "sendingdomain", "release", verified_domain.pk)  # records still published
    verified_domain.refresh_from_db()
    assert verified_domain.status == DomainStatus.VERIFIED

    actions = list(
        AuditLog.objects.filter(object_type="sending.SendingDomain", actor=staff_client.staff)
        .order_by("created_at", "id")
        .values_list("action", flat=True)
    )
    assert actions == [
        "domain.cooldown",
        "domain.quarantine",
        "domain.quarantine_lift",
        "domain.verify",
    ]


def test_staff_reverify_and_see_dns_results(staff_client, zone, verified_domain):
    zone.remove(f"_dmarc.{verified_domain.name}")
    act(staff_client, "sendingdomain", "reverify", verified_domain.pk)
    verified_domain.refresh_from_db()
    assert verified_domain.status == DomainStatus.PENDING_DNS
    page = staff_client.get(f"/admin/sending/sendingdomain/{verified_domain.pk}/change/")
    body = page.content.decode()
    assert "DMARC is missing" in body
    assert "Audit log entries" in body
    assert "PRIVATE KEY" not in body


def test_staff_pause_resume_and_cool_down_a_mailbox(staff_client, verified_domain, owner):
    mailbox = mailbox_create(
        domain=verified_domain, actor=owner.user, data={"connection": "platform", "local_part": "a"}
    )
    for action, status in (("pause", "paused"), ("resume", "active"), ("cooldown", "cooldown")):
        act(staff_client, "mailbox", action, mailbox.pk)
        mailbox.refresh_from_db()
        assert mailbox.status == status
    assert mailbox.cooldown_until is not None
    assert AuditLog.objects.filter(
        object_type="sending.Mailbox", actor=staff_client.staff, action="mailbox.cooldown"
    ).exists()
    assert staff_client.get("/admin/sending/mailbox/", {"q": "acme"}).status_code == 200


def test_a_refused_action_is_reported_and_changes_nothing(staff_client, verified_domain, owner):
    mailbox = mailbox_create(
        domain=verified_domain, actor=owner.user, data={"connection": "platform", "local_part": "a"}
    )
    act(staff_client, "mailbox", "pause", mailbox.pk)
    act(staff_client, "sendingdomain", "quarantine", verified_domain.pk)
    response = staff_client.post(
        "/admin/sending/mailbox/",
        {"action": "resume", "_selected_action": [mailbox.pk], "apply": "1", "reason": "Fixed"},
        follow=True,
    )
    assert "cannot send right now (Quarantined)" in response.content.decode()
    mailbox.refresh_from_db()
    assert mailbox.status == MailboxStatus.PAUSED


def test_an_action_no_selected_row_needs_is_refused_without_asking(staff_client, domain):
    response = staff_client.post(
        "/admin/sending/sendingdomain/",
        {"action": "release", "_selected_action": [domain.pk]},  # not in cool-down or quarantine
        follow=True,
    )
    assert (
        "None of the selected domains is in cool-down or quarantine." in response.content.decode()
    )
    domain.refresh_from_db()
    assert domain.status == DomainStatus.PENDING_DNS
    assert not Mailbox.objects.filter(status=MailboxStatus.PAUSED).exists()


def test_staff_pause_and_resume_all_mailboxes_of_a_domain(staff_client, verified_domain, owner):
    for local_part in ("a", "b"):
        mailbox_create(
            domain=verified_domain,
            actor=owner.user,
            data={"connection": "platform", "local_part": local_part},
        )
    act(staff_client, "sendingdomain", "pause_mailboxes", verified_domain.pk)
    assert set(verified_domain.mailboxes.values_list("status", flat=True)) == {"paused"}
    act(staff_client, "sendingdomain", "resume_mailboxes", verified_domain.pk)
    assert set(verified_domain.mailboxes.values_list("status", flat=True)) == {"active"}
    assert AuditLog.objects.filter(action="mailbox.pause", actor=staff_client.staff).count() == 2
