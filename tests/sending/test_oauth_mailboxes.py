"""Google and Microsoft mailboxes connected with OAuth: the consent with state and PKCE, the
grant's tokens (refresh ahead of expiry, after a refused login, once across workers), a revoked
grant, and XOAUTH2 logins, against the loopback identity provider, Dovecot and the SMTP server."""

import threading
from datetime import timedelta
from urllib.parse import parse_qs, urlsplit

import pytest
from django.core import mail
from django.db import connection
from django.test import Client
from django.utils import timezone

from accounts.crypto import secret_decrypt
from sending.models import (
    GrantStatus,
    Mailbox,
    MailboxGrant,
    MailboxStatus,
)
from sending.services.connection import mailbox_test_connection
from sending.services.oauth import mailbox_access_token
from tests.conftest import CALLBACK, allow, connect, consent_url, token_client
from tests.servers.chaos import wait_until

pytestmark = pytest.mark.django_db


def page_text(response) -> str:
    return " ".join(m.message for m in response.context["messages"])


def test_connect_with_google_makes_a_connected_mailbox_that_logs_in_with_xoauth2(
    oauth, own_domain, mail_account, owner, owner_client
):
    ws = owner.workspace.public_id
    oauth.sign_in_as(mail_account.address)
    url = consent_url(owner_client, ws)
    query = parse_qs(urlsplit(url).query)
    assert query["scope"] == ["openid email https://mail.google.com/"]
    assert query["code_challenge_method"] == ["S256"]
    assert query["access_type"] == ["offline"]
    assert query["redirect_uri"] == [f"http://testserver{CALLBACK}"]

    response = owner_client.get(allow(url), follow=True)

    assert response.redirect_chain[-1][0] == f"/w/{ws}/mailboxes/"  # ready for the next one
    assert "connected with Google: SMTP and IMAP accept its sign-in" in page_text(response)
    mailbox = Mailbox.objects.get()
    assert mailbox.address == mail_account.address
    assert (mailbox.provider, mailbox.connection, mailbox.connection_ok) == (
        "google",
        "external",
        True,
    )
    assert mailbox.smtp_password_encrypted == mailbox.imap_password_encrypted == ""
    grant = MailboxGrant.objects.get(mailbox=mailbox)
    assert grant.status == GrantStatus.ACTIVE
    refresh = secret_decrypt(grant.refresh_token_encrypted)
    assert refresh in oauth.state.refresh
    # Encrypted at rest: the token appears nowhere in the row as stored.
    with connection.cursor() as cursor:
        cursor.execute("SELECT * FROM sending_mailboxgrant WHERE id = %s", [grant.pk])
        stored = " ".join(str(value) for value in cursor.fetchone())
    assert refresh not in stored
    assert secret_decrypt(grant.access_token_encrypted) not in stored
    assert b"Google sign-in" in owner_client.get(f"/w/{ws}/mailboxes/").content


def test_connect_with_microsoft_asks_for_imap_smtp_and_offline_access_and_reads_the_id_token(
    oauth, own_domain, mail_account, owner, owner_client
):
    ws = owner.workspace.public_id
    oauth.sign_in_as(mail_account.address)
    url = consent_url(owner_client, ws, "microsoft")
    scopes = parse_qs(urlsplit(url).query)["scope"][0].split()
    assert {
        "offline_access",
        "https://outlook.office.com/IMAP.AccessAsUser.All",
        "https://outlook.office.com/SMTP.Send",
    } <= set(scopes)
    owner_client.get(allow(url))
    mailbox = Mailbox.objects.get()
    assert (mailbox.address, mailbox.provider, mailbox.connection_ok) == (
        mail_account.address,
        "microsoft",
        True,
    )


def test_an_address_outside_the_workspace_domains_is_refused(
    oauth, own_domain, owner, owner_client
):
    ws = owner.workspace.public_id
    oauth.sign_in_as("alex@gmail.example")
    response = connect(owner_client, ws)
    assert "alex@gmail.example, which is not on a domain of this workspace" in page_text(response)
    assert "mailbox.test" in page_text(response)
    assert not Mailbox.objects.exists() and not MailboxGrant.objects.exists()


