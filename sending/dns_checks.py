"""Checks of a domain's published DNS records, explained in plain words (no Django).

DNS is reached through `DnsLookup` (dnspython against configured resolvers). A record that is
missing or wrong *fails*; a lookup that times out or gets a server failure is an *error*: it
says nothing about the record, so it never demotes a domain on its own.
"""

from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

import dns.exception
import dns.name
import dns.nameserver
import dns.rdatatype
import dns.resolver

from sending.dkim import dkim_tags
from sending.dns_records import DnsRecord, PlatformDns
from sending.domain_names import organizational_domain
from sending.spf import (
    LOOKUP_LIMIT,
    SpfAnalysis,
    SpfLookupError,
    spf_analyse,
    spf_records,
    spf_syntax_problems,
)

PASS, FAIL, ERROR, WARN, INFO = "pass", "fail", "error", "warn", "info"

GOOGLE_MX = ("google.com", "googlemail.com")
MICROSOFT_MX = ("outlook.com", "microsoft.com", "office365.us")


class DnsLookupError(Exception):
    """The question could not be answered (timeout, SERVFAIL, no resolver)."""


class DnsLookup:
    """Answers TXT/MX/CNAME questions; absent names and types give empty answers."""

    def __init__(self, nameservers: Iterable[str] = (), timeout: float = 3.0) -> None:
        servers = list(nameservers)
        self.resolver = dns.resolver.Resolver(configure=not servers)
        if servers:
            self.resolver.nameservers = [self._nameserver(s) for s in servers]
        self.resolver.lifetime = timeout
        self.resolver.timeout = timeout
        self.resolver.cache = None

    @staticmethod
    def _nameserver(spec: str) -> dns.nameserver.Do53Nameserver:
        host, _, port = spec.rpartition(":") if spec.count(":") == 1 else (spec, "", "")
        return dns.nameserver.Do53Nameserver(host or spec, int(port) if port else 53)

    def _answer(self, name: str, rdtype: str) -> list[Any]:
        try:
            return list(self.resolver.resolve(name, rdtype, search=False))
        except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
            return []
        except dns.resolver.LifetimeTimeout:
            raise DnsLookupError(f"the lookup of {name} ({rdtype}) timed out") from None
        except (dns.resolver.NoNameservers, dns.exception.DNSException) as error:
            raise DnsLookupError(f"the lookup of {name} ({rdtype}) failed: {error}") from None

    def txt(self, name: str) -> list[str]:
        return [b"".join(r.strings).decode("utf-8", "replace") for r in self._answer(name, "TXT")]

    def mx(self, name: str) -> list[str]:
        answers = sorted(self._answer(name, "MX"), key=lambda r: r.preference)
        return [r.exchange.to_text(omit_final_dot=True).lower() for r in answers]

    def a(self, name: str) -> list[str]:
        return [r.address for r in self._answer(name, "A")]

    def cname(self, name: str) -> str | None:
        answers = self._answer(name, "CNAME")
        return answers[0].target.to_text(omit_final_dot=True).lower() if answers else None


@dataclass
class CheckResult:
    kind: str
    host: str
    type: str
    expected: str
    required: bool
    status: str
    code: str
    message: str
    found: list[str] = field(default_factory=list)
    selector: str = ""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _result(
    record: DnsRecord, status: str, code: str, message: str, found: Iterable[str] = ()
) -> CheckResult:
    return CheckResult(
        kind=record.kind,
        host=record.host,
        type=record.type,
        expected=record.value,
        required=record.required,
        status=status,
        code=code,
        message=message,
        found=list(found),
        selector=record.selector,
    )


def _norm(value: str) -> str:
    return " ".join(value.split()).strip().strip('"').lower()


def check_ownership(record: DnsRecord, lookup: DnsLookup) -> CheckResult:
    found = lookup.txt(record.host)
    if any(_norm(v) == _norm(record.value) for v in found):
        return _result(record, PASS, "ok", "Ownership proven.", found)
    if not found:
        return _result(
            record,
            FAIL,
            "missing",
            f"No TXT record at {record.host} yet. Publish it; new records can take a few "
            "minutes to show up.",
        )
    return _result(
        record,
        FAIL,
        "wrong_value",
        f"The TXT record at {record.host} does not hold this workspace's token. Replace its "
        f"value with {record.value}.",
        found,
    )


def _spf_unusable(record: DnsRecord, analysis: SpfAnalysis, spf: list[str]) -> CheckResult | None:
    """The failure of an SPF record that receivers would ignore: too many lookups, or broken."""
    if analysis.lookups > LOOKUP_LIMIT:
        return _result(
            record,
            FAIL,
            "spf_too_many_lookups",
            f"Your SPF record needs {analysis.lookups} DNS lookups; receivers stop at "
            f"{LOOKUP_LIMIT} and then ignore it. Remove includes you no longer use or flatten "
            "some of them into ip4:/ip6: ranges.",
            spf,
        )
    if analysis.problems:
        return _result(record, FAIL, "spf_broken", " ".join(analysis.problems), spf)
    return None


