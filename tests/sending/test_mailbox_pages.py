"""Mailbox pages: grouped server fields with errors beside them, and an external mailbox that
stays "not connected" (out of warm-up) until Test connection passes, on the pages and the API."""

import re
from html import unescape

import pytest

from sending.models import Mailbox
from sending.services.mailboxes import mailbox_create
from tests.conftest import UNTESTED_SERVERS, external_data, token_client

pytestmark = pytest.mark.django_db

WAITING = "Waiting for a connection test"


def text_of(html: str) -> str:
    return " ".join(unescape(re.sub(r"<[^>]+>", " ", html)).split())


def warmup_of(body: str) -> str:
    return text_of(body.split('id="warmup-state"', 1)[1].split(">", 1)[1].split("</span>", 1)[0])


def row_of(body: str, mailbox: Mailbox) -> str:
    return text_of(body.split(f'data-mailbox="{mailbox.pk}"', 1)[1].split("</tr>", 1)[0])


def fieldset(body: str, legend: str) -> str:
    return body.split(f"<legend>{legend}", 1)[1].split("</fieldset>", 1)[0]


@pytest.fixture
def external(verified_domain, owner) -> Mailbox:
    """An external mailbox whose servers were never tested (nothing listens there)."""
    return mailbox_create(
        domain=verified_domain,
        actor=owner.user,
        data={
            "connection": "external",
            "local_part": "alex",
            "warmup_enabled": True,
            **UNTESTED_SERVERS,
        },
    )


def test_it_counts_only_tested_external_mailboxes_as_connected(external, verified_domain, owner):
    platform = mailbox_create(
        domain=verified_domain, actor=owner.user, data={"connection": "platform", "local_part": "p"}
    )
    assert (platform.is_connected, platform.warmup_status) == (True, "enrolled")
    assert (external.is_connected, external.warmup_status) == (False, "waiting_for_connection_test")
    assert not external.warmup_active
    for ok, connected in ((True, True), (False, False), (None, False)):
        external.connection_ok = ok
        assert external.is_connected is connected
    external.warmup_enabled = False
    assert external.warmup_status == "off"


def test_the_list_shows_an_untested_mailbox_as_not_connected_with_the_button(
    external, owner, owner_client
):
    body = owner_client.get(f"/w/{owner.workspace.public_id}/mailboxes/").content.decode()
    row = row_of(body, external)
    assert "Not connected" in row
    assert WAITING in row
    assert "enrolled" not in row.lower()
    assert "Test connection" in row


def test_the_page_shows_not_connected_and_the_servers_in_two_fieldsets(
    external, owner, owner_client
):
    body = owner_client.get(
        f"/w/{owner.workspace.public_id}/mailboxes/{external.pk}/"
    ).content.decode()
    summary = body.split('data-testid="connection-summary">', 1)[1].split("</p>", 1)[0]
    assert text_of(summary).startswith("Not connected Run Test connection")
    assert 'data-testid="test-connection"' in body
    assert warmup_of(body) == WAITING
    smtp, imap = fieldset(body, "SMTP server"), fieldset(body, "IMAP server")
    for group, host in ((smtp, "smtp.example.net"), (imap, "imap.example.net")):
        for label in ("Host", "Port", "Security", "Username", "New password"):
            assert f">{label}</label>" in group
        assert f'value="{host}"' in group
    # Each label belongs to its own control.
    assert '<label for="id_smtp_host">Host</label>' in smtp


def test_an_untested_mailbox_is_waiting_in_the_api(external, owner):
    body = token_client(owner).get(f"/api/v1/mailboxes/{external.pk}/").json()
    assert (body["is_connected"], body["warmup_status"]) == (False, "waiting_for_connection_test")


