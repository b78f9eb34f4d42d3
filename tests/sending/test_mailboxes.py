"""Mailboxes: creation rules, and Test connection against real Dovecot and SMTP servers."""

import logging

import pytest

from accounts.models import AuditLog
from sending.models import Mailbox, MailboxStatus
from sending.services.connection import mailbox_test_connection
from sending.services.mailboxes import mailbox_create
from tests.conftest import external_data, free_port, token_client

pytestmark = pytest.mark.django_db


def connection_results(verified_domain, owner, data: dict) -> dict:
    mailbox = mailbox_create(domain=verified_domain, actor=owner.user, data=data)
    return {r.server: r for r in mailbox_test_connection(mailbox=mailbox)}


def test_right_password_logs_in_to_both_servers(mail_servers, mail_account, verified_domain, owner):
    results = connection_results(verified_domain, owner, external_data(mail_servers, mail_account))
    assert results["smtp"].ok, results["smtp"]
    assert results["imap"].ok, results["imap"]
    assert "Junk" in results["imap"].folders
    mailbox = Mailbox.objects.get()
    assert (mailbox.connection_ok, mailbox.connection_error) == (True, "")


def test_implicit_tls_ports_work(mail_servers, mail_account, verified_domain, owner):
    dovecot, smtp = mail_servers
    data = external_data(
        mail_servers,
        mail_account,
        smtp_port=smtp.tls_port,
        smtp_security="ssl",
        imap_port=dovecot.tls_port,
        imap_security="ssl",
    )
    results = connection_results(verified_domain, owner, data)
    assert results["smtp"].ok and results["imap"].ok


def test_a_wrong_password_says_auth_failed(mail_servers, mail_account, verified_domain, owner):
    data = external_data(mail_servers, mail_account, smtp_password="nope", imap_password="nope")
    results = connection_results(verified_domain, owner, data)
    assert (results["smtp"].reason, results["imap"].reason) == ("auth_failed", "auth_failed")
    assert "app password" in results["smtp"].message
    mailbox = Mailbox.objects.get()
    assert mailbox.connection_ok is False
    assert "rejected the username or password" in mailbox.connection_error


def test_a_wrong_port_says_refused(mail_servers, mail_account, verified_domain, owner):
    closed = free_port()
    data = external_data(mail_servers, mail_account, smtp_port=closed, imap_port=closed)
    results = connection_results(verified_domain, owner, data)
    assert (results["smtp"].reason, results["imap"].reason) == ("refused", "refused")
    assert f":{closed}" in results["smtp"].message


def test_tls_mismatch_says_tls_error(mail_servers, mail_account, verified_domain, owner):
    # SSL/TLS chosen for the plain-text ports: the servers answer in clear text.
    data = external_data(mail_servers, mail_account, smtp_security="ssl", imap_security="ssl")
    results = connection_results(verified_domain, owner, data)
    assert (results["smtp"].reason, results["imap"].reason) == ("tls_error", "tls_error")
    assert "security setting" in results["imap"].message


def test_a_plain_client_on_a_tls_port_times_out_with_a_hint(
    mail_servers, mail_account, verified_domain, owner, settings
):
    settings.MAILBOX_CONNECT_TIMEOUT_SECONDS = 0.5
    dovecot, _ = mail_servers
    data = external_data(mail_servers, mail_account, imap_port=dovecot.tls_port)
    result = connection_results(verified_domain, owner, data)["imap"]
    assert result.reason == "timeout"
    assert "TLS port" in result.message


def test_an_untrusted_certificate_is_a_tls_error(
    mail_servers, mail_account, verified_domain, owner, settings
):
    settings.MAILBOX_TLS_CA_FILE = ""  # the test CA is not trusted now
    results = connection_results(verified_domain, owner, external_data(mail_servers, mail_account))
    assert results["smtp"].reason == "tls_error"
    assert "certificate" in results["smtp"].message


def test_an_unknown_host_says_host_not_found(mail_servers, mail_account, verified_domain, owner):
    data = external_data(
        mail_servers,
        mail_account,
        smtp_host="no-such-host.invalid",
        imap_host="no-such-host.invalid",
    )
    results = connection_results(verified_domain, owner, data)
    assert (results["smtp"].reason, results["imap"].reason) == ("host_not_found", "host_not_found")


