"""The loopback mail servers are real: they log in, refuse, speak TLS and deliver."""

import base64
import imaplib
import json
import smtplib
import socket
import ssl
from email.message import EmailMessage

import pytest
from imapclient import IMAPClient
from imapclient.exceptions import LoginError

from tests.servers.mail import DovecotServer, MailAccount, SmtpAuthServer
from tests.servers.oauth import IdentityProvider

TIMEOUT = 5.0


def trusting(ca_file) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(ca_file))


def a_message(account: MailAccount, subject: str = "Hello") -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = account.address
    msg["To"] = account.address
    msg["Subject"] = subject
    msg.set_content("It works.")
    return msg


def smtp_plain(server: SmtpAuthServer) -> smtplib.SMTP:
    return smtplib.SMTP(server.host, server.port, local_hostname="localhost", timeout=TIMEOUT)


# --- IMAP ------------------------------------------------------------------------------------


def test_it_logs_in_to_imap_and_lists_the_folders(
    dovecot: DovecotServer, mail_account: MailAccount
):
    with IMAPClient(dovecot.host, dovecot.port, ssl=False, timeout=TIMEOUT) as client:
        client.login(mail_account.address, mail_account.password)
        names = {name for _flags, _sep, name in client.list_folders()}
        junk = client.find_special_folder(rb"\Junk")

    assert {"INBOX", "Junk", "Sent", "Trash"} <= names
    assert junk == "Junk"
    assert dovecot.maildir_of(mail_account.address).is_dir()


def test_it_refuses_a_wrong_imap_password_with_authenticationfailed(
    dovecot: DovecotServer, mail_account: MailAccount
):
    with (
        IMAPClient(dovecot.host, dovecot.port, ssl=False, timeout=TIMEOUT) as client,
        pytest.raises(LoginError, match="AUTHENTICATIONFAILED"),
    ):
        client.login(mail_account.address, "not-the-password")

    imap = imaplib.IMAP4(dovecot.host, dovecot.port, timeout=TIMEOUT)
    with pytest.raises(imaplib.IMAP4.error, match="AUTHENTICATIONFAILED"):
        imap.login("nobody@mailbox.test", "whatever")
    imap.shutdown()


def test_it_logs_in_to_imap_with_xoauth2_checked_against_the_identity_provider(
    dovecot: DovecotServer, mail_account: MailAccount, identity_provider: IdentityProvider
):
    token = identity_provider.access_token_for(mail_account.address)
    with IMAPClient(dovecot.host, dovecot.port, ssl=False, timeout=TIMEOUT) as client:
        client.oauth2_login(mail_account.address, token)
        assert "INBOX" in {name for _flags, _sep, name in client.list_folders()}
    identity_provider.expire_access_tokens()
    with (
        IMAPClient(dovecot.host, dovecot.port, ssl=False, timeout=TIMEOUT) as client,
        pytest.raises(LoginError),
    ):
        client.oauth2_login(mail_account.address, token)
    # A plain login still works beside it.
    with IMAPClient(dovecot.host, dovecot.port, ssl=False, timeout=TIMEOUT) as client:
        client.login(mail_account.address, mail_account.password)


def xoauth2(address: str, token: str) -> str:
    return base64.b64encode(f"user={address}\x01auth=Bearer {token}\x01\x01".encode()).decode()


def test_it_accepts_smtp_xoauth2_checked_against_the_identity_provider(
    smtp_auth_server: SmtpAuthServer, mail_account: MailAccount, identity_provider: IdentityProvider
):
    token = identity_provider.access_token_for(mail_account.address)
    with smtp_plain(smtp_auth_server) as smtp:
        smtp.ehlo()
        assert "XOAUTH2" in smtp.esmtp_features["auth"]
        code, _ = smtp.docmd("AUTH", f"XOAUTH2 {xoauth2(mail_account.address, token)}")
        assert code == 235
        smtp.send_message(a_message(mail_account, "Sent with a token"))
    assert smtp_auth_server.wait_for(mail_account.address).message["Subject"] == "Sent with a token"
    with smtp_plain(smtp_auth_server) as smtp:
        smtp.ehlo()
        code, error = smtp.docmd("AUTH", f"XOAUTH2 {xoauth2('someone@else.test', token)}")
        assert code == 334 and json.loads(base64.b64decode(error))["status"] == "401"
        assert smtp.docmd("")[0] == 535  # the token is not that address's
    identity_provider.expire_access_tokens()
    with smtp_plain(smtp_auth_server) as smtp:
        smtp.ehlo()
        code, _ = smtp.docmd("AUTH", f"XOAUTH2 {xoauth2(mail_account.address, token)}")
        assert code == 334 and smtp.docmd("")[0] == 535


def test_it_offers_imap_starttls_verified_by_the_test_ca(
    dovecot: DovecotServer, mail_account: MailAccount
):
    with IMAPClient(dovecot.host, dovecot.port, ssl=False, timeout=TIMEOUT) as client:
        assert b"STARTTLS" in client.capabilities()
        client.starttls(trusting(dovecot.ca_file))
        client.login(mail_account.address, mail_account.password)
        assert client.folder_exists("Junk")


