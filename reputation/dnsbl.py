"""DNS blocklist query names and answers (pure: no Django)."""

import ipaddress


def ip_query_name(ip: str, zone: str) -> str:
    """Reversed octets (IPv4) or nibbles (IPv6) under the zone: 2.0.0.127.zen.spamhaus.org."""
    address = ipaddress.ip_address(ip)
    if address.version == 4:
        return ".".join(reversed(str(address).split("."))) + "." + zone
    return ".".join(reversed(address.exploded.replace(":", ""))) + "." + zone


def domain_query_name(domain: str, zone: str) -> str:
    return f"{domain}.{zone}"


def interpret(addresses: list[str]) -> tuple[bool, str, str]:
    """(listed, answer, error) for a DNSBL's A records. 127.0.0.x (x >= 2) means listed; the
    127.255.255.x range is a refusal (public resolver, quota), not a listing; nothing: clean."""
    if not addresses:
        return False, "", ""
    answer = ", ".join(sorted(addresses))
    if any(a.startswith("127.255.255.") for a in addresses):
        return False, answer, f"the blocklist refused the query ({answer})"
    listed = any(
        ipaddress.ip_address(a) in ipaddress.ip_network("127.0.0.0/8") and a != "127.0.0.1"
        for a in addresses
    )
    return listed, answer, "" if listed else f"unexpected answer {answer}"
