"""The operations console: service-owned fields stay read-only, every state change asks why and
records it, and lifting a penalty says what the DNS re-check found."""

from datetime import timedelta

import pytest
from django.contrib.auth.models import Permission
from django.test import Client
from django.utils import timezone

from accounts.models import AuditLog, User
from accounts.services import api_token_create
from reputation.models import EgressSource, Pool, PoolMembership
from sending.models import DomainStatus, Mailbox, MailboxStatus, SendingDomain
from sending.services.domains import domain_create
from sending.services.status import domain_quarantine

pytestmark = pytest.mark.django_db

REASON = "Ticket 4711: customer asked"


def act(client: Client, path: str, action: str, pk: int, reason: str | None = REASON):
    """Run a console action; with a reason, as if confirmed on its page (follows the redirect)."""
    data: dict = {"action": action, "_selected_action": [pk]}
    if reason is not None:
        data.update(apply="1", reason=reason)
    return client.post(f"/admin/{path}/", data, follow=reason is not None)


def messages_of(response) -> list[str]:
    return [str(m) for m in response.context["messages"]]


def staff_logs(client: Client):
    return AuditLog.objects.filter(actor=client.staff)


@pytest.fixture
def mailbox(sender: SendingDomain) -> Mailbox:
    return sender.mailboxes.get()


@pytest.fixture
def sources(db) -> tuple[EgressSource, EgressSource]:
    active = EgressSource.objects.create(
        name="std-1", source_address="192.0.2.10", ehlo_domain="mta1.example.net"
    )
    standby = EgressSource.objects.create(
        name="std-2",
        source_address="192.0.2.11",
        ehlo_domain="mta2.example.net",
        state=EgressSource.State.STANDBY,
    )
    pool, _ = Pool.objects.get_or_create(name=Pool.Name.STANDARD)
    PoolMembership.objects.create(pool=pool, source=active)
    return active, standby


# --- Service-owned fields are read-only -----------------------------------------------------


def test_it_keeps_scores_tier_and_status_out_of_the_domain_form(staff_client, verified_domain):
    before = SendingDomain.objects.values().get(pk=verified_domain.pk)
    key = verified_domain.dkim_keys.get()
    response = staff_client.post(
        f"/admin/sending/sendingdomain/{verified_domain.pk}/change/",
        {
            "trust_score": "99.5",
            "tier": "premium",
            "score_provisional": "",
            "scoring_version": "9",
            "score_metrics": '{"sent": 1}',
            "score_updated_at_0": "2020-01-01",
            "score_updated_at_1": "00:00:00",
            "rehab_started_at_0": "2020-01-01",
            "rehab_started_at_1": "00:00:00",
            "status": "quarantined",
            "verified_at_0": "",
            "verified_at_1": "",
            "cooldown_until_0": "2030-01-01",
            "cooldown_until_1": "00:00:00",
            "dkim_keys-TOTAL_FORMS": "1",
            "dkim_keys-INITIAL_FORMS": "1",
            "dkim_keys-MIN_NUM_FORMS": "0",
            "dkim_keys-MAX_NUM_FORMS": "1000",
            "dkim_keys-0-id": str(key.pk),
            "dkim_keys-0-domain": str(verified_domain.pk),
            "_save": "Save",
        },
    )
    assert response.status_code == 403
    assert SendingDomain.objects.values().get(pk=verified_domain.pk) == before
    view = staff_client.get(f"/admin/sending/sendingdomain/{verified_domain.pk}/change/")
    body = view.content.decode()
    assert 'name="trust_score"' not in body and 'name="tier"' not in body
    assert "Trust score" in body and "Score metrics" in body


def test_it_keeps_a_mailboxs_status_limit_cut_and_connection_out_of_its_form(staff_client, mailbox):
    Mailbox.objects.filter(pk=mailbox.pk).update(
        daily_limit=24, limit_cut_at=timezone.now(), limit_before_cut=40
    )
    before = Mailbox.objects.values().get(pk=mailbox.pk)
    response = staff_client.post(
        f"/admin/sending/mailbox/{mailbox.pk}/change/",
        {
            "display_name": "Alex",
            "daily_limit": "500",
            "status": "active",
            "status_set_by_system": "",
            "warmup_enabled": "on",
            "limit_cut_at_0": "",
            "limit_cut_at_1": "",
            "limit_before_cut": "",
            "limit_restored_on": "",
            "connection_ok": "true",
            "_save": "Save",
        },
    )
    assert response.status_code == 403
    assert Mailbox.objects.values().get(pk=mailbox.pk) == before


