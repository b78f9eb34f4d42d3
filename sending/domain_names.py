"""Sending-domain name rules (pure: no Django).

A customer types a name; we normalise it to lower-case ASCII (IDNA 2008 / punycode) and refuse
what cannot be a sending domain: IP addresses, bad labels, over-long names, public suffixes
(`co.uk`, `github.io`: nobody can claim a whole suffix) and names under no known suffix.
"""

import ipaddress
import re
from functools import cache

import idna
from publicsuffixlist import PublicSuffixList

LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")
MAX_NAME = 253


class DomainNameError(ValueError):
    """The name cannot be a sending domain; the message says why in plain words."""


@cache
def _psl() -> PublicSuffixList:
    return PublicSuffixList()


def domain_name_normalise(raw: str) -> str:
    """The canonical ASCII form of a sending-domain name, or DomainNameError."""
    name = (raw or "").strip().rstrip(".").lower()
    if not name:
        raise DomainNameError("Enter a domain name, such as example.com.")
    if len(name) > MAX_NAME:
        raise DomainNameError(f"A domain name has at most {MAX_NAME} characters.")
    if "://" in name or "/" in name or "@" in name or " " in name:
        raise DomainNameError("Enter only the domain name (example.com), not a URL or address.")
    try:
        ipaddress.ip_address(name.strip("[]"))
    except ValueError:
        pass
    else:
        raise DomainNameError("An IP address is not a domain name.")
    try:
        ascii_name = idna.encode(name, uts46=True).decode("ascii")
    except idna.IDNAError as error:
        shown = raw.strip()[:80]
        raise DomainNameError(f"“{shown}” is not a valid domain name ({error}).") from None
    if len(ascii_name) > MAX_NAME:
        raise DomainNameError(f"A domain name has at most {MAX_NAME} characters.")
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
