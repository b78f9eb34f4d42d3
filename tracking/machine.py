"""Machine-open rules (pure): was an open pixel fetched by a person, or by a machine?

Privacy proxies (Apple Mail Privacy Protection, Google's and Yahoo's image proxies) and security
scanners fetch every image of a message, usually at delivery, whether or not anyone reads it.
Their opens are kept but flagged, and left out of the open rate the trust score uses.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

# Opens this soon after delivery (or before it) come from a proxy or a scanner: nobody opens a
# message within two seconds of its arrival.
FAST_OPEN_SECONDS = 2.0

# Fragments of user agents that name a proxy or a scanner (compared lower-case).
PROXY_AGENTS: tuple[tuple[str, str], ...] = (
    ("googleimageproxy", "Google image proxy"),
    ("ggpht.com", "Google image proxy"),
    ("yahoomailproxy", "Yahoo image proxy"),
    ("yahoo! slurp", "Yahoo crawler"),
    ("barracuda", "Barracuda scanner"),
    ("mimecast", "Mimecast scanner"),
    ("proofpoint", "Proofpoint scanner"),
    ("forcepoint", "Forcepoint scanner"),
    ("symantec", "Symantec scanner"),
    ("trendmicro", "Trend Micro scanner"),
    ("trend micro", "Trend Micro scanner"),
    ("sophos", "Sophos scanner"),
    ("cisco", "Cisco scanner"),
    ("ironport", "Cisco scanner"),
    ("fireeye", "FireEye scanner"),
    ("headlesschrome", "headless browser"),
    ("phantomjs", "headless browser"),
    ("python-requests", "script"),
    ("python-urllib", "script"),
    ("aiohttp", "script"),
    ("httpx", "script"),
    ("go-http-client", "script"),
    ("curl/", "script"),
    ("wget/", "script"),
    ("java/", "script"),
    ("okhttp", "script"),
    ("libwww-perl", "script"),
    ("bot/", "bot"),
    ("bot;", "bot"),
    ("spider", "bot"),
    ("crawler", "bot"),
)

# Apple Mail Privacy Protection fetches with this bare agent from Apple's network.
APPLE_PROXY_AGENT = "mozilla/5.0"
PROXY_NETWORKS: tuple[tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, str], ...] = (
    (ipaddress.ip_network("17.0.0.0/8"), "Apple Mail Privacy Protection"),
    (ipaddress.ip_network("2620:149::/32"), "Apple Mail Privacy Protection"),
    (ipaddress.ip_network("2a01:b740::/32"), "Apple Mail Privacy Protection"),
    (ipaddress.ip_network("66.249.64.0/19"), "Google image proxy"),
)


@dataclass(frozen=True)
class Verdict:
    machine: bool
    reason: str  # empty for a person


HUMAN = Verdict(machine=False, reason="")


def _network(ip: str | None) -> str:
    if not ip:
        return ""
    try:
        address = ipaddress.ip_address(ip)
    except ValueError:
        return ""
    for network, name in PROXY_NETWORKS:
        if address.version == network.version and address in network:
            return name
    return ""


def open_verdict(
    *, user_agent: str, seconds_since_delivery: float | None, ip: str | None = None
) -> Verdict:
    """Who fetched the pixel: a proxy or scanner (with the reason) or, failing every rule, a
    person. `seconds_since_delivery` is None when the delivery time is not known."""
    agent = user_agent.strip().lower()
    if not agent:
        return Verdict(True, "no user agent")
    for fragment, name in PROXY_AGENTS:
        if fragment in agent:
            return Verdict(True, name)
    if agent == APPLE_PROXY_AGENT:
        return Verdict(True, "Apple Mail Privacy Protection")
    network = _network(ip)
    if network:
        return Verdict(True, network)
    if seconds_since_delivery is not None and seconds_since_delivery < FAST_OPEN_SECONDS:
        return Verdict(True, "opened within seconds of delivery")
    return HUMAN


def is_machine_open(
    user_agent: str, seconds_since_delivery: float | None, ip: str | None = None
) -> bool:
    """True when the open came from a privacy proxy or a security scanner."""
    return open_verdict(
        user_agent=user_agent, seconds_since_delivery=seconds_since_delivery, ip=ip
    ).machine
