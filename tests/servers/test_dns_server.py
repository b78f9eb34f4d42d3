"""The loopback DNS server answers real dnspython clients the way real DNS does."""

import pytest
from dns import flags, message, query, rcode, rdatatype, resolver

from tests.servers.dns import DnsServer

DKIM_KEY = "v=DKIM1; k=rsa; p=" + "MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEA" * 9


def _stub(server: DnsServer, lifetime: float = 2.0) -> resolver.Resolver:
    stub = resolver.Resolver(configure=False)
    stub.nameservers = [server.host]
    stub.port = server.port
    stub.lifetime = lifetime
    return stub


def _txt(server: DnsServer, name: str) -> list[bytes]:
    answer = _stub(server).resolve(name, "TXT")
    return sorted(b"".join(rdata.strings) for rdata in answer)


def test_it_serves_txt_records(dns: DnsServer) -> None:
    dns.set("example.test", "TXT", ["v=spf1 include:_spf.example.net ~all"])

    assert _txt(dns, "example.test") == [b"v=spf1 include:_spf.example.net ~all"]


def test_it_splits_long_txt_values_into_strings_of_255_bytes(dns: DnsServer) -> None:
    assert len(DKIM_KEY) > 255 * 1.5
    dns.set("s1._domainkey.example.test", "TXT", [DKIM_KEY])

    (rdata,) = _stub(dns).resolve("s1._domainkey.example.test", "TXT")

    assert [len(s) for s in rdata.strings] == [255, len(DKIM_KEY) - 255]
    assert b"".join(rdata.strings) == DKIM_KEY.encode()


def test_it_serves_several_txt_records_at_one_name(dns: DnsServer) -> None:
    dns.set("example.test", "TXT", ["v=spf1 -all", "trustgate-verification=abc123"])
    dns.add("example.test", "TXT", "google-site-verification=xyz")

    assert _txt(dns, "example.test") == [
        b"google-site-verification=xyz",
        b"trustgate-verification=abc123",
        b"v=spf1 -all",
    ]


def test_it_matches_names_case_insensitively_with_or_without_trailing_dot(
    dns: DnsServer,
) -> None:
    dns.set("Example.TEST.", "TXT", "v=spf1 -all")

    assert _txt(dns, "example.test.") == [b"v=spf1 -all"]
    assert _txt(dns, "EXAMPLE.test") == [b"v=spf1 -all"]


def test_it_answers_nxdomain_for_unknown_names(dns: DnsServer) -> None:
    dns.set("example.test", "TXT", "v=spf1 -all")

    with pytest.raises(resolver.NXDOMAIN):
        _stub(dns).resolve("_dmarc.other.test", "TXT")


def test_it_answers_nodata_for_a_known_name_without_that_type(dns: DnsServer) -> None:
    dns.set("example.test", "TXT", "v=spf1 -all")

    with pytest.raises(resolver.NoAnswer):
        _stub(dns).resolve("example.test", "MX")


def test_it_answers_nodata_for_a_name_with_records_only_below_it(dns: DnsServer) -> None:
    dns.set("_dmarc.example.test", "TXT", "v=DMARC1; p=none")

    with pytest.raises(resolver.NoAnswer):
        _stub(dns).resolve("example.test", "TXT")


def test_it_answers_authoritatively(dns: DnsServer) -> None:
    dns.set("example.test", "TXT", "v=spf1 -all")

    response = query.udp(message.make_query("example.test", "TXT"), dns.host, 2, port=dns.port)

    assert response.flags & flags.AA
    assert response.rcode() == rcode.NOERROR


def test_it_serves_cname_and_mx_records(dns: DnsServer) -> None:
    dns.set("track.example.test", "CNAME", ["track.trustgate.test."])
    dns.set("example.test", "MX", ["20 mx2.example.test.", "10 mx1.example.test"])

    (cname,) = _stub(dns).resolve("track.example.test", "CNAME")
    mx = _stub(dns).resolve("example.test", "MX")

    assert cname.target.to_text() == "track.trustgate.test."
    assert sorted((r.preference, r.exchange.to_text()) for r in mx) == [
        (10, "mx1.example.test."),
        (20, "mx2.example.test."),
    ]


def test_it_follows_cnames_to_the_asked_type(dns: DnsServer) -> None:
    # DKIM delegated to the platform, as customers do with CNAMEs.
    dns.set("tg1._domainkey.example.test", "CNAME", "tg1._domainkey.trustgate.test")
    dns.set("tg1._domainkey.trustgate.test", "TXT", DKIM_KEY)

    answer = _stub(dns).resolve("tg1._domainkey.example.test", "TXT")

    assert answer.canonical_name.to_text() == "tg1._domainkey.trustgate.test."
    assert [b"".join(r.strings) for r in answer] == [DKIM_KEY.encode()]


def test_it_serves_dnsbl_style_a_records(dns: DnsServer) -> None:
    dns.set("2.0.0.127.zen.example.test", "A", "127.0.0.2")

    listed = _stub(dns).resolve("2.0.0.127.zen.example.test", "A")

    assert [r.address for r in listed] == ["127.0.0.2"]
    with pytest.raises(resolver.NXDOMAIN):
        _stub(dns).resolve("4.3.2.1.zen.example.test", "A")


