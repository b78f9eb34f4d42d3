"""Where platform mailboxes receive: the MX in front of Dovecot files mail into INBOX or Junk,
the agent's master login reads it, unknown recipients are refused, and the embedded profile
starts its own store and delivers into it through the embedded stand-in MTA."""

import logging
import secrets
import shutil
import tempfile
from email.message import EmailMessage
from pathlib import Path

import httpx
import pytest
from imapclient import IMAPClient

import config.mailstore
from accounts.models import Workspace
from config.embedded_mta import DeliveryRefused, InjectStandIn, embedded_deliver, smtp_hand_over
from config.mailstore import (
    JUNK_ONE_IN,
    Mailstore,
    embedded_mailstore_start,
    junk_by_message_id,
    platform_imap_spec,
    platform_recipient_refusal,
    spam_flagged,
)
from sending.connection_test import imap_login
from sending.models import ConnectionType, DomainStatus, Mailbox, SendingDomain
from tests.factories import WorkspaceFactory


def new_address(domain: str = "inbound.test") -> str:
    return f"box-{secrets.token_hex(4)}@{domain}"


def message(
    sender: str, recipient: str, subject: str = "Lunch on Friday?", **headers: str
) -> tuple[str, bytes]:
    """A message and its Message-ID."""
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = recipient
    msg["Subject"] = subject
    message_id = headers.pop("message_id", f"{secrets.token_hex(8)}@mail.test")
    msg["Message-ID"] = f"<{message_id}>"
    for name, value in headers.items():
        msg[name.replace("_", "-")] = value
    msg.set_content("Hi,\n\nare we still on for Friday?\n")
    return message_id, msg.as_bytes().replace(b"\n", b"\r\n")


def message_id_where(junk: bool) -> str:
    """A Message-ID that the embedded rule's hash files into Junk (or not)."""
    while True:
        candidate = f"{secrets.token_hex(8)}@mail.test"
        if junk_by_message_id(candidate) == junk:
            return candidate


# --- The store and its MX ----------------------------------------------------------------------


def test_it_delivers_to_the_inbox_and_what_the_rule_says_is_junk_to_junk(platform_mail):
    address = new_address()
    platform_mail.junk_rule = lambda sender, recipient, data: b"Cheap pills" in data
    kept, data = message("ann@sender.test", address)
    platform_mail.deliver("ann@sender.test", address, data)
    junked, data = message("spam@sender.test", address, subject="Cheap pills")
    platform_mail.deliver("spam@sender.test", address, data)

    assert set(platform_mail.find(address, kept)) == {"INBOX"}
    assert set(platform_mail.find(address, junked)) == {"Junk"}
    (stored,) = platform_mail.messages(address, "Junk")
    assert stored.message["X-Spam-Flag"] == "YES"
    assert "\\Seen" not in stored.flags
    assert stored.message["Delivered-To"] == address


def test_a_sender_cannot_file_its_own_mail_into_junk_or_out_of_it(platform_mail):
    address = new_address()
    message_id, data = message("ann@sender.test", address, X_Spam_Flag="YES")
    platform_mail.deliver("ann@sender.test", address, data)
    (stored,) = platform_mail.find(address, message_id).values()
    assert set(platform_mail.find(address, message_id)) == {"INBOX"}
    assert stored.message["X-Spam-Flag"] is None


def test_an_address_with_a_plus_is_a_mailbox_of_its_own(platform_mail):
    plain = new_address()
    tagged = plain.replace("@", "+sales@")
    message_id, data = message("ann@sender.test", tagged)
    platform_mail.deliver("ann@sender.test", tagged, data)
    assert set(platform_mail.find(tagged, message_id)) == {"INBOX"}
    assert platform_mail.find(plain, message_id) == {}


def test_the_agent_logs_in_as_the_master_user_through_platform_imap_spec(platform_mail):
    address = new_address()
    message_id, data = message("ann@sender.test", address)
    platform_mail.deliver("ann@sender.test", address, data)

    spec = platform_imap_spec(address)
    assert spec is not None
    assert spec.username == f"{address}*agent"
    assert imap_login(spec, timeout=5, allow_private=True).ok
    client = IMAPClient(spec.host, spec.port, ssl=False, timeout=5)
    client.login(spec.username, spec.password)
    try:
        folders = {name for _flags, _delimiter, name in client.list_folders()}
        assert {"INBOX", "Junk", "Archive"} <= folders
        client.select_folder("INBOX")
        (uid,) = client.search(["HEADER", "Message-ID", message_id])
        client.add_flags([uid], [b"\\Seen"])
    finally:
        client.logout()
    (stored,) = platform_mail.messages(address)
    assert "\\Seen" in stored.flags


