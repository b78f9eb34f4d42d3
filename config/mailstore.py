"""Where platform mailboxes receive: a Dovecot mail store and the MX in front of it.

Platform mailboxes have no servers of their own. In production their mail arrives at our MX
(an MTA with a spam filter) and goes over LMTP into Dovecot; the engagement agent logs in to
each mailbox there as a Dovecot master user ("address*master" with the master password,
`platform_imap_spec`). README, "Where platform mailboxes receive".

Tests and the embedded profile run the same pieces privately (`mailstore_start`): a Dovecot
configured here, in a directory of its own, with IMAP and LMTP on loopback ports, a static
userdb in which every address exists, a master user and Maildir; and `InboundReceiver`, a
loopback SMTP server (aiosmtpd) acting as the MX. The receiver accepts mail only for the
addresses its recipient check allows, asks its delivery rule whether the message is junk, marks
it as a spam filter would (`X-Spam-Flag: YES`) and hands it to Dovecot over LMTP, where a Sieve
script files marked mail into Junk. The embedded profile starts one store per process, lazily
(`embedded_mailstore`), under var/mail/.

Importing this module starts nothing and needs no database.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import grp
import hashlib
import logging
import os
import pwd
import secrets
import shutil
import signal
import smtplib
import socket
import stat
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from email.parser import BytesHeaderParser
from email.utils import parseaddr
from pathlib import Path
from typing import TYPE_CHECKING, Any

from django.conf import settings

from sending.connection_test import ServerSpec

if TYPE_CHECKING:
    from aiosmtpd.controller import Controller
    from aiosmtpd.smtp import SMTP, Envelope, Session

logger = logging.getLogger(__name__)

HOST = "127.0.0.1"
DOVECOT_BINARY = shutil.which("dovecot") or "/usr/sbin/dovecot"
# What the store needs -> the Debian package that provides it (scripts/packages.py installs
# the same list for `make run` and `make test`).
MAILSTORE_PACKAGES = {
    DOVECOT_BINARY: "dovecot-imapd",
    "/usr/lib/dovecot/lmtp": "dovecot-lmtpd",
    "/usr/lib/dovecot/modules/lib90_sieve_plugin.so": "dovecot-sieve",
}
START_TIMEOUT = 10.0  # seconds for Dovecot and the receiver to accept connections
LMTP_TIMEOUT = 30.0
EMBEDDED_MASTER_USER = "trustgate"
# The header a spam filter sets on mail it judges to be spam (SpamAssassin's name); the Sieve
# script below files such mail into Junk. The receiver removes any copy a sender wrote.
SPAM_FLAG_HEADER = "X-Spam-Flag"
SIEVE_SCRIPT = f"""\
require "fileinto";
# The MX marks mail it judges to be spam; it goes to Junk, the rest to the INBOX.
if header :is "{SPAM_FLAG_HEADER}" "YES" {{
  fileinto "Junk";
  stop;
}}
"""
# One in JUNK_ONE_IN of other warm-up mail lands in Junk in the embedded profile.
JUNK_ONE_IN = 6
# Unix socket paths are limited to 108 bytes; Dovecot's longest below base_dir is ~30.
_MAX_BASE_DIR = 70

# (sender, recipient, message) -> True to file the message into Junk.
JunkRule = Callable[[str, str, bytes], bool]
# address -> "" to accept it, else the SMTP reply that refuses it ("550 5.1.1 ...").
RecipientCheck = Callable[[str], str]


class MailstoreError(Exception):
    """The mail store could not be started."""


def mailstore_missing() -> list[str]:
    """The Debian packages the mail store needs that are not installed."""
    return sorted(
        {package for path, package in MAILSTORE_PACKAGES.items() if not Path(path).exists()}
    )


def free_port(host: str = HOST) -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


# --- How the agent logs in ---------------------------------------------------------------------


def platform_imap_spec(address: str) -> ServerSpec | None:
    """How to log in to the store of the platform mailbox `address` (as the master user), or
    None when no inbound store is configured (or, in the embedded profile, none can run)."""
    if settings.INBOUND_IMAP_HOST:
        if not settings.INBOUND_IMAP_MASTER_USER:
            return None
        return ServerSpec(
            host=settings.INBOUND_IMAP_HOST,
            port=settings.INBOUND_IMAP_PORT,
            security=settings.INBOUND_IMAP_SECURITY,
            username=master_login(
                address, settings.INBOUND_IMAP_MASTER_USER, settings.INBOUND_IMAP_MASTER_SEPARATOR
            ),
            password=settings.INBOUND_IMAP_MASTER_PASSWORD,
        )
    if settings.EMBEDDED:
        store = embedded_mailstore()
        return store.imap_spec(address) if store is not None else None
    return None


def master_login(address: str, master_user: str, separator: str) -> str:
    """Dovecot's master-user login name: the mailbox's address, the separator, the master."""
    return f"{address}{separator}{master_user}"


# --- Delivery rules ----------------------------------------------------------------------------


def address_refusal(address: str) -> str:
    """An empty string when `address` has the form local@domain, else the SMTP reply refusing
    it."""
    local, at, domain = address.rpartition("@")
    if not at or not local or not domain or any(c.isspace() for c in address):
        return f"501 5.1.3 <{address}>: bad recipient address syntax"
    return ""


def never_junk(sender: str, recipient: str, data: bytes) -> bool:
    return False


def platform_mailbox_exists(address: str) -> bool:
    """Whether `address` is a platform mailbox (on a domain that is not retired), or, in the
    embedded profile, a golden seed kept in the store (one without servers of its own)."""
    from sending.models import ConnectionType, DomainStatus, Mailbox

    local, _, domain = address.strip().rpartition("@")
    if not local or not domain:
        return False
    return (
        Mailbox.objects.filter(
            connection=ConnectionType.PLATFORM,
            local_part=local.lower(),
            domain__name=domain.lower(),
        )
        .exclude(domain__status=DomainStatus.RETIRED)
        .exists()
    ) or embedded_seed(f"{local}@{domain}".lower())


def embedded_seed(address: str) -> bool:
    """A golden seed the embedded profile keeps in its own store: the demo's seeds have no
    servers of their own, so they receive, are read and send on the loopback (a real
    installation's seeds live at their providers)."""
    from warming.models import GoldenSeed

    return bool(settings.EMBEDDED) and (
        GoldenSeed.objects.filter(address__iexact=address, imap_host="", smtp_host="").exists()
    )


def embedded_mx() -> tuple[str, int] | None:
    """The embedded store's MX (host, port), where the demo's seeds hand their mail over."""
    if not settings.EMBEDDED:
        return None
    store = embedded_mailstore()
    return (store.receiver.host, store.receiver.port) if store is not None else None


def platform_recipient_refusal(address: str) -> str:
    """An empty string for a platform mailbox; else the reply an MX gives: unknown user on a
    domain we receive for, relaying denied for any other domain."""
    from sending.models import ConnectionType, DomainStatus, Mailbox

    refusal = address_refusal(address)
    if refusal:
        return refusal
    if platform_mailbox_exists(address):
        return ""
    domain = address.rpartition("@")[2].lower()
    ours = (
        Mailbox.objects.filter(connection=ConnectionType.PLATFORM, domain__name=domain)
        .exclude(domain__status=DomainStatus.RETIRED)
        .exists()
    )
    if ours:
        return f"550 5.1.1 <{address}>: no such mailbox here"
    return f"550 5.7.1 <{address}>: relaying denied, {domain} does not receive mail here"


def junk_by_message_id(message_id: str) -> bool:
    """The same verdict for the same Message-ID, true for about one in JUNK_ONE_IN."""
    digest = hashlib.sha256(message_id.strip().strip("<>").encode("utf-8", "replace")).digest()
    return int.from_bytes(digest[:8], "big") % JUNK_ONE_IN == 0


def warmup_junk_rule(sender: str, recipient: str, data: bytes) -> bool:
    """The embedded profile's spam filter: mail from a domain in the rehabilitation (or
    quarantine) tier goes to Junk, and so does about one in six other warm-up messages (by a
    hash of the Message-ID), so the agent has mail to rescue."""
    from reputation.scoring import Tier
    from sending.models import DomainStatus, SendingDomain
    from warming.content import WARMUP_HEADER

    headers = BytesHeaderParser().parsebytes(data)
    domains = {
        found.rpartition("@")[2].lower()
        for found in (sender, parseaddr(str(headers.get("From", "")))[1])
        if "@" in found
    }
    tiers = set(
        SendingDomain.objects.filter(name__in=domains)
        .exclude(status=DomainStatus.RETIRED)
        .values_list("tier", flat=True)
    )
    if tiers & {Tier.REHAB.value, Tier.QUARANTINE.value}:
        return True
    if headers.get(WARMUP_HEADER) is None:
        return False
    return junk_by_message_id(str(headers.get("Message-ID", "")))


def spam_flagged(data: bytes, junk: bool) -> bytes:
    """The message without any X-Spam-Flag header of its own, with ours when it is junk."""
    head, separator, body = data.partition(b"\r\n\r\n")
    if not separator:
        head, separator, body = data.partition(b"\n\n")
    newline = b"\r\n" if separator == b"\r\n\r\n" else b"\n"
    kept: list[bytes] = []
    dropping = False
    for line in head.split(newline) if head else []:
        if line[:1] in (b" ", b"\t"):  # a folded continuation of the header above
            if not dropping:
                kept.append(line)
            continue
        name = line.partition(b":")[0].strip().lower()
        dropping = name == SPAM_FLAG_HEADER.lower().encode()
        if not dropping:
            kept.append(line)
    flag = [f"{SPAM_FLAG_HEADER}: YES".encode()] if junk else []
    return newline.join(flag + kept) + separator + body


# --- Dovecot -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class _RunAs:
    """Who Dovecot's processes run as: as root, Debian's unprivileged users (Dovecot refuses
    mail access as root); otherwise, everything as the current user."""

    root: bool
    login_user: str
    internal_user: str
    internal_group: str
    mail_uid: int
    mail_gid: int

    @classmethod
    def current(cls) -> _RunAs:
        if os.geteuid() == 0:
            try:
                mail = pwd.getpwnam("mail")
                pwd.getpwnam("dovenull")
                pwd.getpwnam("dovecot")
                grp.getgrnam("dovecot")
            except KeyError as error:
                raise MailstoreError(f"the system user {error} is missing") from error
            return cls(True, "dovenull", "dovecot", "dovecot", mail.pw_uid, mail.pw_gid)
        try:
            user = pwd.getpwuid(os.geteuid()).pw_name
            group = grp.getgrgid(os.getegid()).gr_name
        except KeyError as error:
            raise MailstoreError("the current user has no name (no passwd entry)") from error
        return cls(False, user, user, group, os.geteuid(), os.getegid())

    def reaches(self, path: Path) -> bool:
        """Whether Dovecot's mail and internal users can enter `path`."""
        if not self.root:
            return True
        internal = pwd.getpwnam(self.internal_user)
        return _traversable(path, self.mail_uid, self.mail_gid) and _traversable(
            path, internal.pw_uid, internal.pw_gid
        )


def _traversable(path: Path, uid: int, gid: int) -> bool:
    """Whether a process running as uid/gid can reach `path` (search permission on it and on
    every parent)."""
    for directory in (path, *path.parents):
        mode = directory.stat()
        if mode.st_uid == uid:
            bit = stat.S_IXUSR
        elif mode.st_gid == gid:
            bit = stat.S_IXGRP
        else:
            bit = stat.S_IXOTH
        if not mode.st_mode & bit:
            return False
    return True


class DovecotStore:
    """A private Dovecot: IMAP (and IMAPS with `tls`) and LMTP on loopback, Maildirs under
    `root/users/`, any address a mailbox, logins only as the master user."""

    def __init__(
        self,
        root: Path,
        *,
        master_user: str,
        master_password: str,
        separator: str = "*",
        tls: tuple[Path, Path] | None = None,
        host: str = HOST,
    ) -> None:
        if any(char in master_user + master_password for char in ":\r\n") or not master_user:
            raise ValueError("the master user and password cannot be stored in a passwd-file")
        self.root = root
        self.master_user = master_user
        self.master_password = master_password
        self.separator = separator
        self.tls = tls
        self.host = host
        self.imap_port = 0
        self.tls_port = 0
        self.lmtp_port = 0
        self.run_dir = root / "run"
        self._temporary_run_dir = False
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def config_file(self) -> Path:
        return self.root / "dovecot.conf"

    @property
    def log_file(self) -> Path:
        return self.root / "dovecot.log"

    @property
    def pid_file(self) -> Path:
        return self.root / "dovecot.pid"

    @property
    def users_dir(self) -> Path:
        return self.root / "users"

    def maildir_of(self, address: str) -> Path:
        local, _, domain = address.lower().rpartition("@")
        return self.users_dir / domain / local / "Maildir"

    def imap_spec(self, address: str, *, security: str = "none") -> ServerSpec:
        """The master login to `address`: plain or STARTTLS on imap_port, TLS on tls_port."""
        return ServerSpec(
            host=self.host,
            port=self.tls_port if security == "ssl" else self.imap_port,
            security=security,
            username=master_login(address, self.master_user, self.separator),
            password=self.master_password,
        )

    def deliver(self, sender: str, recipient: str, data: bytes, *, junk: bool = False) -> None:
        """Hand one message to Dovecot over LMTP (raises smtplib's errors or OSError)."""
        with smtplib.LMTP(self.host, self.lmtp_port, timeout=LMTP_TIMEOUT) as client:
            client.sendmail(sender, [recipient], spam_flagged(data, junk))

    def log(self) -> str:
        parts = []
        for path in (self.root / "dovecot.stderr", self.log_file):
            if path.exists() and path.stat().st_size:
                parts.append(path.read_text(errors="replace")[-4000:])
        return "".join(parts) or "(Dovecot wrote no log)"

    def config(self, run_as: _RunAs) -> str:
        root = self.root
        ssl = (
            f"ssl = yes\nssl_cert = <{self.tls[0]}\nssl_key = <{self.tls[1]}"
            if self.tls
            else "ssl = no"
        )
        # Without root nothing can chroot; the services that would are told not to.
        login_chroot = "" if run_as.root else "  chroot =\n"
        no_chroot = (
            ""
            if run_as.root
            else "".join(
                f"service {name} {{\n  chroot =\n}}\n"
                for name in ("anvil", "ipc", "old-stats", "aggregator", "director")
            )
        )
        return f"""\
# Written by config/mailstore.py at every start: edits here are lost.
base_dir = {self.run_dir}
state_dir = {root}/state
log_path = {self.log_file}
listen = {self.host}
protocols = imap lmtp
{ssl}
# Loopback only: plain-text logins are no risk here.
disable_plaintext_auth = no
auth_mechanisms = plain login
auth_master_user_separator = {self.separator}
# Mailbox addresses may hold any character an address may (+, =, ' ...).
auth_username_chars =
auth_failure_delay = 0
default_login_user = {run_as.login_user}
default_internal_user = {run_as.internal_user}
default_internal_group = {run_as.internal_group}
first_valid_uid = {run_as.mail_uid}
mail_location = maildir:~/Maildir
# Every address is a mailbox of its own, "+" included: no sub-addressing.
recipient_delimiter =

# The only login is the master user's, as any mailbox: "address{self.separator}{self.master_user}".
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {root}/master-users
  master = yes
}}
# Reached by any other login: it always fails, without Dovecot's delay.
passdb {{
  driver = static
  args = nopassword=yes nodelay=yes
  result_success = return-fail
}}
userdb {{
  driver = static
  args = uid={run_as.mail_uid} gid={run_as.mail_gid} home={root}/users/%Ld/%Ln allow_all_users=yes
}}

namespace inbox {{
  inbox = yes
  mailbox Junk {{
    special_use = \\Junk
    auto = subscribe
  }}
  mailbox Archive {{
    special_use = \\Archive
    auto = subscribe
  }}
  mailbox Sent {{
    special_use = \\Sent
    auto = subscribe
  }}
  mailbox Drafts {{
    special_use = \\Drafts
    auto = subscribe
  }}
  mailbox Trash {{
    special_use = \\Trash
    auto = subscribe
  }}
}}

protocol lmtp {{
  mail_plugins = $mail_plugins sieve
}}
plugin {{
  sieve =
  sieve_before = {root}/sieve/junk.sieve
}}

# No growing per-IP delay after failed logins (all logins come from this machine).
service anvil {{
  unix_listener anvil-auth-penalty {{
    mode = 0
  }}
}}
service imap-login {{
  inet_listener imap {{
    address = {self.host}
    port = {self.imap_port}
  }}
  inet_listener imaps {{
    address = {self.host}
    port = {self.tls_port}
    ssl = yes
  }}
{login_chroot}}}
service lmtp {{
  inet_listener lmtp {{
    address = {self.host}
    port = {self.lmtp_port}
  }}
  unix_listener lmtp {{
    mode = 0
  }}
}}
{no_chroot}"""

    def start(self) -> None:
        """Write the configuration and start Dovecot; raises MailstoreError."""
        missing = mailstore_missing()
        if missing:
            raise MailstoreError(f"not installed: {', '.join(missing)} (Debian packages)")
        run_as = _RunAs.current()
        self.root.mkdir(parents=True, exist_ok=True)
        self.root.chmod(0o755)
        if not run_as.reaches(self.root):
            raise MailstoreError(
                f"{self.root} is not reachable by Dovecot's unprivileged users (a parent "
                "directory is private)"
            )
        self._stop_stale()
        if len(str(self.run_dir)) > _MAX_BASE_DIR:
            # Dovecot's sockets live there: a long path would not fit in a socket address.
            self.run_dir = Path(tempfile.mkdtemp(prefix="tg-dovecot-"))
            self.run_dir.chmod(0o755)
            self._temporary_run_dir = True
        self._write_files(run_as)
        for attempt in range(3):
            # The ports were free a moment ago; another process may take one first.
            self.imap_port, self.lmtp_port = free_port(self.host), free_port(self.host)
            self.tls_port = free_port(self.host) if self.tls else 0
            self.config_file.write_text(self.config(run_as))
            self.log_file.unlink(missing_ok=True)
            self._spawn()
            try:
                self._wait_ready()
                return
            except MailstoreError:
                self._terminate()
                if attempt == 2 or "Address already in use" not in self.log():
                    self.stop()
                    raise

    def _terminate(self) -> None:
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()

    def _spawn(self) -> None:
        with (self.root / "dovecot.stderr").open("wb") as stderr:
            # -F: the master stays in the foreground as our child (we see it die during
            # start-up, and reap it); on SIGTERM it stops its own children first.
            self._process = subprocess.Popen(
                [DOVECOT_BINARY, "-F", "-c", str(self.config_file)],
                stdin=subprocess.DEVNULL,
                stdout=stderr,
                stderr=stderr,
            )
        self.pid_file.write_text(f"{self._process.pid}\n")

    def stop(self) -> None:
        self._terminate()
        with contextlib.suppress(OSError):
            self.pid_file.unlink()
        if self._temporary_run_dir:
            shutil.rmtree(self.run_dir, ignore_errors=True)

    def _write_files(self, run_as: _RunAs) -> None:
        sieve_dir = self.root / "sieve"
        for directory in (self.users_dir, sieve_dir):
            directory.mkdir(exist_ok=True)
            if run_as.root:
                # Mail and the compiled Sieve script are written by the mail user's processes.
                os.chown(directory, run_as.mail_uid, run_as.mail_gid)
        self.users_dir.chmod(0o700)
        (sieve_dir / "junk.sieve").write_text(SIEVE_SCRIPT)
        # The master password: readable by Dovecot's auth process, by nobody else.
        passwords = self.root / "master-users"
        passwords.touch(mode=0o600)
        if run_as.root:
            os.chown(passwords, 0, grp.getgrnam(run_as.internal_group).gr_gid)
            passwords.chmod(0o640)
        else:
            passwords.chmod(0o600)
        passwords.write_text(f"{self.master_user}:{{PLAIN}}{self.master_password}\n")

    def _stop_stale(self) -> None:
        """Stop a Dovecot this store's previous process started and left running."""
        try:
            pid = int(self.pid_file.read_text().strip())
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except (OSError, ValueError):
            return
        if str(self.config_file).encode() not in cmdline:
            return
        logger.info("stopping the Dovecot (pid %d) a previous run left behind", pid)
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + 10
        while Path(f"/proc/{pid}").exists() and time.monotonic() < deadline:
            time.sleep(0.05)

    def _wait_ready(self) -> None:
        assert self._process is not None
        deadline = time.monotonic() + START_TIMEOUT
        ports = [(self.imap_port, b"* OK"), (self.lmtp_port, b"220")]
        while ports:
            port, greeting = ports[0]
            if _greets(self.host, port, greeting):
                ports.pop(0)
                continue
            if self._process.poll() is not None:
                raise MailstoreError(
                    f"Dovecot exited with {self._process.returncode}:\n{self.log()}"
                )
            if time.monotonic() > deadline:
                raise MailstoreError(f"Dovecot did not start in {START_TIMEOUT} s:\n{self.log()}")
            # Waiting on the process both paces the polling and notices it dying at once.
            with contextlib.suppress(subprocess.TimeoutExpired):
                self._process.wait(timeout=0.02)


def _greets(host: str, port: int, greeting: bytes) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1.0) as sock:
            return sock.recv(64).startswith(greeting)
    except OSError:
        return False