def test_internal_addresses_are_refused_by_default(
    mail_servers, mail_account, verified_domain, owner, settings, smtp_auth_server
):
    settings.MAILBOX_ALLOW_PRIVATE_HOSTS = False
    before = len(smtp_auth_server.messages)
    results = connection_results(verified_domain, owner, external_data(mail_servers, mail_account))
    assert (results["smtp"].reason, results["imap"].reason) == (
        "host_not_allowed",
        "host_not_allowed",
    )
    assert len(smtp_auth_server.messages) == before


def test_passwords_are_encrypted_and_never_shown(
    mail_servers, mail_account, verified_domain, owner, owner_client, caplog
):
    caplog.set_level(logging.DEBUG)
    client = token_client(owner)
    payload = {"domain": verified_domain.public_id, **external_data(mail_servers, mail_account)}
    response = client.post("/api/v1/mailboxes/", payload, format="json")
    assert response.status_code == 201, response.json()
    mailbox = Mailbox.objects.get()
    assert mail_account.password not in mailbox.smtp_password_encrypted
    assert mail_account.password not in mailbox.imap_password_encrypted
    tested_response = client.post(f"/api/v1/mailboxes/{mailbox.pk}/test-connection/")
    assert all(r["ok"] for r in tested_response.json())
    pages = [
        response.content,
        client.get(f"/api/v1/mailboxes/{mailbox.pk}/").content,
        client.get("/api/v1/mailboxes/").content,
        tested_response.content,
        owner_client.get(f"/w/{owner.workspace.public_id}/mailboxes/").content,
        owner_client.get(f"/w/{owner.workspace.public_id}/mailboxes/{mailbox.pk}/").content,
        owner_client.get(f"/admin/sending/mailbox/{mailbox.pk}/change/").content,
    ]
    for body in pages:
        assert mail_account.password.encode() not in body
    assert mail_account.password not in caplog.text
    assert "smtp_password" not in response.json()


def test_a_mailbox_needs_a_verified_domain(domain, owner):
    from config.errors import ApplicationError

    with pytest.raises(ApplicationError, match="not verified yet"):
        mailbox_create(
            domain=domain, actor=owner.user, data={"connection": "platform", "local_part": "alex"}
        )
    assert not Mailbox.objects.exists()


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"local_part": "a b"}, "local_part"),
        ({"local_part": "x" * 65}, "local_part"),
        ({"smtp_host": "not a host!"}, "smtp_host"),
        ({"imap_port": 70000}, "imap_port"),
        ({"smtp_security": "maybe"}, "smtp_security"),
        ({"imap_password": ""}, "imap_password"),
        ({"daily_limit": 0}, "daily_limit"),
        ({"daily_limit": 100000}, "daily_limit"),
        ({"display_name": "x" * 121}, "display_name"),
        ({"connection": "carrier-pigeon"}, "connection"),
    ],
)
def test_bad_mailbox_input_gets_a_field_error_and_writes_nothing(
    verified_domain, owner, overrides, field
):
    client = token_client(owner)
    payload = {
        "domain": verified_domain.public_id,
        "connection": "external",
        "local_part": "alex",
        "smtp_host": "smtp.example.com",
        "smtp_port": 587,
        "smtp_security": "starttls",
        "smtp_username": "alex",
        "smtp_password": "pw",
        "imap_host": "imap.example.com",
        "imap_port": 993,
        "imap_security": "ssl",
        "imap_username": "alex",
        "imap_password": "pw",
        **overrides,
    }
    response = client.post("/api/v1/mailboxes/", payload, format="json")
    assert response.status_code == 400, response.json()
    assert field in response.json()["error"]["fields"]
    assert not Mailbox.objects.exists()


def test_google_servers_are_filled_in_from_the_mx(verified_domain, owner):
    verified_domain.provider = "google"
    verified_domain.save()
    mailbox = mailbox_create(
        domain=verified_domain,
        actor=owner.user,
        data={
            "connection": "external",
            "local_part": "alex",
            "smtp_username": "alex@acme-outreach.com",
            "smtp_password": "app-pw",
            "imap_username": "alex@acme-outreach.com",
            "imap_password": "app-pw",
        },
    )
    assert (mailbox.smtp_host, mailbox.smtp_port, mailbox.smtp_security) == (
        "smtp.gmail.com",
        465,
        "ssl",
    )
    assert (mailbox.imap_host, mailbox.imap_port) == ("imap.gmail.com", 993)
    assert mailbox.provider == "google"