@pytest.mark.parametrize("security", ["ssl", "starttls"])
def test_the_master_login_works_over_tls_with_the_configured_ca(platform_mail, settings, security):
    dovecot = platform_mail.store.dovecot
    settings.INBOUND_IMAP_SECURITY = security
    settings.INBOUND_IMAP_PORT = dovecot.tls_port if security == "ssl" else dovecot.imap_port
    spec = platform_imap_spec(new_address())
    assert spec is not None
    result = imap_login(spec, timeout=5, ca_file=settings.INBOUND_IMAP_CA_FILE, allow_private=True)
    assert result.ok, result.message
    # Without our CA the certificate is not trusted.
    assert imap_login(spec, timeout=5, allow_private=True).reason == "tls_error"


def test_a_wrong_master_password_is_refused(platform_mail):
    spec = platform_mail.spec(new_address())
    wrong = type(spec)(**{**spec.__dict__, "password": "not-the-password"})
    assert imap_login(wrong, timeout=5, allow_private=True).reason == "auth_failed"


def test_platform_imap_spec_is_none_when_no_store_is_configured(settings):
    settings.INBOUND_IMAP_HOST = ""
    settings.EMBEDDED = False
    assert platform_imap_spec("alex@inbound.test") is None
    settings.INBOUND_IMAP_HOST = "imap.platform.test"
    settings.INBOUND_IMAP_MASTER_USER = ""
    assert platform_imap_spec("alex@inbound.test") is None


def test_the_stand_in_mta_delivers_into_the_store_and_reports_refusals(platform_mail, platform_mta):
    platform_mail.recipient_check = lambda address: (
        "" if address.endswith("@inbound.test") else "550 5.7.1 relaying denied"
    )
    address = new_address()
    message_id, data = message("ann@sender.test", address, X_Tenant="ws_1")
    assert inject(platform_mta, "ann@sender.test", address, data)["success_count"] == 1
    (stored,) = platform_mail.find(address, message_id).values()
    assert stored.message["X-Tenant"] is None  # the node removed its routing headers

    _, data = message("ann@sender.test", "lee@elsewhere.test", X_Tenant="ws_1")
    reply = inject(platform_mta, "ann@sender.test", "lee@elsewhere.test", data)
    assert reply["success_count"] == 1  # accepted by the node, then bounced by the MX
    platform_mta.flush()
    bounce = [r for r in platform_mta.records if r["type"] == "Bounce"]
    assert bounce[0]["recipient"] == "lee@elsewhere.test"
    assert bounce[0]["response"]["code"] == 550


def inject(stand_in: InjectStandIn, sender: str, recipient: str, data: bytes) -> dict:
    response = httpx.post(
        f"{stand_in.url}/api/inject/v1",
        json={
            "envelope_sender": sender,
            "content": data.decode(),
            "recipients": [{"email": recipient}],
        },
        auth=(stand_in.username, stand_in.password),
        timeout=10,
    )
    assert response.status_code == 200, response.text
    return response.json()


# --- Recipients: only platform mailboxes -------------------------------------------------------


def platform_domain(workspace: Workspace, name: str, tier: str = "standard") -> SendingDomain:
    return SendingDomain.objects.create(
        workspace=workspace, name=name, status=DomainStatus.VERIFIED, tier=tier
    )


def platform_mailbox(domain: SendingDomain, local_part: str) -> Mailbox:
    return Mailbox.objects.create(
        domain=domain, local_part=local_part, connection=ConnectionType.PLATFORM
    )


@pytest.mark.django_db
def test_the_mx_refuses_unknown_addresses_and_domains_with_clear_replies(platform_mail):
    domain = platform_domain(WorkspaceFactory(), f"in-{secrets.token_hex(3)}.test")
    platform_mailbox(domain, "alex")
    external = platform_domain(WorkspaceFactory(), f"ext-{secrets.token_hex(3)}.test")
    Mailbox.objects.create(domain=external, local_part="kim", connection=ConnectionType.EXTERNAL)
    known, unknown = f"alex@{domain.name}", f"nobody@{domain.name}"

    assert platform_recipient_refusal(known) == ""
    assert platform_recipient_refusal(known.upper()) == ""
    assert platform_recipient_refusal(unknown) == f"550 5.1.1 <{unknown}>: no such mailbox here"
    assert platform_recipient_refusal("lee@elsewhere.test") == (
        "550 5.7.1 <lee@elsewhere.test>: relaying denied, elsewhere.test does not receive mail here"
    )
    # An external mailbox's domain is not ours to receive for.
    assert "relaying denied" in platform_recipient_refusal(f"kim@{external.name}")
    assert platform_recipient_refusal("no-domain").startswith("501 5.1.3")

    # The MX answers RCPT with the check's reply. (The check reads the database from the MX's
    # own thread, which cannot see this test's transaction: its answers are taken here; the
    # embedded test below runs the real thing.)
    replies = {a: platform_recipient_refusal(a) for a in (known, unknown, "lee@elsewhere.test")}
    platform_mail.recipient_check = lambda address: replies[address.lower()]
    message_id, data = message("ann@sender.test", known)
    platform_mail.deliver("ann@sender.test", known, data)
    assert set(platform_mail.find(known, message_id)) == {"INBOX"}
    for address in (unknown, "lee@elsewhere.test"):
        with pytest.raises(DeliveryRefused) as refused:
            platform_mail.deliver("ann@sender.test", address, data)
        assert f"{refused.value.code} {refused.value.text}" == replies[address]

    domain.status = DomainStatus.RETIRED
    domain.save()
    assert "relaying denied" in platform_recipient_refusal(known)