def test_a_failed_submit_keeps_the_passwords_and_puts_errors_beside_their_fields(
    verified_domain, owner, owner_client
):
    form = {
        "domain": verified_domain.public_id,
        "connection": "external",
        "local_part": "alex",
        "smtp_host": "smtp.example.net",
        "smtp_port": "99999",
        "smtp_security": "starttls",
        "smtp_username": "alex",
        "smtp_password": "s3cret-smtp",
        "imap_host": "not a host",
        "imap_port": "993",
        "imap_security": "ssl",
        "imap_username": "alex",
        "imap_password": "s3cret-imap",
    }
    response = owner_client.post(f"/w/{owner.workspace.public_id}/mailboxes/", form)
    body = response.content.decode()
    assert response.status_code == 200
    assert not Mailbox.objects.exists()
    smtp, imap = fieldset(body, "SMTP server"), fieldset(body, "IMAP server")
    assert "between 1 and 65535" in smtp.split('id="id_smtp_port_error"', 1)[1]
    assert "host name" in imap.split('id="id_imap_host_error"', 1)[1]
    assert 'value="s3cret-smtp"' in smtp
    assert 'value="s3cret-imap"' in imap
    assert re.search(r'value="external"[^>]*checked', body)  # still the external choice


def test_adding_and_testing_an_external_mailbox_connects_it(
    mail_servers,
    mail_account,
    verified_domain,
    owner,
    owner_client,
):
    ws = owner.workspace.public_id
    form = {"domain": verified_domain.public_id, "warmup_enabled": "on"}
    form.update(external_data(mail_servers, mail_account))
    response = owner_client.post(f"/w/{ws}/mailboxes/", form)
    mailbox = Mailbox.objects.get()
    page = f"/w/{ws}/mailboxes/{mailbox.pk}/"
    assert response["Location"] == page
    body = text_of(owner_client.get(page).content.decode())
    assert "Run Test connection to connect it" in body
    assert WAITING in body

    # Without JavaScript the button posts and the page reloads with the verdict.
    response = owner_client.post(f"{page}test/")
    assert response["Location"] == page
    body = owner_client.get(page).content.decode()
    assert "is connected: both servers accept it" in text_of(body)
    assert warmup_of(body) == "Enrolled"
    listed = owner_client.get(f"/w/{ws}/mailboxes/").content.decode()
    assert "Connected" in row_of(listed, mailbox)
    assert "Enrolled" in row_of(listed, mailbox)


def test_changing_the_servers_on_the_page_disconnects_until_tested_again(
    external, owner, owner_client
):
    Mailbox.objects.filter(pk=external.pk).update(connection_ok=True)
    page = f"/w/{owner.workspace.public_id}/mailboxes/{external.pk}/"
    form = {
        "display_name": "Alex",
        "daily_limit": "40",
        "warmup_enabled": "on",
        "smtp_host": "mail.example.org",
        "smtp_port": "465",
        "smtp_security": "ssl",
        "smtp_username": "alex@example.org",
        "imap_host": "imap.example.net",
        "imap_port": "993",
        "imap_security": "ssl",
        "imap_username": "alex@example.net",
    }
    response = owner_client.post(page, form)
    assert response["Location"] == page
    external.refresh_from_db()
    assert (external.smtp_host, external.smtp_port, external.smtp_security) == (
        "mail.example.org",
        465,
        "ssl",
    )
    assert external.smtp_username == "alex@example.org"
    assert external.connection_ok is None
    body = text_of(owner_client.get(page).content.decode())
    assert "run Test connection again" in body
    assert WAITING in body


def test_a_patch_of_the_servers_in_the_api_waits_for_a_test_again(external, owner):
    Mailbox.objects.filter(pk=external.pk).update(connection_ok=True)
    client = token_client(owner)
    body = client.get(f"/api/v1/mailboxes/{external.pk}/").json()
    assert (body["is_connected"], body["warmup_status"]) == (True, "enrolled")
    body = client.patch(
        f"/api/v1/mailboxes/{external.pk}/", {"imap_port": 143}, format="json"
    ).json()
    assert (body["is_connected"], body["warmup_status"]) == (False, "waiting_for_connection_test")