def check_spf(record: DnsRecord, lookup: DnsLookup, platform: PlatformDns) -> CheckResult:
    found = lookup.txt(record.host)
    spf = spf_records(found)
    if not spf:
        return _result(
            record,
            FAIL,
            "missing",
            f"No SPF record on {record.host}. Publish {record.value}.",
            found,
        )
    if len(spf) > 1:
        return _result(
            record,
            FAIL,
            "multiple_spf",
            f"{record.host} has {len(spf)} SPF records. Receivers treat that as an error and "
            f"ignore all of them: merge them into one record that also contains "
            f"include:{platform.spf_include}.",
            spf,
        )
    try:
        analysis = spf_analyse(spf[0], platform_include=platform.spf_include, txt_lookup=lookup.txt)
    except (DnsLookupError, SpfLookupError) as error:
        return _result(
            record, ERROR, "lookup_failed", f"Could not follow the SPF includes: {error}.", spf
        )
    if not analysis.authorises:
        return _result(
            record,
            FAIL,
            "spf_no_include",
            f"Your SPF record does not authorise the platform. Add include:{platform.spf_include} "
            "before the final all.",
            spf,
        )
    unusable = _spf_unusable(record, analysis, spf)
    if unusable is not None:
        return unusable
    if analysis.permissive_all:
        return _result(
            record,
            FAIL,
            "spf_permissive",
            "Your SPF record ends in +all, which lets anyone on the internet send as your "
            "domain. Use ~all or -all.",
            spf,
        )
    return _result(
        record,
        PASS,
        "ok",
        f"SPF authorises the platform ({analysis.lookups} of {LOOKUP_LIMIT} lookups used).",
        spf,
    )


ALL_WORDS = {"?": "?all (neutral)", "+": "+all"}


def check_own_spf(record: DnsRecord, lookup: DnsLookup) -> CheckResult:
    """The SPF record of a domain that sends through its own servers: one record, valid, under
    the lookup limit, authorising some server and ending in ~all or -all. The platform's
    include is not needed (the platform does not send its mail)."""
    found = lookup.txt(record.host)
    spf = spf_records(found)
    if not spf:
        return _result(
            record,
            FAIL,
            "missing",
            f"No SPF record on {record.host}. Publish the one your mail provider gives you "
            f"(for example {record.value}).",
            found,
        )
    if len(spf) > 1:
        return _result(
            record,
            FAIL,
            "multiple_spf",
            f"{record.host} has {len(spf)} SPF records. Receivers treat that as an error and "
            "ignore all of them: merge them into one.",
            spf,
        )
    problems = spf_syntax_problems(spf[0])
    if problems:
        return _result(
            record,
            FAIL,
            "spf_invalid",
            "Your SPF record is not valid, so receivers ignore it: " + " ".join(problems),
            spf,
        )
    try:
        analysis = spf_analyse(spf[0], platform_include="", txt_lookup=lookup.txt)
    except (DnsLookupError, SpfLookupError) as error:
        return _result(
            record, ERROR, "lookup_failed", f"Could not follow the SPF includes: {error}.", spf
        )
    unusable = _spf_unusable(record, analysis, spf)
    if unusable is not None:
        return unusable
    if not analysis.authorising_terms:
        return _result(
            record,
            FAIL,
            "spf_authorises_nobody",
            "Your SPF record authorises no server, so your own mail fails SPF. Add your "
            f"provider's include (for example {record.value}).",
            spf,
        )
    if analysis.final_all not in ("-", "~"):
        ending = ALL_WORDS.get(analysis.final_all)
        problem = f"ends in {ending}" if ending else "has no final all"
        return _result(
            record,
            FAIL,
            "spf_permissive" if analysis.final_all == "+" else "spf_no_final_all",
            f"Your SPF record {problem}, so mail from any server passes or stays neutral. End "
            "it with ~all or -all.",
            spf,
        )
    return _result(
        record,
        PASS,
        "ok",
        f"Your own SPF record is valid ({analysis.lookups} of {LOOKUP_LIMIT} lookups used).",
        spf,
    )


def check_dkim(record: DnsRecord, lookup: DnsLookup) -> CheckResult:
    found = [v for v in lookup.txt(record.host) if "p=" in v.replace(" ", "")]
    if not found:
        return _result(
            record, FAIL, "missing", f"No DKIM key at {record.host}. Publish the record shown."
        )
    expected = dkim_tags(record.value)["p"]
    published = [dkim_tags(v).get("p", "") for v in found]
    if expected in published:
        return _result(record, PASS, "ok", "The DKIM key matches the one we sign with.", found)
    if published == [""]:
        return _result(
            record, FAIL, "dkim_revoked", f"The key at {record.host} is empty (revoked).", found
        )
    return _result(
        record,
        FAIL,
        "dkim_mismatch",
        f"The key published at {record.host} is not the one we generated for selector "
        f"{record.selector}: a copy-paste may have cut it, or it is an old key. Paste the "
        "whole value again.",
        found,
    )