def test_a_forged_or_replayed_callback_changes_nothing(
    oauth, own_domain, mail_account, owner, owner_client
):
    ws = owner.workspace.public_id
    oauth.sign_in_as(mail_account.address)
    before = oauth.token_requests
    response = owner_client.get(f"{CALLBACK}?code=stolen&state=made-up", follow=True)
    assert "not started from this browser session" in page_text(response)
    assert oauth.token_requests == before  # not even an exchange was tried

    back = allow(consent_url(owner_client, ws))
    owner_client.get(back)
    assert Mailbox.objects.count() == 1
    replay = owner_client.get(back, follow=True)
    assert "not started from this browser session" in page_text(replay)
    assert oauth.token_requests == before + 1


def test_a_code_from_another_consent_fails_the_pkce_check(
    oauth, own_domain, mail_account, owner, owner_client, stranger
):
    """An attacker's code slipped into the customer's callback: the customer's code verifier
    does not match the challenge the attacker's code was issued for."""
    ws = owner.workspace.public_id
    attacker = Client()
    attacker.force_login(stranger.user)
    oauth.sign_in_as(mail_account.address)
    attacker_code = parse_qs(
        urlsplit(allow(consent_url(attacker, stranger.workspace.public_id))).query
    )["code"][0]
    victim_state = parse_qs(urlsplit(consent_url(owner_client, ws)).query)["state"][0]

    response = owner_client.get(
        f"{CALLBACK}?code={attacker_code}&state={victim_state}", follow=True
    )

    assert "Google did not accept the sign-in (invalid_grant)" in page_text(response)
    assert not Mailbox.objects.exists() and not MailboxGrant.objects.exists()


def test_cancelling_at_the_provider_connects_nothing(oauth, own_domain, owner, owner_client):
    response = owner_client.get(
        allow(consent_url(owner_client, owner.workspace.public_id), deny="1"), follow=True
    )
    assert "Google did not grant access (you cancelled)" in page_text(response)
    assert not Mailbox.objects.exists()


def test_a_provider_error_in_the_callback_is_shown_short_and_connects_nothing(
    oauth, own_domain, owner, owner_client
):
    state = parse_qs(urlsplit(consent_url(owner_client, owner.workspace.public_id)).query)
    noise = "server_error" + "x" * 5000
    response = owner_client.get(CALLBACK, {"state": state["state"][0], "error": noise}, follow=True)
    shown = page_text(response)
    assert "Google did not grant access (server_errorxx" in shown and len(shown) < 200
    assert not Mailbox.objects.exists() and not MailboxGrant.objects.exists()


def test_only_owners_and_admins_of_the_workspace_start_a_consent(
    oauth, own_domain, owner, teammate, stranger, settings
):
    ws = owner.workspace.public_id
    member = Client()
    member.force_login(teammate.user)
    assert member.post(f"/w/{ws}/mailboxes/connect/google/").status_code == 403
    outsider = Client()
    outsider.force_login(stranger.user)
    assert outsider.post(f"/w/{ws}/mailboxes/connect/google/").status_code == 404
    settings.OAUTH_PROVIDERS = {
        **settings.OAUTH_PROVIDERS,
        "google": {**settings.OAUTH_PROVIDERS["google"], "client_id": ""},
    }
    owner_client = Client()
    owner_client.force_login(owner.user)
    refused = owner_client.post(f"/w/{ws}/mailboxes/connect/google/", follow=True)
    assert "not set up on this server" in page_text(refused)
    page = owner_client.get(f"/w/{ws}/mailboxes/").content.decode()
    assert 'data-testid="connect-google"' not in page
    assert 'data-testid="connect-microsoft"' in page


def test_an_expired_access_token_is_refreshed_once_and_the_login_retried(oauth, connected):
    before = oauth.refresh_requests
    oauth.expire_access_tokens()  # the provider ends them early: our expiry date still says ok

    results = mailbox_test_connection(mailbox=connected)

    assert [(r.server, r.ok) for r in results] == [("smtp", True), ("imap", True)]
    assert oauth.refresh_requests == before + 1  # SMTP refreshed; IMAP used the new token