# --- The MX ------------------------------------------------------------------------------------


def _in_worker(function: Callable[..., Any], *args: Any) -> Any:
    """Run a rule in a worker thread; close the database connections it opened there (the
    thread is reused and nothing else would close them)."""
    try:
        return function(*args)
    finally:
        if settings.configured:
            from django.db import connections

            connections.close_all()


def _text(reply: bytes | str) -> str:
    return reply.decode("utf-8", "replace") if isinstance(reply, bytes) else reply


class _MxHandler:
    def __init__(self, receiver: InboundReceiver) -> None:
        self.receiver = receiver

    async def handle_RCPT(
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        address: str,
        rcpt_options: list[str],
    ) -> str:
        try:
            refusal = await asyncio.to_thread(_in_worker, self.receiver.recipient_check, address)
        except Exception:
            logger.exception("the inbound MX could not check the recipient %s", address)
            return "451 4.3.0 cannot check this recipient now; try again later"
        if refusal:
            return str(refusal)
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        data = envelope.original_content or envelope.content or b""
        assert isinstance(data, bytes)
        sender = envelope.mail_from or ""
        # One LMTP transaction per recipient: each gets its own verdict. A failure after some
        # were delivered answers for all, as SMTP must; the sender's retry may then repeat one.
        for recipient in envelope.rcpt_tos:
            try:
                junk = bool(
                    await asyncio.to_thread(
                        _in_worker, self.receiver.junk_rule, sender, recipient, data
                    )
                )
            except Exception:
                # As spam filters do when they fail: deliver rather than lose the message.
                logger.exception("the delivery rule failed; %s gets the message", recipient)
                junk = False
            try:
                await asyncio.to_thread(
                    self.receiver.store.deliver, sender, recipient, data, junk=junk
                )
            except smtplib.SMTPRecipientsRefused as error:
                code, text = next(iter(error.recipients.values()))
                return f"{code} {_text(text)}"
            except smtplib.SMTPResponseException as error:
                return f"{error.smtp_code} {_text(error.smtp_error)}"
            except (OSError, smtplib.SMTPException) as error:
                logger.warning("the mail store did not take mail for %s: %s", recipient, error)
                return "451 4.3.0 the mail store is unavailable; try again later"
        return "250 OK"


