"""Real logins to a customer's SMTP and IMAP servers, with a clear reason on failure (no Django).

Reasons: host_not_found, host_not_allowed, refused, timeout, tls_error, auth_failed,
smtp_auth_disabled, oauth_revoked, oauth_unavailable, folders_unreadable, protocol_error.

A spec with `oauth` logs in with XOAUTH2: `oauth("")` gives the current access token; after a
refused login, `oauth(<the refused token>)` gives a fresh one and the login is tried once more.
It raises ConnectionProblem when no token can be had (the grant was revoked, say).
"""

import contextlib
import imaplib
import ipaddress
import smtplib
import socket
import ssl
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from imapclient import IMAPClient, imap4, tls
from imapclient.exceptions import IMAPClientError, LoginError

from sending.oauth import xoauth2


@dataclass(frozen=True)
class ServerSpec:
    host: str
    port: int
    security: str  # ssl | starttls | none
    username: str
    password: str
    oauth: Callable[[str], str] | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True)
class ConnectionResult:
    server: str  # smtp | imap
    ok: bool
    reason: str
    message: str
    folders: tuple[str, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["folders"] = list(self.folders)
        return data


def _tls_context(ca_file: str) -> ssl.SSLContext:
    context = ssl.create_default_context()
    if ca_file:
        context.load_verify_locations(cafile=ca_file)
    return context


def _resolve(host: str, port: int, allow_private: bool) -> tuple[str, ConnectionResult | None]:
    """Resolve once and return the address to connect to: the clients are pinned to it, so a
    name that re-resolves to an internal address later (DNS rebinding) is never followed."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError):
        return "", ConnectionResult("", False, "host_not_found", f"The host {host} does not exist.")
    addresses = [str(info[4][0]) for info in infos]
    if not allow_private:
        for address in addresses:
            if not ipaddress.ip_address(address).is_global:
                return "", ConnectionResult(
                    "",
                    False,
                    "host_not_allowed",
                    f"{host} resolves to an internal address ({address}); the platform does not "
                    "connect to internal networks.",
                )
    return addresses[0], None


class _PinnedSMTP(smtplib.SMTP):
    pinned = ""

    def _get_socket(self, host: str, port: int, timeout: float) -> socket.socket:
        sock: socket.socket = super()._get_socket(self.pinned or host, port, timeout)  # type: ignore[misc]
        return sock


class _PinnedSMTPSSL(smtplib.SMTP_SSL):
    pinned = ""

    def _get_socket(self, host: str, port: int, timeout: float) -> socket.socket:
        # SMTP_SSL still verifies the certificate against the host name (self._host).
        sock: socket.socket = super()._get_socket(self.pinned or host, port, timeout)  # type: ignore[misc]
        return sock


class _PinnedIMAP4(imap4.IMAP4WithTimeout):
    pinned = ""

    def _create_socket(self, timeout: float | None = None) -> socket.socket:
        return socket.create_connection(
            (self.pinned or self.host, self.port), timeout if timeout is not None else self._timeout
        )


class _PinnedIMAP4TLS(tls.IMAP4_TLS):
    pinned = ""

    def _create_socket(self, timeout: float | None = None) -> Any:
        sock = socket.create_connection(
            (self.pinned or self.host, self.port), timeout=timeout or self._timeout
        )
        return tls.wrap_socket(sock, self.ssl_context, self.host)


class _PinnedIMAPClient(IMAPClient):
    """IMAPClient connecting to a fixed address while TLS checks the host name."""

    def __init__(self, *args: Any, pinned: str, **kwargs: Any) -> None:
        self._pinned = pinned
        super().__init__(*args, **kwargs)

    def _create_IMAP4(self) -> Any:
        timeout = getattr(self._timeout, "connect", None)
        cls = _PinnedIMAP4TLS if self.ssl else _PinnedIMAP4
        # The pinned address is set on a subclass so it exists before imaplib connects.
        pinned_cls = type(cls.__name__, (cls,), {"pinned": self._pinned})
        if self.ssl:
            return pinned_cls(self.host, self.port, self.ssl_context, timeout)
        return pinned_cls(self.host, self.port, timeout)


def _classify(server: str, spec: ServerSpec, error: BaseException) -> ConnectionResult:
    where = f"{spec.host}:{spec.port}"
    if isinstance(error, ssl.SSLCertVerificationError):
        return ConnectionResult(
            server,
            False,
            "tls_error",
            f"TLS error at {where}: the certificate is not valid for this host "
            f"({error.verify_message}).",
        )
    if isinstance(error, (ssl.SSLError, smtplib.SMTPNotSupportedError)) or (
        isinstance(error, (IMAPClientError, imaplib.IMAP4.error)) and "STARTTLS" in str(error)
    ):
        return ConnectionResult(
            server,
            False,
            "tls_error",
            f"TLS error at {where}: the server did not speak TLS the way we expected. Check the "
            "security setting: port 465/993 usually means SSL/TLS, 587/143 STARTTLS.",
        )
    if isinstance(error, ConnectionRefusedError):
        return ConnectionResult(
            server,
            False,
            "refused",
            f"Connection refused at {where}: wrong port, or the server is down.",
        )
    # smtplib reports a reply that never came as a lost connection ("...: timed out").
    timed_out = isinstance(error, smtplib.SMTPServerDisconnected) and "timed out" in str(error)
    if timed_out or isinstance(error, (TimeoutError, socket.timeout)):
        return ConnectionResult(
            server,
            False,
            "timeout",
            f"No answer from {where} in time. Check the host, the port and the security "
            "setting (a TLS port waits silently for a plain-text client).",
        )
    if _smtp_auth_disabled(error):
        return ConnectionResult(
            server,
            False,
            "smtp_auth_disabled",
            "Microsoft 365 has SMTP AUTH switched off for this mailbox, so it cannot send "
            "through smtp.office365.com. A Microsoft 365 admin switches it on in the admin "
            "center: Users > Active users > this user > Mail > Manage email apps > tick "
            'Authenticated SMTP; if the whole organisation has it off, also clear "Turn off '
            'SMTP AUTH protocol for your organization" (Exchange admin center > Settings > Mail '
            "flow). Changes take up to an hour; then run Test connection again.",
        )
    if isinstance(error, (smtplib.SMTPAuthenticationError, LoginError)) and spec.oauth:
        return ConnectionResult(
            server,
            False,
            "auth_failed",
            f"The {server.upper()} server refused the mailbox's access token even after a "
            "refresh. Check that the account still has IMAP and SMTP access, or connect it "
            "again.",
        )
    if isinstance(error, (smtplib.SMTPAuthenticationError, LoginError)):
        return ConnectionResult(
            server,
            False,
            "auth_failed",
            f"The {server.upper()} server rejected the username or password. Google and "
            "Microsoft accounts connect with their Connect button on the Mailboxes page (or an "
            "app password).",
        )
    if isinstance(error, socket.gaierror):
        return ConnectionResult(
            server, False, "host_not_found", f"The host {spec.host} does not exist."
        )
    return ConnectionResult(
        server, False, "protocol_error", f"The {server.upper()} server at {where} failed: {error}"
    )


def _smtp_auth_disabled(error: BaseException) -> bool:
    """Microsoft's answers when SMTP AUTH is off for the mailbox or the tenant: "550 5.7.30
    Basic authentication is not supported for Client Submission" and "535 5.7.139
    Authentication unsuccessful, SmtpClientAuthentication is disabled for the Tenant"."""
    if not isinstance(error, smtplib.SMTPResponseException):
        return False
    text = error.smtp_error.decode(errors="replace") if isinstance(error.smtp_error, bytes) else ""
    return (
        "5.7.30" in text
        or "5.7.139" in text
        or "smtpclientauthentication is disabled" in text.lower()
    )


class ConnectionProblem(Exception):
    """A connection or login failed; `result` says why, in words a customer can act on."""

    def __init__(self, result: ConnectionResult) -> None:
        super().__init__(result.message)
        self.result = result


def smtp_connect(
    spec: ServerSpec, *, timeout: float, ca_file: str = "", allow_private: bool = False
) -> smtplib.SMTP:
    """An SMTP session, secured as configured and logged in when a username is given; raises
    ConnectionProblem. The caller closes it (`quit`)."""
    address, problem = _resolve(spec.host, spec.port, allow_private)
    if problem:
        raise ConnectionProblem(ConnectionResult("smtp", False, problem.reason, problem.message))
    context = _tls_context(ca_file)
    client: smtplib.SMTP | None = None
    try:
        if spec.security == "ssl":
            cls: type[smtplib.SMTP] = type("PinnedSMTPSSL", (_PinnedSMTPSSL,), {"pinned": address})
            client = cls(spec.host, spec.port, timeout=timeout, context=context)  # type: ignore[call-arg]
        else:
            cls = type("PinnedSMTP", (_PinnedSMTP,), {"pinned": address})
            client = cls(spec.host, spec.port, timeout=timeout)
        client.ehlo()
        if spec.security == "starttls":
            client.starttls(context=context)
            client.ehlo()
        if spec.username and spec.oauth:
            _smtp_oauth_login(client, spec)
        elif spec.username:
            client.login(spec.username, spec.password)
    except (OSError, smtplib.SMTPException, ConnectionProblem) as error:
        if client is not None:
            with contextlib.suppress(OSError, smtplib.SMTPException):
                client.close()
        if isinstance(error, ConnectionProblem):
            raise
        raise ConnectionProblem(_classify("smtp", spec, error)) from error
    return client


class _XOAuth2:
    """smtplib's auth object: the initial response, then (when the server refuses the token
    with a 334 challenge carrying the error as JSON) the empty line that ends the exchange."""

    def __init__(self, response: str) -> None:
        self.response = response

    def __call__(self, challenge: bytes | None = None) -> str:
        return self.response if challenge is None else ""


def _smtp_oauth_login(client: smtplib.SMTP, spec: ServerSpec) -> None:
    """AUTH XOAUTH2, and once more with a fresh token if the server refuses the first."""
    assert spec.oauth is not None
    token = spec.oauth("")
    for attempt in range(2):
        try:
            client.auth(
                "XOAUTH2", _XOAuth2(xoauth2(spec.username, token)), initial_response_ok=True
            )
            return
        except smtplib.SMTPAuthenticationError as error:
            if attempt or _smtp_auth_disabled(error):
                raise
            token = spec.oauth(token)


def smtp_login(
    spec: ServerSpec, *, timeout: float, ca_file: str = "", allow_private: bool = False
) -> ConnectionResult:
    """Connect, secure the connection as configured, and log in (no mail is sent)."""
    try:
        client = smtp_connect(spec, timeout=timeout, ca_file=ca_file, allow_private=allow_private)
    except ConnectionProblem as problem:
        return problem.result
    with contextlib.suppress(OSError, smtplib.SMTPException):
        client.quit()
    return ConnectionResult("smtp", True, "ok", f"Logged in to {spec.host}:{spec.port}.")


def imap_connect(
    spec: ServerSpec, *, timeout: float, ca_file: str = "", allow_private: bool = False
) -> IMAPClient:
    """An IMAP session, secured as configured and logged in; raises ConnectionProblem. The
    caller logs out."""
    address, problem = _resolve(spec.host, spec.port, allow_private)
    if problem:
        raise ConnectionProblem(ConnectionResult("imap", False, problem.reason, problem.message))
    context = _tls_context(ca_file)
    try:
        client = _PinnedIMAPClient(
            spec.host,
            pinned=address,
            port=spec.port,
            ssl=spec.security == "ssl",
            ssl_context=context,
            timeout=timeout,
        )
    except (OSError, IMAPClientError, imaplib.IMAP4.error) as error:
        raise ConnectionProblem(_classify("imap", spec, error)) from error
    try:
        if spec.security == "starttls":
            client.starttls(ssl_context=context)
        if spec.oauth:
            _imap_oauth_login(client, spec)
        else:
            client.login(spec.username, spec.password)
    except (OSError, IMAPClientError, imaplib.IMAP4.error, ConnectionProblem) as error:
        with contextlib.suppress(OSError, IMAPClientError, imaplib.IMAP4.error):
            client.shutdown()
        if isinstance(error, ConnectionProblem):
            raise
        raise ConnectionProblem(_classify("imap", spec, error)) from error
    return client


def _imap_oauth_login(client: IMAPClient, spec: ServerSpec) -> None:
    """AUTHENTICATE XOAUTH2, and once more with a fresh token if the server refuses the first
    (a refused AUTHENTICATE leaves the session waiting for another login)."""
    assert spec.oauth is not None
    token = spec.oauth("")
    try:
        client.oauth2_login(spec.username, token)
    except LoginError:
        client.oauth2_login(spec.username, spec.oauth(token))


def imap_login(
    spec: ServerSpec, *, timeout: float, ca_file: str = "", allow_private: bool = False
) -> ConnectionResult:
    """Connect, secure, log in and list the folders (the agent needs INBOX and Spam/Junk)."""
    try:
        client = imap_connect(spec, timeout=timeout, ca_file=ca_file, allow_private=allow_private)
    except ConnectionProblem as problem:
        return problem.result
    try:
        try:
            folders = tuple(name for _flags, _delim, name in client.list_folders())
        except (IMAPClientError, imaplib.IMAP4.error) as error:
            return ConnectionResult(
                "imap",
                False,
                "folders_unreadable",
                f"Logged in, but the folder list could not be read: {error}",
            )
    except (OSError, IMAPClientError, imaplib.IMAP4.error) as error:
        return _classify("imap", spec, error)
    finally:
        with contextlib.suppress(OSError, IMAPClientError, imaplib.IMAP4.error):
            client.logout()
    return ConnectionResult(
        "imap",
        True,
        "ok",
        f"Logged in to {spec.host}:{spec.port}; {len(folders)} folders.",
        folders,
    )