# --- The embedded profile ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def embedded_base() -> Path:
    # A directory Dovecot's users can reach (pytest's own temp dir is private to its user).
    base = Path(tempfile.mkdtemp(prefix="tg-embedded-"))
    base.chmod(0o755)
    yield base / "var" / "mail"
    shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="module")
def embedded_store(embedded_base: Path) -> Mailstore:
    store = embedded_mailstore_start(embedded_base)
    assert store is not None
    yield store
    store.stop()


@pytest.mark.django_db(transaction=True)
def test_the_embedded_store_receives_what_the_embedded_stand_in_delivers(
    embedded_base, embedded_store, tmp_path
):
    assert embedded_store.dovecot.root == embedded_base
    assert (embedded_base / "dovecot.conf").exists()
    workspace = WorkspaceFactory()
    tag = secrets.token_hex(3)
    recipient = platform_mailbox(platform_domain(workspace, f"rcpt-{tag}.test"), "kim").address
    healthy = f"ann@{platform_domain(WorkspaceFactory(), f'ok-{tag}.test').name}"
    rehab = f"rex@{platform_domain(WorkspaceFactory(), f'rh-{tag}.test', tier='rehab').name}"

    stand_in = InjectStandIn(deliver=embedded_deliver(tmp_path / "outbox", lambda: embedded_store))
    stand_in.start()
    try:
        sent = {}
        for name, sender, junk_by_hash, warm_up in [
            ("warm-up", healthy, False, True),
            ("warm-up, junk by hash", healthy, True, True),
            ("not warm-up", healthy, True, False),
            ("from rehab", rehab, False, True),
        ]:
            headers = {"X_Warmup_Tag": "RT2G-ZSKA"} if warm_up else {}
            message_id, data = message(
                sender,
                recipient,
                message_id=message_id_where(junk=junk_by_hash),
                X_Tenant="ws_1",
                **headers,
            )
            assert inject(stand_in, sender, recipient, data)["success_count"] == 1
            sent[name] = message_id
        _, outside = message(healthy, "lee@prospect.test", X_Tenant="ws_1")
        assert inject(stand_in, healthy, "lee@prospect.test", outside)["success_count"] == 1
    finally:
        stand_in.stop()
    # The MX itself checks recipients against the platform mailboxes.
    receiver = embedded_store.receiver
    with pytest.raises(DeliveryRefused) as refused:
        smtp_hand_over(receiver.host, receiver.port, healthy, f"nobody@rcpt-{tag}.test", outside)
    assert refused.value.code == 550 and "no such mailbox here" in refused.value.text

    def folder(message_id: str) -> str:
        spec = embedded_store.imap_spec(recipient)
        client = IMAPClient(spec.host, spec.port, ssl=False, timeout=5)
        client.login(spec.username, spec.password)
        try:
            for name in ("INBOX", "Junk"):
                client.select_folder(name, readonly=True)
                if client.search(["HEADER", "Message-ID", message_id]):
                    return name
        finally:
            client.logout()
        return ""

    assert {name: folder(message_id) for name, message_id in sent.items()} == {
        "warm-up": "INBOX",
        "warm-up, junk by hash": "Junk",
        "not warm-up": "INBOX",
        "from rehab": "Junk",
    }
    # The Maildir is under the base directory; mail to anyone else went to the outbox.
    maildir = embedded_store.dovecot.maildir_of(recipient)
    assert maildir.is_dir() and maildir.is_relative_to(embedded_base)
    assert len(list((tmp_path / "outbox" / "new").iterdir())) == 1


