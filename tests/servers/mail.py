"""Real mail servers for tests: Dovecot (IMAP) and aiosmtpd (SMTP with AUTH), both with TLS.

Registered as a pytest plugin (``pytest_plugins``). Fixtures:

- ``test_ca`` (session): a throwaway CA and the server certificate both servers present.
- ``dovecot`` (session): IMAP on ``port`` (STARTTLS offered) and IMAPS on ``tls_port``.
- ``smtp_auth_server`` (session): SMTP with AUTH on ``port`` (STARTTLS offered, AUTH allowed
  without TLS) and implicit TLS on ``tls_port``; mail to a Dovecot user is also put in its INBOX.
- ``mail_account``: a fresh user with the same address and password on both servers.
"""

import asyncio
import base64
import binascii
import imaplib
import json
import os
import secrets
import shutil
import socket
import ssl
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from email import message_from_bytes
from email.message import Message
from pathlib import Path
from typing import NamedTuple

import httpx
import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

from tests.servers.oauth import IdentityProvider
from tests.servers.tls import TestCA, make_test_ca

HOST = "127.0.0.1"
DOVECOT_BINARY = shutil.which("dovecot") or "/usr/sbin/dovecot"
START_TIMEOUT = 10.0  # seconds for Dovecot to accept connections
IMAP_TIMEOUT = 5.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


@dataclass(frozen=True)
class MailAccount:
    address: str
    password: str


def _check_passwd_field(value: str) -> None:
    if any(char in value for char in ":\r\n"):
        raise ValueError(f"{value!r} cannot be stored in a passwd-file")


# --- Dovecot ---------------------------------------------------------------------------------