class InboundReceiver:
    """The MX of platform mailboxes: SMTP on loopback (aiosmtpd). Accepts mail for addresses
    `recipient_check` allows, files it by `junk_rule` and delivers it to `store` over LMTP.
    Both rules may be replaced while it runs."""

    def __init__(
        self,
        store: DovecotStore,
        *,
        recipient_check: RecipientCheck = address_refusal,
        junk_rule: JunkRule = never_junk,
        host: str = HOST,
    ) -> None:
        self.store = store
        self.recipient_check = recipient_check
        self.junk_rule = junk_rule
        self.host = host
        self.port = 0
        self._controller: Controller | None = None

    def start(self) -> None:
        from aiosmtpd.controller import Controller

        # aiosmtpd logs every SMTP command at INFO.
        logging.getLogger("mail.log").setLevel(logging.WARNING)
        for attempt in range(3):
            self.port = free_port(self.host)
            controller = Controller(
                _MxHandler(self),
                hostname=self.host,
                port=self.port,
                ready_timeout=START_TIMEOUT,
                server_hostname="localhost",  # the default, socket.getfqdn(), can wait on DNS
                enable_SMTPUTF8=True,
            )
            try:
                controller.start()
            except OSError:  # the port was taken in the meantime
                if attempt == 2:
                    raise
                continue
            self._controller = controller
            return

    def stop(self) -> None:
        controller, self._controller = self._controller, None
        if controller is not None:
            controller.stop()