def test_a_token_about_to_expire_is_refreshed_before_any_login(oauth, connected, settings):
    grant = MailboxGrant.objects.get(mailbox=connected)
    old = secret_decrypt(grant.access_token_encrypted)
    soon = timezone.now() + timedelta(seconds=settings.OAUTH_REFRESH_AHEAD_SECONDS - 10)
    MailboxGrant.objects.filter(pk=grant.pk).update(access_expires_at=soon)
    before = oauth.refresh_requests

    fresh = mailbox_access_token(mailbox_id=connected.pk)

    assert fresh != old and oauth.refresh_requests == before + 1
    assert mailbox_access_token(mailbox_id=connected.pk) == fresh  # kept, no new request
    assert oauth.refresh_requests == before + 1


def test_a_revoked_grant_pauses_the_mailbox_emails_the_owners_and_reconnect_resumes_it(
    oauth, connected, mail_account, owner, owner_client, django_capture_on_commit_callbacks
):
    ws = owner.workspace.public_id
    oauth.revoke_refresh_tokens()
    oauth.expire_access_tokens()
    mail.outbox.clear()

    with django_capture_on_commit_callbacks(execute=True):
        results = mailbox_test_connection(mailbox=connected)

    assert results[0].reason == "oauth_revoked" and not results[0].ok
    connected.refresh_from_db()
    assert connected.status == MailboxStatus.PAUSED
    assert not connected.status_set_by_system  # the customer can fix it: no support needed
    assert connected.status_reason == (
        "Google access was revoked or has expired: reconnect with Google."
    )
    assert MailboxGrant.objects.get(mailbox=connected).status == GrantStatus.REVOKED
    assert [m.subject for m in mail.outbox] == [
        f"[TrustGate] Reconnect {connected.address} with Google"
    ]
    assert mail.outbox[0].to == [owner.user.email]
    page = owner_client.get(f"/w/{ws}/mailboxes/{connected.pk}/").content.decode()
    assert 'data-testid="reconnect-needed"' in page and "Reconnect with Google" in page
    assert "Reconnect with Google: its sign-in stopped working." in page  # the warm-up step
    resumed = owner_client.post(
        f"/w/{ws}/mailboxes/{connected.pk}/status/", {"action": "resume"}, follow=True
    )
    assert "reconnect it with Google" in page_text(resumed)
    connected.refresh_from_db()
    assert connected.status == MailboxStatus.PAUSED
    before = oauth.refresh_requests
    assert mailbox_test_connection(mailbox=connected)[0].reason == "oauth_revoked"
    assert oauth.refresh_requests == before  # a dead grant is not asked again

    response = connect(owner_client, ws, mailbox=str(connected.pk))

    assert response.redirect_chain[-1][0] == f"/w/{ws}/mailboxes/{connected.pk}/"
    assert "reconnected with Google" in page_text(response)
    connected.refresh_from_db()
    assert (connected.status, connected.connection_ok) == (MailboxStatus.ACTIVE, True)
    assert MailboxGrant.objects.get(mailbox=connected).status == GrantStatus.ACTIVE


def test_a_reconnect_signed_in_as_another_address_changes_nothing(
    oauth, connected, owner, owner_client
):
    grant = MailboxGrant.objects.get(mailbox=connected)
    oauth.sign_in_as("someone-else@mailbox.test")
    response = connect(owner_client, owner.workspace.public_id, mailbox=str(connected.pk))
    assert f"this reconnects {connected.address}" in page_text(response)
    assert Mailbox.objects.count() == 1
    assert MailboxGrant.objects.get(mailbox=connected).refresh_token_encrypted == (
        grant.refresh_token_encrypted
    )


def test_google_testing_mode_is_detected_and_said(
    oauth, own_domain, mail_account, owner, owner_client
):
    oauth.state.refresh_expires_in = 604799
    oauth.sign_in_as(mail_account.address)
    response = connect(owner_client, owner.workspace.public_id)
    assert "Google will end this connection in 7 days" in page_text(response)
    mailbox = Mailbox.objects.get()
    page = owner_client.get(f"/w/{owner.workspace.public_id}/mailboxes/{mailbox.pk}/").content
    assert b'data-testid="testing-mode"' in page


