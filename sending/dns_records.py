"""The DNS records a customer publishes for a sending domain (pure: no Django)."""

from dataclasses import asdict, dataclass
from typing import Any

from sending.dkim import dkim_txt_value


@dataclass(frozen=True)
class PlatformDns:
    """The platform's own names, from settings."""

    spf_include: str
    dmarc_rua: str
    ownership_prefix: str
    tracking_host: str
    inbound_mx: str


@dataclass(frozen=True)
class DnsRecord:
    kind: str  # ownership | spf | dkim | dmarc | tracking | mx
    host: str  # fully qualified, no trailing dot
    type: str  # TXT | CNAME | MX
    value: str
    required: bool
    purpose: str
    selector: str = ""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def ownership_host(domain: str, platform: PlatformDns) -> str:
    return f"{platform.ownership_prefix}.{domain}"


def ownership_value(token: str, platform: PlatformDns) -> str:
    return f"{platform.ownership_prefix.lstrip('_')}={token}"


def dkim_host(domain: str, selector: str) -> str:
    return f"{selector}._domainkey.{domain}"


# The SPF record suggested to a domain that sends through its own servers, by its provider.
PROVIDER_SPF = {
    "google": "v=spf1 include:_spf.google.com ~all",
    "microsoft": "v=spf1 include:spf.protection.outlook.com -all",
}
OWN_SPF_FALLBACK = "v=spf1 mx ~all"


def own_spf_record(domain: str, provider: str) -> DnsRecord:
    """The domain's own SPF record: whatever authorises its provider's servers, checked for
    being one valid record that ends in ~all or -all."""
    return DnsRecord(
        kind="spf",
        host=domain,
        type="TXT",
        value=PROVIDER_SPF.get(provider, OWN_SPF_FALLBACK),
        required=True,
        purpose="Your own SPF record: it authorises the servers your mailboxes send through "
        "(your mail provider documents its include). Keep the one you have if it is valid: "
        "one record only, ending in ~all or -all. The suggested value is for the provider your "
        "MX shows; without one, mx authorises the servers that receive your mail.",
    )


def records_to_publish(
    *,
    domain: str,
    ownership_token: str,
    dkim_keys: list[tuple[str, str]],
    platform: PlatformDns,
    own_servers: bool = False,
    provider: str = "unknown",
) -> list[DnsRecord]:
    """Every record for `domain`; `dkim_keys` are (selector, public key) pairs to publish.

    A domain that sends through its own servers publishes its own SPF record and no platform
    DKIM key (its provider signs; the DKIM is confirmed from a warm-up message instead)."""
    records = [
        DnsRecord(
            kind="ownership",
            host=ownership_host(domain, platform),
            type="TXT",
            value=ownership_value(ownership_token, platform),
            required=True,
            purpose="Proves this workspace controls the domain.",
        ),
    ]
    if own_servers:
        records.append(own_spf_record(domain, provider))
        dkim_keys = []
    else:
        records.append(
            DnsRecord(
                kind="spf",
                host=domain,
                type="TXT",
                value=f"v=spf1 include:{platform.spf_include} ~all",
                required=True,
                purpose="Authorises the platform's servers to send for the domain. If you "
                f"already have an SPF record, add include:{platform.spf_include} to it instead "
                "of adding a second one.",
            )
        )
    records += [
        DnsRecord(
            kind="dkim",
            host=dkim_host(domain, selector),
            type="TXT",
            value=dkim_txt_value(public_key),
            required=True,
            purpose="The public key receivers use to check our DKIM signature on your mail.",
            selector=selector,
        )
        for selector, public_key in dkim_keys
    ]
    records += [
        DnsRecord(
            kind="dmarc",
            host=f"_dmarc.{domain}",
            type="TXT",
            value=f"v=DMARC1; p=none; rua=mailto:{platform.dmarc_rua}",
            required=True,
            purpose="Tells receivers what to do with mail that fails SPF and DKIM, and sends "
            "aggregate reports to the platform. Keep a stricter policy (quarantine, reject) if "
            f"you have one; just add mailto:{platform.dmarc_rua} to its rua list.",
        ),
        DnsRecord(
            kind="tracking",
            host=f"track.{domain}",
            type="CNAME",
            value=platform.tracking_host,
            required=False,
            purpose="Optional: open and click tracking links on your own domain.",
        ),
        DnsRecord(
            kind="mx",
            host=domain,
            type="MX",
            value=f"10 {platform.inbound_mx}",
            required=False,
            purpose="Advice: replies must reach a mailbox. Keep your provider's MX (Google, "
            "Microsoft, ...) if you have one; use this only for platform-hosted mailboxes.",
        ),
    ]
    return records