@dataclass
class Mailstore:
    """A running inbound store: Dovecot and the MX in front of it."""

    dovecot: DovecotStore
    receiver: InboundReceiver

    def imap_spec(self, address: str, *, security: str = "none") -> ServerSpec:
        return self.dovecot.imap_spec(address, security=security)

    def stop(self) -> None:
        self.receiver.stop()
        self.dovecot.stop()


def mailstore_start(
    root: Path,
    *,
    recipient_check: RecipientCheck = address_refusal,
    junk_rule: JunkRule = never_junk,
    master_user: str = EMBEDDED_MASTER_USER,
    separator: str = "*",
    tls: tuple[Path, Path] | None = None,
) -> Mailstore:
    """Start a Dovecot under `root` (with a new master password) and its MX; raises
    MailstoreError when they cannot run here."""
    dovecot = DovecotStore(
        root,
        master_user=master_user,
        master_password=secrets.token_hex(16),
        separator=separator,
        tls=tls,
    )
    dovecot.start()
    receiver = InboundReceiver(dovecot, recipient_check=recipient_check, junk_rule=junk_rule)
    try:
        receiver.start()
    except (OSError, RuntimeError, TimeoutError) as error:
        dovecot.stop()
        raise MailstoreError(f"the inbound MX did not start: {error}") from error
    return Mailstore(dovecot, receiver)