def test_it_speaks_implicit_tls_on_the_imaps_port(
    dovecot: DovecotServer, mail_account: MailAccount
):
    context = trusting(dovecot.ca_file)
    with IMAPClient(dovecot.host, dovecot.tls_port, ssl_context=context, timeout=TIMEOUT) as c:
        c.login(mail_account.address, mail_account.password)
        assert c.folder_exists("INBOX")


def test_it_fails_tls_verification_without_the_test_ca(dovecot: DovecotServer):
    with pytest.raises(ssl.SSLCertVerificationError):
        imaplib.IMAP4_SSL(
            dovecot.host, dovecot.tls_port, ssl_context=ssl.create_default_context(), timeout=2
        )


@pytest.mark.parametrize("server_name", ["localhost", "127.0.0.1"])
def test_it_presents_a_certificate_valid_for_localhost_and_its_ip(
    dovecot: DovecotServer, server_name: str
):
    context = trusting(dovecot.ca_file)
    with (
        socket.create_connection((dovecot.host, dovecot.tls_port), timeout=TIMEOUT) as raw,
        context.wrap_socket(raw, server_hostname=server_name) as tls,
    ):
        assert tls.recv(64).startswith(b"* OK")


def test_it_does_not_greet_plain_clients_on_the_imaps_port(dovecot: DovecotServer):
    with socket.create_connection((dovecot.host, dovecot.tls_port), timeout=TIMEOUT) as sock:
        sock.sendall(b"a1 CAPABILITY\r\n")
        answer = b""
        while chunk := sock.recv(4096):
            answer += chunk

    assert b"* OK" not in answer


def test_it_reads_a_message_appended_to_junk(dovecot: DovecotServer, mail_account: MailAccount):
    dovecot.append(mail_account.address, a_message(mail_account, "Spammy").as_bytes(), "Junk")

    with IMAPClient(dovecot.host, dovecot.port, ssl=False, timeout=TIMEOUT) as client:
        client.login(mail_account.address, mail_account.password)
        client.select_folder("Junk", readonly=True)
        [uid] = client.search("ALL")
        envelope = client.fetch([uid], ["ENVELOPE"])[uid][b"ENVELOPE"]

    assert envelope.subject == b"Spammy"


# --- SMTP ------------------------------------------------------------------------------------


def test_it_accepts_smtp_auth_and_delivers_to_the_imap_inbox(
    dovecot: DovecotServer, smtp_auth_server: SmtpAuthServer, mail_account: MailAccount
):
    with smtp_plain(smtp_auth_server) as smtp:
        smtp.login(mail_account.address, mail_account.password)
        smtp.send_message(a_message(mail_account, "Over SMTP"))

    received = smtp_auth_server.wait_for(mail_account.address)
    assert received.mail_from == mail_account.address
    assert received.rcpt_tos == [mail_account.address]
    assert received.message["Subject"] == "Over SMTP"
    with IMAPClient(dovecot.host, dovecot.port, ssl=False, timeout=TIMEOUT) as client:
        client.login(mail_account.address, mail_account.password)
        assert client.select_folder("INBOX", readonly=True)[b"EXISTS"] == 1


def test_it_refuses_a_wrong_smtp_password_with_535(
    smtp_auth_server: SmtpAuthServer, mail_account: MailAccount
):
    with (
        smtp_plain(smtp_auth_server) as smtp,
        pytest.raises(smtplib.SMTPAuthenticationError) as refused,
    ):
        smtp.login(mail_account.address, "not-the-password")

    assert refused.value.smtp_code == 535


def test_it_refuses_smtp_mail_without_auth(
    smtp_auth_server: SmtpAuthServer, mail_account: MailAccount
):
    with (
        smtp_plain(smtp_auth_server) as smtp,
        pytest.raises(smtplib.SMTPSenderRefused) as refused,
    ):
        smtp.send_message(a_message(mail_account))

    assert refused.value.smtp_code == 530


def test_it_offers_smtp_starttls_verified_by_the_test_ca(
    smtp_auth_server: SmtpAuthServer, mail_account: MailAccount
):
    with smtp_plain(smtp_auth_server) as smtp:
        smtp.starttls(context=trusting(smtp_auth_server.ca_file))
        smtp.login(mail_account.address, mail_account.password)
        smtp.send_message(a_message(mail_account, "After STARTTLS"))

    assert smtp_auth_server.wait_for(mail_account.address).message["Subject"] == "After STARTTLS"


def test_it_speaks_implicit_tls_on_the_smtps_port(
    smtp_auth_server: SmtpAuthServer, mail_account: MailAccount
):
    context = trusting(smtp_auth_server.ca_file)
    with smtplib.SMTP_SSL(
        smtp_auth_server.host,
        smtp_auth_server.tls_port,
        local_hostname="localhost",
        context=context,
        timeout=TIMEOUT,
    ) as smtp:
        assert not smtp.has_extn("starttls")
        smtp.login(mail_account.address, mail_account.password)
        smtp.send_message(a_message(mail_account, "Implicit TLS"))

    assert smtp_auth_server.wait_for(mail_account.address).message["Subject"] == "Implicit TLS"


def test_it_fails_smtp_tls_verification_without_the_test_ca(smtp_auth_server: SmtpAuthServer):
    with pytest.raises(ssl.SSLCertVerificationError):
        smtplib.SMTP_SSL(
            smtp_auth_server.host,
            smtp_auth_server.tls_port,
            local_hostname="localhost",
            context=ssl.create_default_context(),
            timeout=2,
        )
