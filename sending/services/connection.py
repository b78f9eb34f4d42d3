"""Test connection: log in to an external mailbox's own SMTP and IMAP servers."""

from collections.abc import Callable, Mapping

from django.conf import settings
from django.utils import timezone

from accounts.crypto import secret_decrypt
from accounts.models import User
from config.errors import ApplicationError
from sending.connection_test import (
    ConnectionProblem,
    ConnectionResult,
    ServerSpec,
    imap_login,
    smtp_login,
)
from sending.models import ConnectionType, Mailbox, MailboxGrant, MailServers
from sending.services.oauth import (
    Connected,
    GrantUnusable,
    PendingConsent,
    mailbox_access_token,
    oauth_consent_finish,
)


def mailbox_test_connection(*, mailbox: Mailbox) -> list[ConnectionResult]:
    """Log in to the external mailbox's SMTP and IMAP servers and record the outcome; the
    mailbox counts as connected (and may warm up) only after both logins pass."""
    if mailbox.connection != ConnectionType.EXTERNAL:
        raise ApplicationError("Platform mailboxes have no servers of their own to test.")
    options = {
        "timeout": settings.MAILBOX_CONNECT_TIMEOUT_SECONDS,
        "ca_file": settings.MAILBOX_TLS_CA_FILE,
        "allow_private": settings.MAILBOX_ALLOW_PRIVATE_HOSTS,
    }
    results = [
        smtp_login(mailbox_server_spec(mailbox, "smtp"), **options),
        imap_login(mailbox_server_spec(mailbox, "imap"), **options),
    ]
    failures = [f"{r.server.upper()}: {r.message}" for r in results if not r.ok]
    Mailbox.objects.filter(pk=mailbox.pk).update(
        connection_checked_at=timezone.now(),
        connection_ok=not failures,
        connection_error=" ".join(failures),
    )
    return results


def mailbox_oauth_connect(
    *, consent: PendingConsent, actor: User, params: Mapping[str, str]
) -> Connected:
    """Finish a "Connect with Google / Microsoft" (sending.services.oauth) and test the
    mailbox's new sign-in right away; the returned mailbox carries the test's verdict."""
    connected = oauth_consent_finish(consent=consent, actor=actor, params=params)
    mailbox_test_connection(mailbox=connected.mailbox)
    connected.mailbox.refresh_from_db()
    return connected


def mailbox_server_spec(mailbox: MailServers, prefix: str) -> ServerSpec:
    """The mailbox's (or a golden seed's) SMTP or IMAP server and login: the password
    decrypted, or, for a mailbox connected with OAuth, its access tokens (XOAUTH2)."""
    encrypted = getattr(mailbox, f"{prefix}_password_encrypted")
    oauth = None
    if isinstance(mailbox, Mailbox) and MailboxGrant.objects.filter(mailbox=mailbox).exists():
        oauth = _access_tokens(mailbox.pk, prefix)
    return ServerSpec(
        host=getattr(mailbox, f"{prefix}_host"),
        port=getattr(mailbox, f"{prefix}_port") or 0,
        security=getattr(mailbox, f"{prefix}_security"),
        username=getattr(mailbox, f"{prefix}_username"),
        password=secret_decrypt(encrypted) if encrypted and oauth is None else "",
        oauth=oauth,
    )


def _access_tokens(mailbox_id: int, server: str) -> Callable[[str], str]:
    """The token source a login calls: the current token, or a fresh one after `refused`."""

    def token(refused: str) -> str:
        try:
            return mailbox_access_token(mailbox_id=mailbox_id, refused=refused)
        except GrantUnusable as error:
            reason = "oauth_revoked" if error.gone else "oauth_unavailable"
            raise ConnectionProblem(
                ConnectionResult(server, False, reason, error.message)
            ) from error

    return token
