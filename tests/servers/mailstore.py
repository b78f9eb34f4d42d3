"""The inbound store of platform mailboxes for tests: Dovecot (master user, LMTP, Sieve) behind
its MX (config/mailstore.py), with TLS from the tests' CA.

Registered as a pytest plugin (``pytest_plugins``). Fixtures:

- ``platform_mailstore`` (session): the running store (``.dovecot``, ``.receiver``).
- ``platform_mail``: points the INBOUND_IMAP_* settings at it (so ``platform_imap_spec`` works)
  and offers ``deliver(sender, recipient, data)`` through the MX, a settable ``junk_rule`` and
  ``recipient_check``, and ``folders(address)`` / ``messages(address, folder)`` read as the
  master user. Every address exists (as Dovecot's allow_all_users says) unless a test sets
  ``recipient_check`` (e.g. to ``config.mailstore.platform_recipient_refusal``).
- ``platform_mta``: the stand-in MTA (InjectStandIn) delivering into that MX, with the
  settings the outbound path needs to inject into it; its log records in ``.records``.
"""

import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from email import message_from_bytes
from email.message import Message
from pathlib import Path
from typing import NamedTuple

import pytest
from imapclient import IMAPClient

from config.embedded_mta import InjectStandIn, smtp_hand_over
from config.mailstore import (
    JunkRule,
    Mailstore,
    RecipientCheck,
    address_refusal,
    mailstore_missing,
    mailstore_start,
    never_junk,
)
from sending.connection_test import ServerSpec
from tests.servers.tls import TestCA

MASTER_USER = "agent"


class StoredMessage(NamedTuple):
    uid: int
    flags: tuple[str, ...]
    message: Message


@dataclass
class PlatformMail:
    store: Mailstore
    ca_file: Path

    @property
    def junk_rule(self) -> JunkRule:
        return self.store.receiver.junk_rule

    @junk_rule.setter
    def junk_rule(self, rule: JunkRule | None) -> None:
        self.store.receiver.junk_rule = rule or never_junk

    @property
    def recipient_check(self) -> RecipientCheck:
        return self.store.receiver.recipient_check

    @recipient_check.setter
    def recipient_check(self, check: RecipientCheck | None) -> None:
        self.store.receiver.recipient_check = check or address_refusal

    def reset(self) -> None:
        self.junk_rule = None
        self.recipient_check = None

    def deliver(self, sender: str, recipient: str, data: bytes) -> None:
        """Send one message to the MX, as an MTA would; DeliveryRefused when it refuses."""
        receiver = self.store.receiver
        smtp_hand_over(receiver.host, receiver.port, sender, recipient, data)

    def spec(self, address: str, *, security: str = "none") -> ServerSpec:
        return self.store.imap_spec(address, security=security)

    def _client(self, address: str) -> IMAPClient:
        spec = self.spec(address)
        client = IMAPClient(spec.host, spec.port, ssl=False, timeout=5)
        client.login(spec.username, spec.password)
        return client

    def messages(self, address: str, folder: str = "INBOX") -> list[StoredMessage]:
        """The messages in one of the mailbox's folders, read without marking them read."""
        client = self._client(address)
        try:
            return _read(client, folder)
        finally:
            client.logout()

    def folders(self, address: str) -> dict[str, list[StoredMessage]]:
        """Every folder of the mailbox and its messages."""
        client = self._client(address)
        try:
            names = [name for _flags, _delimiter, name in client.list_folders()]
            return {name: _read(client, name) for name in names}
        finally:
            client.logout()

    def find(self, address: str, message_id: str) -> dict[str, StoredMessage]:
        """Where the message with this Message-ID is: folder -> the stored message."""
        wanted = f"<{message_id.strip('<>')}>"
        return {
            folder: stored
            for folder, messages in self.folders(address).items()
            for stored in messages
            if stored.message["Message-ID"] == wanted
        }


def _read(client: IMAPClient, folder: str) -> list[StoredMessage]:
    client.select_folder(folder, readonly=True)
    uids = client.search("ALL")
    if not uids:
        return []
    found = client.fetch(uids, ["FLAGS", "BODY.PEEK[]"])
    return [
        StoredMessage(
            uid=uid,
            flags=tuple(
                flag.decode() if isinstance(flag, bytes) else str(flag)
                for flag in found[uid][b"FLAGS"]
            ),
            message=message_from_bytes(found[uid][b"BODY[]"]),
        )
        for uid in sorted(found)
    ]


@pytest.fixture(scope="session")
def platform_mailstore(test_ca: TestCA) -> Iterator[Mailstore]:
    """Dovecot for platform mailboxes (IMAP with STARTTLS, IMAPS, LMTP) and its MX."""
    missing = mailstore_missing()
    if missing:
        pytest.fail(f"not installed: {', '.join(missing)} (Debian packages; `make test` installs)")
    # Not under pytest's temp dir: that one is private to root, and Dovecot's processes run as
    # other users. Short paths also keep Dovecot's unix sockets under their length limit.
    root = Path(tempfile.mkdtemp(prefix="tg-mailstore-"))
    root.chmod(0o755)
    store = mailstore_start(
        root, master_user=MASTER_USER, tls=(test_ca.cert_file, test_ca.key_file)
    )
    try:
        yield store
    finally:
        store.stop()
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def platform_mail(
    settings, platform_mailstore: Mailstore, test_ca: TestCA
) -> Iterator[PlatformMail]:
    """The store, with the INBOUND_IMAP_* settings pointing at it (plain IMAP on loopback)."""
    mail = PlatformMail(platform_mailstore, test_ca.ca_file)
    mail.reset()
    dovecot = platform_mailstore.dovecot
    settings.INBOUND_IMAP_HOST = dovecot.host
    settings.INBOUND_IMAP_PORT = dovecot.imap_port
    settings.INBOUND_IMAP_SECURITY = "none"
    settings.INBOUND_IMAP_MASTER_USER = dovecot.master_user
    settings.INBOUND_IMAP_MASTER_PASSWORD = dovecot.master_password
    settings.INBOUND_IMAP_MASTER_SEPARATOR = dovecot.separator
    settings.INBOUND_IMAP_CA_FILE = str(test_ca.ca_file)
    yield mail
    mail.reset()


@pytest.fixture
def platform_mta(settings, platform_mail: PlatformMail) -> Iterator[InjectStandIn]:
    """The HTTP injection stand-in delivering into the platform mailboxes' MX (a refusal there
    is the recipient's bounce); its log records are kept in ``.records``."""
    records: list[dict] = []
    stand_in = InjectStandIn(
        deliver=platform_mail.deliver, report=records.extend, username="app", password="s3cret"
    )
    stand_in.records = records  # type: ignore[attr-defined]
    stand_in.start()
    settings.OUTBOUND_TRANSPORT = "kumo_http"
    settings.KUMO_INJECT_URL = stand_in.url
    settings.KUMO_INJECT_USERNAME = "app"
    settings.KUMO_INJECT_PASSWORD = "s3cret"
    settings.KUMO_INJECT_TIMEOUT_SECONDS = 5
    yield stand_in
    stand_in.stop()