def test_it_changes_and_removes_records(dns: DnsServer) -> None:
    dns.set("example.test", "A", "192.0.2.1")
    dns.set("example.test", "AAAA", "2001:db8::1")
    dns.set("example.test", "NS", ["ns1.example.test.", "ns2.example.test."])
    dns.set("example.test", "A", ["192.0.2.7"])

    assert [r.address for r in _stub(dns).resolve("example.test", "A")] == ["192.0.2.7"]
    assert [r.address for r in _stub(dns).resolve("example.test", "AAAA")] == ["2001:db8::1"]
    assert len(_stub(dns).resolve("example.test", "NS")) == 2

    dns.remove("example.test", "A")
    with pytest.raises(resolver.NoAnswer):
        _stub(dns).resolve("example.test", "A")

    dns.remove("example.test")
    with pytest.raises(resolver.NXDOMAIN):
        _stub(dns).resolve("example.test", "AAAA")


def test_it_rejects_unsupported_types_and_malformed_values(dns: DnsServer) -> None:
    with pytest.raises(ValueError):
        dns.set("example.test", "SRV", ["0 5 5060 sip.example.test."])
    with pytest.raises(ValueError):
        dns.set("example.test", "MX", ["mx.example.test."])
    with pytest.raises(ValueError):
        dns.set("example.test", "A", ["300.0.0.1"])


def test_it_never_answers_slow_names_without_blocking_other_queries(dns: DnsServer) -> None:
    dns.slow("slow.example.test")
    dns.set("fast.example.test", "TXT", "ok")

    with pytest.raises(resolver.LifetimeTimeout):
        _stub(dns, lifetime=0.5).resolve("slow.example.test", "TXT")

    # The unanswered queries are still pending in their threads; others are served.
    assert _txt(dns, "fast.example.test") == [b"ok"]


def test_it_answers_servfail_when_asked(dns: DnsServer) -> None:
    dns.servfail("broken.example.test")

    response = query.udp(
        message.make_query("broken.example.test", "TXT"), dns.host, 2, port=dns.port
    )

    assert response.rcode() == rcode.SERVFAIL
    with pytest.raises(resolver.NoNameservers):
        _stub(dns).resolve("broken.example.test", "TXT")


def test_it_logs_queries(dns: DnsServer) -> None:
    dns.set("example.test", "TXT", "v=spf1 -all")

    _stub(dns).resolve("Example.test.", "TXT")
    with pytest.raises(resolver.NXDOMAIN):
        _stub(dns).resolve("_dmarc.example.test", "TXT")

    assert dns.queries == [("example.test", "TXT"), ("_dmarc.example.test", "TXT")]
    assert dns.query_count("EXAMPLE.test.", "txt") == 1
    assert dns.query_count("_dmarc.example.test") == 1


@pytest.mark.parametrize("round_", [1, 2])
def test_it_starts_each_test_empty(dns: DnsServer, round_: int) -> None:
    # Whichever round runs second sees what the first one left behind, if anything.
    assert dns.queries == []
    for name in ("leftover.example.test", "slow.example.test", "broken.example.test"):
        with pytest.raises(resolver.NXDOMAIN):
            _stub(dns).resolve(name, "TXT")

    dns.set("leftover.example.test", "TXT", f"round {round_}")
    dns.slow("slow.example.test")
    dns.servfail("broken.example.test")


def test_it_answers_over_tcp(dns: DnsServer) -> None:
    dns.set("example.test", "MX", "10 mx.example.test.")

    response = query.tcp(message.make_query("example.test", "MX"), dns.host, 2, port=dns.port)

    assert response.flags & flags.AA
    (rrset,) = response.answer
    assert rrset.rdtype == rdatatype.MX
    assert [r.exchange.to_text() for r in rrset] == ["mx.example.test."]


def test_it_truncates_big_udp_answers_and_the_resolver_retries_over_tcp(
    dns: DnsServer,
) -> None:
    values = [f"record {i} " + "x" * 300 for i in range(5)]
    dns.set("big.example.test", "TXT", values)

    udp = query.udp(message.make_query("big.example.test", "TXT"), dns.host, 2, port=dns.port)
    assert udp.flags & flags.TC
    assert udp.answer == []

    assert _txt(dns, "big.example.test") == sorted(v.encode() for v in values)
    # The raw query above, then the resolver's UDP try and its TCP retry.
    assert dns.query_count("big.example.test", "TXT") == 3


def test_it_fits_bigger_udp_answers_for_edns_clients(dns: DnsServer) -> None:
    dns.set("example.test", "TXT", ["a" * 400, "b" * 400])  # ~850 bytes: over 512, under 1232

    plain = query.udp(message.make_query("example.test", "TXT"), dns.host, 2, port=dns.port)
    edns = query.udp(
        message.make_query("example.test", "TXT", use_edns=0, payload=4096),
        dns.host,
        2,
        port=dns.port,
    )

    assert plain.flags & flags.TC
    assert not edns.flags & flags.TC
    assert edns.edns == 0
    assert len(edns.answer[0]) == 2