def test_an_egress_source_keeps_its_state_and_warm_up_but_its_ehlo_name_can_be_fixed(
    staff_client, sources
):
    source, _ = sources
    started = source.warmup_started_on
    response = staff_client.post(
        f"/admin/reputation/egresssource/{source.pk}/change/",
        {
            "name": source.name,
            "source_address": source.source_address,
            "ehlo_domain": "mta1.example.org",
            "warmup_started_on": "2020-01-01",
            "state": "pulled",
            "_save": "Save",
        },
    )
    assert response.status_code == 302
    source.refresh_from_db()
    assert source.ehlo_domain == "mta1.example.org"
    assert (source.state, source.warmup_started_on) == (EgressSource.State.ACTIVE, started)


# --- Every state change asks for a reason ----------------------------------------------------


def test_every_state_changing_action_asks_for_a_reason_first(
    staff_client, sender, mailbox, sources, owner
):
    source, standby = sources
    token = api_token_create(user=owner.user, workspace=owner.workspace, name="crm").obj
    quarantined = domain_create(workspace=owner.workspace, actor=None, name="acme-two.com")
    SendingDomain.objects.filter(pk=quarantined.pk).update(status=DomainStatus.QUARANTINED)
    paused = Mailbox.objects.create(
        domain=sender, local_part="paused", connection="platform", status=MailboxStatus.PAUSED
    )
    inactive = User.objects.create_user(email="gone@acme.test", is_active=False)
    cases = [
        ("sending/sendingdomain", "reverify", sender.pk, sender.name),
        ("sending/sendingdomain", "pause_mailboxes", sender.pk, mailbox.address),
        ("sending/sendingdomain", "resume_mailboxes", sender.pk, paused.address),
        ("sending/sendingdomain", "cooldown", sender.pk, sender.name),
        ("sending/sendingdomain", "quarantine", sender.pk, sender.name),
        ("sending/sendingdomain", "release", quarantined.pk, quarantined.name),
        ("sending/mailbox", "pause", mailbox.pk, mailbox.address),
        ("sending/mailbox", "resume", paused.pk, paused.address),
        ("sending/mailbox", "cooldown", mailbox.pk, mailbox.address),
        ("reputation/egresssource", "pull", source.pk, source.name),
        ("reputation/egresssource", "reinstate", standby.pk, standby.name),
        ("reputation/pool", "rotate", Pool.objects.get(name="standard").pk, "standard"),
        ("accounts/user", "deactivate", owner.user.pk, owner.user.email),
        ("accounts/user", "reactivate", inactive.pk, inactive.email),
        ("accounts/apitoken", "revoke", token.pk, "crm"),
    ]
    for path, action, pk, shown in cases:
        response = act(staff_client, path, action, pk, reason=None)
        assert response.status_code == 200, (path, action)
        assert response.templates[0].name == "admin/action_reason.html", (path, action)
        body = response.content.decode()
        assert '<textarea name="reason"' in body, (path, action)
        assert f'<input type="hidden" name="action" value="{action}">' in body, (path, action)
        assert f'name="_selected_action" value="{pk}"' in body, (path, action)
        assert shown in body, (path, action)
    assert not staff_logs(staff_client).exists()
    assert sender.mailboxes.get(pk=mailbox.pk).status == MailboxStatus.ACTIVE


@pytest.mark.parametrize("reason", ["", "   \n "])
def test_an_empty_reason_is_refused_and_changes_nothing(staff_client, verified_domain, reason):
    response = act(staff_client, "sending/sendingdomain", "quarantine", verified_domain.pk, reason)
    assert response.status_code == 200
    assert "Give a reason: it is recorded in the audit log. Nothing was changed." in (
        response.content.decode()
    )
    verified_domain.refresh_from_db()
    assert verified_domain.status == DomainStatus.VERIFIED
    assert not staff_logs(staff_client).exists()


