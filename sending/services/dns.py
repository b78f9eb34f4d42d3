"""The records a domain publishes and the resolver that checks them."""

from django.conf import settings

from sending.dns_checks import DnsLookup
from sending.dns_records import DnsRecord, PlatformDns, records_to_publish
from sending.models import DkimKey, DkimKeyState, SendingDomain


def platform_dns() -> PlatformDns:
    return PlatformDns(
        spf_include=settings.PLATFORM_SPF_INCLUDE,
        dmarc_rua=settings.PLATFORM_DMARC_RUA,
        ownership_prefix=settings.PLATFORM_OWNERSHIP_PREFIX,
        tracking_host=settings.PLATFORM_TRACKING_HOST,
        inbound_mx=settings.PLATFORM_INBOUND_MX,
    )


def dns_lookup() -> DnsLookup:
    return DnsLookup(settings.DNS_NAMESERVERS, settings.DNS_TIMEOUT_SECONDS)


def domain_published_keys(domain: SendingDomain) -> list[DkimKey]:
    """Keys whose TXT record must stay published: signing, waiting to sign, being replaced."""
    live = (DkimKeyState.ACTIVE, DkimKeyState.PENDING, DkimKeyState.RETIRING)
    return [k for k in domain.dkim_keys.all() if k.state in live]


def domain_records(domain: SendingDomain) -> list[DnsRecord]:
    """Every record the customer publishes for the domain, for how it sends: through the
    platform (its SPF include and DKIM key) or through its own servers (its own SPF)."""
    return records_to_publish(
        domain=domain.name,
        ownership_token=domain.ownership_token,
        dkim_keys=[(k.selector, k.public_key) for k in domain_published_keys(domain)],
        platform=platform_dns(),
        own_servers=domain.own_servers,
        provider=domain.provider,
    )