@dataclass
class DovecotServer:
    """A running Dovecot; users can be added at any time (one passwd-file per user)."""

    host: str
    port: int
    tls_port: int
    ca_file: Path
    root: Path
    # Where Dovecot's oauth2 passdb checks XOAUTH2 / OAUTHBEARER tokens (the test provider).
    introspection_url: str = ""
    _users: dict[str, str] = field(default_factory=dict, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def passwd_dir(self) -> Path:
        return self.root / "users"

    @property
    def log_file(self) -> Path:
        return self.root / "dovecot.log"

    def add_user(self, address: str, password: str) -> None:
        _check_passwd_field(address)
        _check_passwd_field(password)
        if "/" in address or address.startswith("."):
            raise ValueError(f"{address!r} cannot name a passwd-file")
        # Dovecot lowercases user names before lookups (auth_username_format = %Lu).
        user = address.lower()
        # One passwd-file per user: Dovecot stats a passwd-file at most once a second, so a
        # user added to a shared file right after a lookup stays unknown for up to a second.
        # A new user's file is new to Dovecot, which reads it on first use.
        staging = self.passwd_dir / f".{user}.new"
        staging.write_text(f"{user}:{{PLAIN}}{password}\n")
        staging.chmod(0o644)
        with self._lock:
            os.replace(staging, self.passwd_dir / user)
            self._users[user] = password

    def has_user(self, address: str) -> bool:
        with self._lock:
            return address.lower() in self._users

    def maildir_of(self, address: str) -> Path:
        """The user's Maildir (Dovecot creates it at the first login)."""
        return self.root / "mail" / address.lower()

    def append(self, address: str, message: bytes, folder: str = "INBOX") -> None:
        """Put a message in the user's folder with IMAP APPEND, logged in as that user."""
        with self._lock:
            password = self._users[address.lower()]
        imap = imaplib.IMAP4(self.host, self.port, timeout=IMAP_TIMEOUT)
        try:
            imap.login(address, password)
            status, detail = imap.append(folder, None, None, message)
            if status != "OK":
                raise RuntimeError(f"APPEND to {address}/{folder} failed: {detail!r}")
        finally:
            imap.logout()

    def log(self) -> str:
        parts = []
        for path in (self.root / "dovecot.stderr", self.log_file):
            if path.exists() and path.stat().st_size:
                parts.append(path.read_text(errors="replace"))
        return "".join(parts) or "(Dovecot wrote no log)"

    def config(self, test_ca: TestCA) -> str:
        root = self.root
        return f"""\
base_dir = {root}/run
state_dir = {root}/state
log_path = {self.log_file}
listen = {self.host}
protocols = imap
ssl = yes
ssl_cert = <{test_ca.cert_file}
ssl_key = <{test_ca.key_file}
disable_plaintext_auth = no
auth_mechanisms = plain login xoauth2 oauthbearer
default_login_user = dovenull
default_internal_user = dovecot
first_valid_uid = 8
mail_location = maildir:{root}/mail/%u

# Tokens (XOAUTH2, OAUTHBEARER) are checked against the test identity provider only.
passdb {{
  driver = oauth2
  mechanisms = xoauth2 oauthbearer
  args = {root}/oauth2.conf
}}
passdb {{
  driver = passwd-file
  args = scheme=PLAIN {self.passwd_dir}/%u
}}
# Tests fail logins on purpose, many times from 127.0.0.1. Dovecot delays each failure (at
# least 0.5 s, whatever auth_failure_delay says) and adds a growing per-IP penalty, unless the
# failing passdb returns the nodelay field: this one is only reached when the user is unknown
# or the password wrong, and it always fails, with nodelay.
passdb {{
  driver = static
  args = nopassword=yes nodelay=yes
  result_success = return-fail
}}
userdb {{
  driver = static
  args = uid=mail gid=mail home={root}/mail/%u
}}

namespace inbox {{
  inbox = yes
  mailbox Junk {{
    special_use = \\Junk
    auto = create
  }}
  mailbox Sent {{
    special_use = \\Sent
    auto = create
  }}
  mailbox Trash {{
    special_use = \\Trash
    auto = create
  }}
}}

service imap-login {{
  inet_listener imap {{
    port = {self.port}
  }}
  inet_listener imaps {{
    port = {self.tls_port}
    ssl = yes
  }}
}}
"""


def _imap_greets(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1.0) as sock:
            return sock.recv(64).startswith(b"* OK")
    except OSError:
        return False


def _port_accepts(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1.0):
            return True
    except OSError:
        return False


@contextmanager
def _dovecot_running(server: DovecotServer, test_ca: TestCA) -> Iterator[None]:
    if not os.path.exists(DOVECOT_BINARY):
        pytest.fail("Dovecot is not installed (Debian package dovecot-imapd)")
    config_file = server.root / "dovecot.conf"
    config_file.write_text(server.config(test_ca))
    (server.root / "oauth2.conf").write_text(
        f"introspection_url = {server.introspection_url}\n"
        "introspection_mode = post\n"
        "force_introspection = yes\n"
        "username_attribute = email\n"
        "active_attribute = active\n"
        "active_value = true\n"
    )
    # -F keeps the master in the foreground as our child: we can see it die during start-up
    # and reap it at the end. Its pid is the one Dovecot writes to base_dir/master.pid.
    with (server.root / "dovecot.stderr").open("wb") as stderr:
        process = subprocess.Popen(
            [DOVECOT_BINARY, "-F", "-c", str(config_file)],
            stdin=subprocess.DEVNULL,
            stdout=stderr,
            stderr=stderr,
        )
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while not (
            _imap_greets(server.host, server.port) and _port_accepts(server.host, server.tls_port)
        ):
            if time.monotonic() > deadline:
                pytest.fail(f"Dovecot did not start in {START_TIMEOUT} s:\n{server.log()}")
            try:
                process.wait(timeout=0.05)
            except subprocess.TimeoutExpired:
                continue
            pytest.fail(f"Dovecot exited with {process.returncode}:\n{server.log()}")
        yield
    finally:
        _stop(process)


def _stop(process: subprocess.Popen) -> None:
    # With -F the master is our child, and its pid is the one in base_dir/master.pid; on
    # SIGTERM it stops its own children before it exits.
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture(scope="session")
def test_ca(tmp_path_factory: pytest.TempPathFactory) -> TestCA:
    return make_test_ca(tmp_path_factory.mktemp("tls"))


@pytest.fixture(scope="session")
def dovecot(test_ca: TestCA, identity_provider: IdentityProvider) -> Iterator[DovecotServer]:
    """A real Dovecot IMAP server on loopback (STARTTLS on `port`, implicit TLS on `tls_port`)."""
    # Not under pytest's own temp dir: that one is private to root (0700), and Dovecot's login,
    # auth and mail processes run as dovenull, dovecot and mail. Short paths also keep Dovecot's
    # unix sockets under the 108-byte limit.
    root = Path(tempfile.mkdtemp(prefix="dovecot-"))
    try:
        root.chmod(0o755)
        mail_root = root / "mail"
        mail_root.mkdir()
        shutil.chown(mail_root, user="mail", group="mail")
        server = DovecotServer(
            host=HOST,
            port=free_port(),
            tls_port=free_port(),
            ca_file=test_ca.ca_file,
            root=root,
            introspection_url=f"{identity_provider.url}/introspect",
        )
        server.passwd_dir.mkdir()
        server.passwd_dir.chmod(0o755)
        with _dovecot_running(server, test_ca):
            yield server
    finally:
        shutil.rmtree(root, ignore_errors=True)


# --- SMTP ------------------------------------------------------------------------------------


class ReceivedMail(NamedTuple):
    mail_from: str
    rcpt_tos: list[str]
    message: Message


@dataclass
class SmtpAuthServer:
    """An SMTP server that requires AUTH (aiosmtpd) and keeps what it receives."""

    host: str
    port: int
    tls_port: int
    ca_file: Path
    users: dict[str, str] = field(default_factory=dict)
    messages: list[ReceivedMail] = field(default_factory=list)
    arrived: threading.Condition = field(default_factory=threading.Condition, repr=False)
    # A delivery rule, as a spam filter would apply it: True files the message into Junk.
    junk_rule: Callable[[str, bytes], bool] | None = None
    # What the server does to a message before storing it (a provider's DKIM signature, its
    # Authentication-Results header), from the envelope sender and the message.
    transform: Callable[[str, bytes], bytes] | None = None
    # Where XOAUTH2 tokens are checked (the test identity provider's introspection).
    introspection_url: str = ""

    def add_user(self, address: str, password: str) -> None:
        self.users[address] = password

    def wait_for(self, recipient: str, timeout: float = 5.0) -> ReceivedMail:
        """The newest message for `recipient` (envelope), waiting for it to arrive."""
        wanted = recipient.lower()

        def find() -> ReceivedMail | None:
            for received in reversed(self.messages):
                if wanted in (rcpt.lower() for rcpt in received.rcpt_tos):
                    return received
            return None

        with self.arrived:
            found = self.arrived.wait_for(find, timeout=timeout)
        assert found, f"no mail to {recipient} arrived within {timeout} s"
        return found


class _SmtpHandler:
    def __init__(self, server: SmtpAuthServer, mailstore: DovecotServer | None) -> None:
        self.server = server
        self.mailstore = mailstore

    def authenticate(
        self, smtp: SMTP, session: Session, envelope: Envelope, mechanism: str, auth_data: object
    ) -> AuthResult:
        if isinstance(auth_data, LoginPassword):
            login = auth_data.login.decode("utf-8", "replace")
            password = auth_data.password.decode("utf-8", "replace")
            if self.server.users.get(login) == password:
                return AuthResult(success=True, auth_data=login)
        # handled=False: aiosmtpd answers "535 5.7.8 Authentication credentials invalid".
        return AuthResult(success=False, handled=False)

    async def auth_XOAUTH2(self, smtp: SMTP, args: list[str]) -> AuthResult:
        """SASL XOAUTH2 (Google's and Microsoft's scheme): "user=<address>^Aauth=Bearer
        <token>^A^A", base64, checked by asking the identity provider about the token."""
        if len(args) > 1:
            raw = args[1].encode()
        else:
            answer = await smtp.challenge_auth("", encode_to_b64=False)
            if not isinstance(answer, bytes):
                return AuthResult(success=False, handled=True)
            raw = answer
        try:
            text = base64.b64decode(raw, validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            return AuthResult(success=False, message="501 5.5.2 Cannot decode the response")
        fields = dict(part.split("=", 1) for part in text.split("\x01") if "=" in part)
        user, bearer = fields.get("user", ""), fields.get("auth", "")
        if not bearer.startswith("Bearer ") or not self.server.introspection_url:
            return AuthResult(success=False, handled=False)
        seen = await asyncio.to_thread(
            httpx.post, self.server.introspection_url, data={"token": bearer[7:]}, timeout=5
        )
        body = seen.json() if seen.status_code == 200 else {}
        if body.get("active") is True and body.get("email", "").lower() == user.lower():
            return AuthResult(success=True, auth_data=user)
        # Like Gmail: the refusal comes as a challenge carrying the error as JSON; the client
        # answers with an empty line, then the 535.
        error = {"status": "401", "schemes": "bearer", "scope": "https://mail.google.com/"}
        await smtp.challenge_auth(json.dumps(error))
        return AuthResult(success=False, handled=False)

    async def handle_MAIL(
        self, smtp: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        # Like a submission server: no relaying for anonymous clients.
        if not session.authenticated:
            return "530 5.7.0 Authentication required"
        envelope.mail_from = address
        envelope.mail_options.extend(options)
        return "250 OK"

    async def handle_DATA(self, smtp: SMTP, session: Session, envelope: Envelope) -> str:
        raw = envelope.original_content or envelope.content
        assert isinstance(raw, bytes)
        if self.server.transform is not None:
            raw = self.server.transform(envelope.mail_from or "", raw)
        if self.mailstore is not None:
            for rcpt in envelope.rcpt_tos:
                if self.mailstore.has_user(rcpt):
                    rule = self.server.junk_rule
                    folder = "Junk" if rule is not None and rule(rcpt, raw) else "INBOX"
                    try:
                        await asyncio.to_thread(self.mailstore.append, rcpt, raw, folder)
                    except (OSError, imaplib.IMAP4.error, RuntimeError) as error:
                        return f"451 4.3.0 Could not store the message for {rcpt}: {error}"
        received = ReceivedMail(
            mail_from=envelope.mail_from or "",
            rcpt_tos=list(envelope.rcpt_tos),
            message=message_from_bytes(raw),
        )
        # Recorded after delivery, so a test that waited for it finds it in IMAP as well.
        with self.server.arrived:
            self.server.messages.append(received)
            self.server.arrived.notify_all()
        return "250 OK"


@pytest.fixture(scope="session")
def smtp_auth_server(test_ca: TestCA, dovecot: DovecotServer) -> Iterator[SmtpAuthServer]:
    """A real SMTP server with AUTH on loopback; mail to Dovecot users lands in their INBOX."""
    server = SmtpAuthServer(
        host=HOST,
        port=free_port(),
        tls_port=free_port(),
        ca_file=test_ca.ca_file,
        introspection_url=dovecot.introspection_url,
    )
    handler = _SmtpHandler(server, mailstore=dovecot)
    tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    tls.load_cert_chain(test_ca.cert_file, test_ca.key_file)
    common = {
        "authenticator": handler.authenticate,
        # aiosmtpd counts only STARTTLS as TLS: with the default True it would not even offer
        # AUTH on the implicit-TLS port. Products must be able to log in without TLS here too.
        "auth_require_tls": False,
        "server_hostname": "localhost",  # the default, socket.getfqdn(), can wait on DNS
    }
    plain = Controller(handler, hostname=HOST, port=server.port, tls_context=tls, **common)
    implicit_tls = Controller(
        handler, hostname=HOST, port=server.tls_port, ssl_context=tls, **common
    )
    started: list[Controller] = []
    try:
        for controller in (plain, implicit_tls):
            controller.start()
            started.append(controller)
        yield server
    finally:
        for controller in started:
            controller.stop()


@pytest.fixture
def mail_account(dovecot: DovecotServer, smtp_auth_server: SmtpAuthServer) -> MailAccount:
    """A new mailbox: the same address and password on the SMTP and the IMAP server."""
    account = MailAccount(
        address=f"user-{secrets.token_hex(6)}@mailbox.test", password=secrets.token_urlsafe(12)
    )
    dovecot.add_user(account.address, account.password)
    smtp_auth_server.add_user(account.address, account.password)
    return account