def test_platform_imap_spec_uses_the_embedded_store_in_the_embedded_profile(
    settings, monkeypatch, embedded_store
):
    settings.INBOUND_IMAP_HOST = ""
    settings.EMBEDDED = True
    starts = []
    monkeypatch.setattr(config.mailstore, "_embedded", config.mailstore._EmbeddedStore())
    monkeypatch.setattr(
        config.mailstore,
        "embedded_mailstore_start",
        lambda base: starts.append(base) or embedded_store,
    )
    spec = platform_imap_spec("kim@rcpt.test")
    assert spec == embedded_store.imap_spec("kim@rcpt.test")
    assert platform_imap_spec("kim@rcpt.test") == spec
    assert starts == [Path(settings.VAR_DIR) / "mail"]  # started once, under var/mail
    assert imap_login(spec, timeout=5, allow_private=True).ok


def test_without_dovecot_the_embedded_profile_warns_once_and_has_no_store(
    settings, monkeypatch, caplog, tmp_path
):
    settings.INBOUND_IMAP_HOST = ""
    settings.EMBEDDED = True
    settings.VAR_DIR = tmp_path
    monkeypatch.setattr(
        config.mailstore, "MAILSTORE_PACKAGES", {"/nonexistent/dovecot": "dovecot-imapd"}
    )
    monkeypatch.setattr(config.mailstore, "_embedded", config.mailstore._EmbeddedStore())
    with caplog.at_level(logging.WARNING, logger="config.mailstore"):
        assert platform_imap_spec("kim@rcpt.test") is None
        assert platform_imap_spec("kim@rcpt.test") is None
    (warning,) = caplog.records
    assert "Dovecot is not installed" in warning.message
    assert "dovecot-imapd" in warning.message and "var/outbox/" in warning.message
    assert not (tmp_path / "mail").exists()


def test_the_embedded_profile_delivers_to_the_outbox_when_no_store_runs(tmp_path, monkeypatch):
    monkeypatch.setattr(config.embedded_mta, "platform_mailbox_exists", lambda address: True)
    deliver = embedded_deliver(tmp_path / "outbox", lambda: None)
    deliver("ann@sender.test", "kim@rcpt.test", message("ann@sender.test", "kim@rcpt.test")[1])
    assert len(list((tmp_path / "outbox" / "new").iterdir())) == 1


def test_a_base_inside_a_private_directory_still_gets_a_store(tmp_path, caplog):
    # pytest's temp dir is private (0700): as root, Dovecot's users cannot enter it.
    private = tmp_path / "home"
    private.mkdir(mode=0o700)
    base = private / "var" / "mail"
    with caplog.at_level(logging.WARNING, logger="config.mailstore"):
        store = embedded_mailstore_start(base)
    assert store is not None
    try:
        if config.mailstore.os.geteuid() == 0:
            assert store.dovecot.root != base
            assert "Dovecot's users cannot enter" in caplog.text
        message_id, data = message("ann@sender.test", "kim@rcpt.test")
        store.dovecot.deliver("ann@sender.test", "kim@rcpt.test", data)
        spec = store.imap_spec("kim@rcpt.test")
        client = IMAPClient(spec.host, spec.port, ssl=False, timeout=5)
        client.login(spec.username, spec.password)
        client.select_folder("INBOX", readonly=True)
        assert client.search(["HEADER", "Message-ID", message_id])
        client.logout()
    finally:
        store.stop()
        if store.dovecot.root != base:
            shutil.rmtree(store.dovecot.root, ignore_errors=True)


# --- The rules ---------------------------------------------------------------------------------


def test_about_one_in_six_warm_up_messages_is_junk_by_its_message_id():
    ids = [f"{n}.{n * 7919}@mail.test" for n in range(6000)]
    share = sum(junk_by_message_id(i) for i in ids) / len(ids)
    assert abs(share - 1 / JUNK_ONE_IN) < 0.02
    assert all(junk_by_message_id(f"<{i}>") == junk_by_message_id(i) for i in ids[:50])


def test_spam_flagged_replaces_any_flag_the_sender_wrote():
    data = (
        b"From: a@x.test\r\nX-Spam-Flag: NO\r\n  folded\r\nSubject: hi\r\n"
        b"x-spam-flag: YES\r\n\r\nX-Spam-Flag: in the body\r\n"
    )
    assert spam_flagged(data, False) == (
        b"From: a@x.test\r\nSubject: hi\r\n\r\nX-Spam-Flag: in the body\r\n"
    )
    assert spam_flagged(data, True) == (
        b"X-Spam-Flag: YES\r\nFrom: a@x.test\r\nSubject: hi\r\n\r\nX-Spam-Flag: in the body\r\n"
    )