def test_the_reason_and_the_staff_member_land_in_the_audit_log(staff_client, sender, mailbox):
    path = "sending/sendingdomain"
    for action in ("reverify", "pause_mailboxes", "resume_mailboxes", "cooldown", "quarantine"):
        act(staff_client, path, action, sender.pk)
    response = act(staff_client, path, "release", sender.pk)
    assert messages_of(response) == [
        "acme-outreach.com: quarantine lifted; DNS re-checked — verified"
    ]
    for action in ("pause", "resume", "cooldown"):
        act(staff_client, "sending/mailbox", action, mailbox.pk)

    logs = list(staff_logs(staff_client).order_by("id").values_list("action", "reason"))
    assert [a for a, _ in logs] == [
        "domain.dns_recheck",
        "mailbox.pause",
        "mailbox.resume",
        "domain.cooldown",
        "domain.quarantine",
        "domain.quarantine_lift",
        "domain.verify",
        "mailbox.pause",
        "mailbox.resume",
        "mailbox.cooldown",
    ]
    assert all(r.startswith(REASON) for a, r in logs if a != "domain.verify")
    assert dict(logs)["domain.dns_recheck"] == f"{REASON}. DNS re-checked — verified."


def test_pulls_reinstatements_and_rotations_record_the_reason(staff_client, sources):
    source, standby = sources
    response = act(staff_client, "reputation/egresssource", "pull", source.pk)
    assert messages_of(response) == ["std-1: pulled; std-2 promoted from standby."]
    act(staff_client, "reputation/egresssource", "reinstate", source.pk)
    EgressSource.objects.filter(pk=standby.pk).update(state=EgressSource.State.STANDBY)
    pool = Pool.objects.get(name="standard")
    response = act(staff_client, "reputation/pool", "rotate", pool.pk)
    assert messages_of(response)[0].startswith("standard: ")

    for action in ("source.pull", "source.activate", "pool.rotate"):
        log = staff_logs(staff_client).filter(action=action).first()
        assert log is not None and REASON in log.reason, action
    source.refresh_from_db()
    assert REASON in source.state_reason


# --- Lifting a penalty says what the DNS re-check found ---------------------------------------


def test_lifting_a_quarantine_with_broken_dns_says_the_domain_waits_for_dns(
    staff_client, zone, verified_domain
):
    domain_quarantine(domain=verified_domain, actor=None, reason="Spam complaints.")
    zone.remove(verified_domain.name, "TXT")  # the SPF record
    zone.remove(f"_dmarc.{verified_domain.name}")

    response = act(staff_client, "sending/sendingdomain", "release", verified_domain.pk)

    outcome = (
        "quarantine lifted; DNS re-checked — waiting for DNS: SPF missing, DMARC missing "
        "(the domain cannot send until the records check out)"
    )
    assert messages_of(response) == [f"acme-outreach.com: {outcome}"]
    assert response.context["messages"]._loaded_messages[0].level_tag == "warning"
    verified_domain.refresh_from_db()
    assert verified_domain.status == DomainStatus.PENDING_DNS
    log = staff_logs(staff_client).get()
    assert (log.action, log.reason) == ("domain.quarantine_lift", f"{REASON}. Q{outcome[1:]}.")
    assert verified_domain.status_reason == log.reason  # what the customer reads


def test_ending_a_cool_down_with_good_dns_says_verified(staff_client, verified_domain):
    act(staff_client, "sending/sendingdomain", "cooldown", verified_domain.pk)
    response = act(staff_client, "sending/sendingdomain", "release", verified_domain.pk)
    assert messages_of(response) == [
        "acme-outreach.com: cool-down ended; DNS re-checked — verified"
    ]
    verified_domain.refresh_from_db()
    assert verified_domain.status == DomainStatus.VERIFIED
    log = staff_logs(staff_client).get(action="domain.cooldown_end")
    assert log.reason == f"{REASON}. Cool-down ended; DNS re-checked — verified."


# --- The domain list ------------------------------------------------------------------------