def test_the_mailbox_pages_add_and_test_a_mailbox(
    mail_servers, mail_account, verified_domain, owner, owner_client
):
    ws = owner.workspace.public_id
    form = {
        "domain": verified_domain.public_id,
        "warmup_enabled": "on",
        **external_data(mail_servers, mail_account),
    }
    response = owner_client.post(f"/w/{ws}/mailboxes/", form)
    mailbox = Mailbox.objects.get()
    assert response["Location"] == f"/w/{ws}/mailboxes/{mailbox.pk}/"
    fragment = owner_client.post(
        f"/w/{ws}/mailboxes/{mailbox.pk}/test/", HTTP_HX_REQUEST="true"
    ).content.decode()
    assert fragment.lstrip().startswith('<section class="card" id="connection"')
    assert "<html" not in fragment  # the card, not a page
    assert fragment.count('<span class="badge badge-pass">ok</span>') == 2
    assert "Connected" in fragment


def test_platform_mailboxes_and_statuses_are_audited(verified_domain, owner, owner_client):
    ws = owner.workspace.public_id
    owner_client.post(
        f"/w/{ws}/mailboxes/",
        {
            "domain": verified_domain.public_id,
            "connection": "platform",
            "local_part": "Sales",
            "daily_limit": 40,
        },
    )
    mailbox = Mailbox.objects.get(local_part="sales")
    owner_client.post(f"/w/{ws}/mailboxes/{mailbox.pk}/status/", {"action": "pause"})
    mailbox.refresh_from_db()
    assert mailbox.status == MailboxStatus.PAUSED
    owner_client.post(f"/w/{ws}/mailboxes/{mailbox.pk}/status/", {"action": "resume"})
    mailbox.refresh_from_db()
    assert mailbox.status == MailboxStatus.ACTIVE
    actions = list(
        AuditLog.objects.filter(
            object_id=str(mailbox.pk), object_type="sending.Mailbox"
        ).values_list("action", flat=True)
    )
    assert sorted(actions) == ["mailbox.create", "mailbox.pause", "mailbox.resume"]


def test_mailbox_isolation_between_workspaces(
    verified_domain, owner, teammate, stranger, stranger_client
):
    mailbox = mailbox_create(
        domain=verified_domain, actor=owner.user, data={"connection": "platform", "local_part": "a"}
    )
    client = token_client(stranger)
    assert client.get("/api/v1/mailboxes/").json()["results"] == []
    for method, suffix in (
        ("get", ""),
        ("patch", ""),
        ("delete", ""),
        ("post", "test-connection/"),
    ):
        response = getattr(client, method)(
            f"/api/v1/mailboxes/{mailbox.pk}/{suffix}", {}, format="json"
        )
        assert response.status_code == 404, (method, suffix)
    response = client.post(
        "/api/v1/mailboxes/",
        {"domain": verified_domain.public_id, "connection": "platform", "local_part": "b"},
        format="json",
    )
    assert response.status_code == 404
    mine = stranger.workspace.public_id
    assert stranger_client.get(f"/w/{mine}/mailboxes/{mailbox.pk}/").status_code == 404
    assert (
        stranger_client.post(
            f"/w/{mine}/mailboxes/{mailbox.pk}/status/", {"action": "pause"}
        ).status_code
        == 404
    )
    member = token_client(teammate)
    assert (
        member.patch(
            f"/api/v1/mailboxes/{mailbox.pk}/", {"daily_limit": 5}, format="json"
        ).status_code
        == 403
    )
    mailbox.refresh_from_db()
    assert (mailbox.status, mailbox.daily_limit, Mailbox.objects.count()) == ("active", 40, 1)


def test_an_unreadable_folder_list_is_reported(
    mail_servers, mail_account, verified_domain, owner, broken_imap_server
):
    host, port = broken_imap_server
    data = external_data(
        mail_servers, mail_account, imap_host=host, imap_port=port, imap_security="none"
    )
    result = connection_results(verified_domain, owner, data)["imap"]
    assert result.reason == "folders_unreadable"
    assert "mail storage unavailable" in result.message