@pytest.mark.django_db(transaction=True)
def test_two_workers_refreshing_at_once_make_one_refresh_request(
    oauth, own_domain, mail_account, owner
):
    client = Client()
    client.force_login(owner.user)
    oauth.sign_in_as(mail_account.address)
    connect(client, owner.workspace.public_id)
    mailbox = Mailbox.objects.get()
    MailboxGrant.objects.filter(mailbox=mailbox).update(access_expires_at=timezone.now())
    gate = oauth.state.refresh_gate = threading.Event()  # the first refresh stays in flight
    before = oauth.refresh_requests
    tokens: list[str] = []

    def worker() -> None:
        try:
            tokens.append(mailbox_access_token(mailbox_id=mailbox.pk))
        finally:
            connection.close()

    def waiting_on_the_grant_lock() -> bool:
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT count(*) FROM pg_stat_activity "
                "WHERE datname = current_database() AND wait_event_type = 'Lock'"
            )
            return cursor.fetchone()[0] == 1

    threads = [threading.Thread(target=worker) for _ in range(2)]
    threads[0].start()
    wait_until(lambda: oauth.refresh_requests == before + 1, timeout=10, what="a refresh")
    threads[1].start()
    # The second worker finds the token stale and queues behind the first one's row lock
    # (without the lock it would reach the provider: a second refresh request).
    wait_until(
        lambda: waiting_on_the_grant_lock() or oauth.refresh_requests > before + 1,
        timeout=10,
        what="the second worker",
    )
    gate.set()
    for thread in threads:
        thread.join()

    assert oauth.refresh_requests == before + 1
    assert len(tokens) == 2 and tokens[0] == tokens[1]


def test_support_sees_the_grant_in_the_console_but_never_its_tokens(connected, staff_client):
    grant = MailboxGrant.objects.get(mailbox=connected)
    page = staff_client.get(f"/admin/sending/mailbox/{connected.pk}/change/").content.decode()
    assert "Refresh count" in page and "Google" in page
    for secret in (grant.refresh_token_encrypted, grant.access_token_encrypted):
        assert secret not in page
        assert secret_decrypt(secret) not in page


def test_the_api_says_how_a_mailbox_signs_in_and_refuses_new_servers_for_an_oauth_one(
    connected, owner, owner_client
):
    client = token_client(owner)
    body = client.get(f"/api/v1/mailboxes/{connected.pk}/").json()
    assert body["oauth"]["provider"] == "google" and body["oauth"]["status"] == "active"
    assert "token" not in str(body["oauth"]).lower()

    refused = client.patch(
        f"/api/v1/mailboxes/{connected.pk}/",
        {"smtp_host": "smtp.elsewhere.test", "imap_password": "x"},
        format="json",
    )
    assert refused.status_code == 400
    assert "signs in with Google" in str(refused.json())
    connected.refresh_from_db()
    assert connected.smtp_host != "smtp.elsewhere.test" and connected.imap_password_encrypted == ""
    # The mailbox's own settings still change; the page has no server fields for it.
    ok = client.patch(f"/api/v1/mailboxes/{connected.pk}/", {"daily_limit": 25}, format="json")
    assert ok.status_code == 200 and ok.json()["daily_limit"] == 25
    page = owner_client.get(f"/w/{owner.workspace.public_id}/mailboxes/{connected.pk}/")
    assert b'name="smtp_host"' not in page.content and b'name="daily_limit"' in page.content


def test_a_session_keeps_the_five_newest_consents(oauth, own_domain, mail_account, owner_client):
    ws = own_domain.workspace.public_id
    oauth.sign_in_as(mail_account.address)
    started = [consent_url(owner_client, ws) for _ in range(6)]

    oldest = owner_client.get(allow(started[0]), follow=True)
    assert "not started from this browser session" in page_text(oldest)
    assert not Mailbox.objects.exists()
    owner_client.get(allow(started[1]))
    assert Mailbox.objects.get().address == mail_account.address