# --- The embedded profile ----------------------------------------------------------------------

_UNAVAILABLE = (
    "platform mailboxes have no inbox in this run: mail to them goes to var/outbox/ and the "
    "engagement agent leaves it unread"
)


def embedded_mailstore_start(base: Path) -> Mailstore | None:
    """Start the embedded profile's store under `base` (the MX checks recipients against the
    platform mailboxes and applies `warmup_junk_rule`); None, after one warning, when it
    cannot run here."""
    missing = mailstore_missing()
    if missing:
        logger.warning(
            "Dovecot is not installed (Debian packages %s; `make run` installs them when apt-get "
            "is usable as root): %s.",
            " ".join(missing),
            _UNAVAILABLE,
        )
        return None
    try:
        import aiosmtpd  # noqa: F401
    except ImportError:
        logger.warning("aiosmtpd is not installed: %s.", _UNAVAILABLE)
        return None
    root = base
    try:
        base.mkdir(parents=True, exist_ok=True)
        if not _RunAs.current().reaches(base.parent):
            # Dovecot's unprivileged users cannot reach a directory inside a private one (a
            # project under /root): this run keeps the mail in a directory of its own instead.
            root = Path(tempfile.mkdtemp(prefix="trustgate-mail-"))
            atexit.register(shutil.rmtree, root, ignore_errors=True)
            logger.warning(
                "%s is inside a directory Dovecot's users cannot enter: platform mailboxes' mail "
                "is kept in %s for this run.",
                base,
                root,
            )
        return mailstore_start(
            root,
            recipient_check=platform_recipient_refusal,
            junk_rule=warmup_junk_rule,
            separator=settings.INBOUND_IMAP_MASTER_SEPARATOR,
        )
    except (MailstoreError, OSError) as error:
        logger.warning("The platform mailboxes' store did not start (%s): %s.", error, _UNAVAILABLE)
        return None


class _EmbeddedStore:
    """The embedded profile's store: started at first need, at most once per process."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._tried = False
        self._store: Mailstore | None = None

    def get(self) -> Mailstore | None:
        with self._lock:
            if not self._tried:
                self._tried = True
                self._store = embedded_mailstore_start(Path(settings.VAR_DIR) / "mail")
                if self._store is not None:
                    atexit.register(self._store.stop)
            return self._store


_embedded = _EmbeddedStore()


def embedded_mailstore() -> Mailstore | None:
    """The embedded profile's store, started once per process under var/mail/ (None when it
    cannot run here: the reason is logged once)."""
    return _embedded.get()
