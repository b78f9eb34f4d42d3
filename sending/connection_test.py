"""Real logins to a customer's SMTP and IMAP servers, with a clear reason on failure (no Django).

Reasons: host_not_found, host_not_allowed, refused, timeout, tls_error, auth_failed,
folders_unreadable, protocol_error.
"""

import contextlib
import imaplib
import ipaddress
import smtplib
import socket
import ssl
from dataclasses import asdict, dataclass

from imapclient import IMAPClient
from imapclient.exceptions import IMAPClientError, LoginError


@dataclass(frozen=True)
class ServerSpec:
    host: str
    port: int
    security: str  # ssl | starttls | none
    username: str
    password: str


@dataclass(frozen=True)
class ConnectionResult:
    server: str  # smtp | imap
    ok: bool
    reason: str
    message: str
    folders: tuple[str, ...] = ()

    def as_dict(self) -> dict:
        data = asdict(self)
        data["folders"] = list(self.folders)
        return data


def _tls_context(ca_file: str) -> ssl.SSLContext:
    context = ssl.create_default_context()
    if ca_file:
        context.load_verify_locations(cafile=ca_file)
    return context


def _host_problem(host: str, port: int, allow_private: bool) -> ConnectionResult | None:
    """Resolve the host first: unknown hosts and (unless allowed) internal addresses stop here."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError):
        return ConnectionResult("", False, "host_not_found", f"The host {host} does not exist.")
    if not allow_private:
        for info in infos:
            address = ipaddress.ip_address(info[4][0])
            if not address.is_global:
                return ConnectionResult(
                    "",
                    False,
                    "host_not_allowed",
                    f"{host} resolves to an internal address ({address}); the platform does not "
                    "connect to internal networks.",
                )
    return None


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
    if isinstance(error, (TimeoutError, socket.timeout)):
        return ConnectionResult(
            server,
            False,
            "timeout",
            f"No answer from {where} in time. Check the host, the port and the security "
            "setting (a TLS port waits silently for a plain-text client).",
        )
    if isinstance(error, (smtplib.SMTPAuthenticationError, LoginError)):
        return ConnectionResult(
            server,
            False,
            "auth_failed",
            f"The {server.upper()} server rejected the username or password. For Google and "
            "Microsoft accounts, use an app password.",
        )
    if isinstance(error, socket.gaierror):
        return ConnectionResult(
            server, False, "host_not_found", f"The host {spec.host} does not exist."
        )
    return ConnectionResult(
        server, False, "protocol_error", f"The {server.upper()} server at {where} failed: {error}"
    )


def smtp_login(
    spec: ServerSpec, *, timeout: float, ca_file: str = "", allow_private: bool = False
) -> ConnectionResult:
    """Connect, secure the connection as configured, and log in (no mail is sent)."""
    problem = _host_problem(spec.host, spec.port, allow_private)
    if problem:
        return ConnectionResult("smtp", False, problem.reason, problem.message)
    context = _tls_context(ca_file)
    try:
        if spec.security == "ssl":
            client = smtplib.SMTP_SSL(spec.host, spec.port, timeout=timeout, context=context)
        else:
            client = smtplib.SMTP(spec.host, spec.port, timeout=timeout)
        with client:
            client.ehlo()
            if spec.security == "starttls":
                client.starttls(context=context)
                client.ehlo()
            client.login(spec.username, spec.password)
    except (OSError, smtplib.SMTPException) as error:
        return _classify("smtp", spec, error)
    return ConnectionResult("smtp", True, "ok", f"Logged in to {spec.host}:{spec.port}.")


def imap_login(
    spec: ServerSpec, *, timeout: float, ca_file: str = "", allow_private: bool = False
) -> ConnectionResult:
    """Connect, secure, log in and list the folders (the agent needs INBOX and Spam/Junk)."""
    problem = _host_problem(spec.host, spec.port, allow_private)
    if problem:
        return ConnectionResult("imap", False, problem.reason, problem.message)
    context = _tls_context(ca_file)
    try:
        client = IMAPClient(
            spec.host,
            port=spec.port,
            ssl=spec.security == "ssl",
            ssl_context=context,
            timeout=timeout,
        )
    except (OSError, IMAPClientError, imaplib.IMAP4.error) as error:
        return _classify("imap", spec, error)
    try:
        if spec.security == "starttls":
            client.starttls(ssl_context=context)
        client.login(spec.username, spec.password)
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