def _dmarc_at(host: str, lookup: DnsLookup) -> list[str]:
    return [v for v in lookup.txt(host) if _norm(v).replace(" ", "").startswith("v=dmarc1")]


def check_dmarc(
    record: DnsRecord, lookup: DnsLookup, platform: PlatformDns, domain: str
) -> CheckResult:
    host, found = record.host, _dmarc_at(record.host, lookup)
    inherited = ""
    org = organizational_domain(domain)
    if not found and org != domain:
        host, found, inherited = f"_dmarc.{org}", _dmarc_at(f"_dmarc.{org}", lookup), org
    if not found:
        return _result(
            record,
            FAIL,
            "dmarc_missing",
            f"DMARC is missing: no record at {record.host}. Publish {record.value}.",
        )
    if len(found) > 1:
        return _result(
            record,
            FAIL,
            "dmarc_multiple",
            f"{host} has {len(found)} DMARC records; receivers ignore all of them. Keep one.",
            found,
        )
    tags = {
        k.strip().lower(): v.strip()
        for k, _, v in (part.partition("=") for part in found[0].split(";"))
        if k.strip()
    }
    policy = tags.get("sp" if inherited and "sp" in tags else "p", "").lower()
    if policy not in ("none", "quarantine", "reject"):
        return _result(
            record,
            FAIL,
            "dmarc_invalid",
            f"The DMARC record at {host} has no valid policy (p=none, quarantine or reject).",
            found,
        )
    rua = [u.strip().lower() for u in tags.get("rua", "").split(",") if u.strip()]
    if f"mailto:{platform.dmarc_rua}".lower() not in rua:
        return _result(
            record,
            FAIL,
            "dmarc_no_rua",
            f"The DMARC record at {host} does not send reports to the platform. Add "
            f"mailto:{platform.dmarc_rua} to its rua= list (keep your own addresses too).",
            found,
        )
    where = f" (inherited from {inherited})" if inherited else ""
    return _result(record, PASS, "ok", f"DMARC policy p={policy}{where}.", found)


def check_tracking(record: DnsRecord, lookup: DnsLookup) -> CheckResult:
    target = lookup.cname(record.host)
    if target is None:
        return _result(
            record, INFO, "missing", "Not set up (optional): tracking links use our domain."
        )
    if target == record.value.lower().rstrip("."):
        return _result(record, PASS, "ok", "Tracking links will use your domain.", [target])
    return _result(
        record,
        WARN,
        "cname_wrong",
        f"{record.host} points to {target}, not {record.value}; tracking stays on our domain.",
        [target],
    )


def provider_from_mx(hosts: list[str]) -> str:
    for host in hosts:
        if host.endswith(GOOGLE_MX):
            return "google"
        if host.endswith(MICROSOFT_MX):
            return "microsoft"
    return "other" if hosts else "unknown"


def check_mx(record: DnsRecord, lookup: DnsLookup) -> CheckResult:
    hosts = lookup.mx(record.host)
    provider = provider_from_mx(hosts)
    if not hosts:
        return _result(
            record,
            WARN,
            "mx_missing",
            f"{record.host} has no MX record, so replies to your mailboxes will bounce. Add "
            f"your mail provider's MX, or {record.value} for platform-hosted mailboxes.",
        )
    label = {"google": "Google Workspace", "microsoft": "Microsoft 365"}.get(provider, hosts[0])
    return _result(record, INFO, "ok", f"Replies go to {label}. Keep this MX.", hosts)


def domain_checks(
    *,
    domain: str,
    records: list[DnsRecord],
    lookup: DnsLookup,
    platform: PlatformDns,
    own_servers: bool = False,
) -> list[CheckResult]:
    """Check every record; a lookup failure becomes an `error` result for that record only.
    `own_servers`: the domain sends through its own servers, so its SPF is its own."""
    results = []
    for record in records:
        try:
            if record.kind == "ownership":
                result = check_ownership(record, lookup)
            elif record.kind == "spf" and own_servers:
                result = check_own_spf(record, lookup)
            elif record.kind == "spf":
                result = check_spf(record, lookup, platform)
            elif record.kind == "dkim":
                result = check_dkim(record, lookup)
            elif record.kind == "dmarc":
                result = check_dmarc(record, lookup, platform, domain)
            elif record.kind == "tracking":
                result = check_tracking(record, lookup)
            else:
                result = check_mx(record, lookup)
        except DnsLookupError as error:
            result = _result(
                record,
                ERROR,
                "lookup_failed",
                f"We could not check this record: {error}. We will try again shortly.",
            )
        results.append(result)
    return results
