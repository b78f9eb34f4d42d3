"""DKIM end to end: sign with the stored (encrypted) key, verify against loopback DNS."""

from email.message import EmailMessage

import dkim
import pytest

from sending.dns_checks import DnsLookup
from sending.models import DkimKeyState
from tests.conftest import publish

pytestmark = pytest.mark.django_db


def a_message(domain: str) -> bytes:
    msg = EmailMessage()
    msg["From"] = f"Alex <alex@{domain}>"
    msg["To"] = "prospect@example.org"
    msg["Subject"] = "Quick question"
    msg["Message-ID"] = f"<test-1@{domain}>"
    msg.set_content("Hi, do you have a minute next week?\n")
    return msg.as_bytes()


def test_mail_signed_with_the_stored_key_verifies_against_the_published_record(zone, domain):
    publish(zone, domain)
    key = domain.dkim_keys.get(state=DkimKeyState.ACTIVE)
    assert "PRIVATE KEY" not in key.private_key_encrypted  # encrypted at rest
    private_pem = key.private_key_pem().encode()

    message = a_message(domain.name)
    signature = dkim.sign(
        message,
        key.selector.encode(),
        domain.name.encode(),
        private_pem,
        include_headers=[b"from", b"to", b"subject", b"message-id"],
    )
    lookup = DnsLookup([zone.nameserver], timeout=1)

    def dnsfunc(name: bytes, timeout: float = 5) -> bytes | None:
        answers = lookup.txt(name.decode().rstrip("."))
        return answers[0].encode() if answers else None

    signed = signature + message
    assert dkim.verify(signed, dnsfunc=dnsfunc)
    assert zone.query_count(f"{key.selector}._domainkey.{domain.name}", "TXT") >= 1

    tampered = signed.replace(b"next week", b"tomorrow")
    assert not dkim.verify(tampered, dnsfunc=dnsfunc)

    zone.remove(f"{key.selector}._domainkey.{domain.name}")
    assert not dkim.verify(signed, dnsfunc=dnsfunc)  # no published key, no pass