def test_the_domain_list_shows_score_and_tier_and_filters_by_them(
    staff_client, verified_domain, stranger, django_assert_max_num_queries
):
    other = domain_create(workspace=stranger.workspace, actor=None, name="globex-mail.com")
    SendingDomain.objects.filter(pk=verified_domain.pk).update(
        trust_score=81.25, tier="premium", score_provisional=False
    )
    SendingDomain.objects.filter(pk=other.pk).update(trust_score=None, tier="rehab")
    for n in range(5):
        domain_create(workspace=stranger.workspace, actor=None, name=f"globex-{n}.com")

    with django_assert_max_num_queries(12):
        body = staff_client.get("/admin/sending/sendingdomain/").content.decode()
    assert "Trust score" in body and "81.2" in body and "premium" in body
    assert "Waiting for DNS" in body and "Verified" in body

    premium = staff_client.get("/admin/sending/sendingdomain/", {"tier": "premium"})
    assert "acme-outreach.com" in premium.content.decode()
    assert "globex-mail.com" not in premium.content.decode()
    waiting = staff_client.get("/admin/sending/sendingdomain/", {"status__exact": "pending_dns"})
    assert "acme-outreach.com" not in waiting.content.decode()
    assert "globex-mail.com" in waiting.content.decode()


def test_staff_without_the_change_permission_see_no_actions(verified_domain):
    viewer = User.objects.create_user(email="viewer@ops.test", is_staff=True)
    viewer.user_permissions.add(Permission.objects.get(codename="view_sendingdomain"))
    client = Client()
    client.force_login(viewer)
    body = client.get("/admin/sending/sendingdomain/").content.decode()
    assert "acme-outreach.com" in body
    assert 'value="quarantine"' not in body
    act(client, "sending/sendingdomain", "quarantine", verified_domain.pk)
    verified_domain.refresh_from_db()
    assert verified_domain.status == DomainStatus.VERIFIED


def test_an_egress_source_can_still_be_added_with_its_warm_up_start(staff_client):
    week_ago = timezone.localdate() - timedelta(days=7)
    response = staff_client.post(
        "/admin/reputation/egresssource/add/",
        {
            "name": "new-1",
            "source_address": "192.0.2.50",
            "ehlo_domain": "mta9.example.net",
            "warmup_started_on": str(week_ago),
            "_save": "Save",
        },
    )
    assert response.status_code == 302
    assert EgressSource.objects.get(name="new-1").warmup_started_on == week_ago


def test_a_domain_page_offers_the_actions_that_apply_to_it(staff_client, verified_domain):
    view = staff_client.get(f"/admin/sending/sendingdomain/{verified_domain.pk}/change/")
    offered = [name for name, _ in view.context["row_actions"]]
    assert "quarantine" in offered and "release" not in offered
    assert "resume_mailboxes" not in offered  # no mailboxes yet

    domain_quarantine(domain=verified_domain, actor=None, reason="Spam complaints.")
    view = staff_client.get(f"/admin/sending/sendingdomain/{verified_domain.pk}/change/")
    offered = [name for name, _ in view.context["row_actions"]]
    assert "release" in offered and "quarantine" not in offered
    body = view.content.decode()
    assert 'value="Lift quarantine / end cool-down (re-checks DNS)"' in body

    # Its audit trail lists this domain's entries only.
    trail = staff_client.get(
        "/admin/accounts/auditlog/",
        {"object_type": "sending.SendingDomain", "object_id": verified_domain.pk},
    )
    assert {log.object_id for log in trail.context["cl"].result_list} == {str(verified_domain.pk)}


def test_the_reason_page_sets_aside_the_rows_an_action_leaves_alone(
    staff_client, verified_domain, owner
):
    other = domain_create(workspace=owner.workspace, actor=None, name="acme-two.com")
    domain_quarantine(domain=verified_domain, actor=None, reason="Spam complaints.")
    response = staff_client.post(
        "/admin/sending/sendingdomain/",
        {"action": "release", "_selected_action": [verified_domain.pk, other.pk]},
    )
    assert [str(d) for d in response.context["selected"]] == ["acme-outreach.com"]
    assert [str(d) for d in response.context["skipped"]] == ["acme-two.com"]


def test_re_verifying_a_cooling_domain_says_it_stays_there(staff_client, zone, verified_domain):
    act(staff_client, "sending/sendingdomain", "cooldown", verified_domain.pk)
    zone.remove(f"_dmarc.{verified_domain.name}")
    response = act(staff_client, "sending/sendingdomain", "reverify", verified_domain.pk)
    assert messages_of(response) == [
        "acme-outreach.com: DNS re-checked — still in cool-down; records: DMARC missing"
    ]
    log = staff_logs(staff_client).get(action="domain.dns_recheck")
    assert log.reason == f"{REASON}. DNS re-checked — still in cool-down; records: DMARC missing."
