"""Pure rules: domain names, SPF analysis, DNS records, DKIM keys (no database)."""

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sending.dkim import dkim_selector_for, dkim_tags
from sending.domain_names import DomainNameError, domain_name_normalise, organizational_domain
from sending.spf import LOOKUP_LIMIT, spf_analyse

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("Example.COM.", "example.com"),
        ("  mail.example.co.uk ", "mail.example.co.uk"),
        ("bücher.de", "xn--bcher-kva.de"),
        ("xn--bcher-kva.de", "xn--bcher-kva.de"),
        ("me.github.io", "me.github.io"),
    ],
)
def test_it_normalises_good_names(raw, expected):
    assert domain_name_normalise(raw) == expected


@pytest.mark.parametrize(
    ("raw", "why"),
    [
        ("", "Enter a domain"),
        ("co.uk", "public suffix"),
        ("github.io", "public suffix"),
        ("com", "full domain name"),
        ("192.168.1.10", "IP address"),
        ("[2001:db8::1]", "IP address"),
        ("10.0.0.300", "IP address"),
        ("https://example.com/x", "not a URL"),
        ("bob@example.com", "not a URL"),
        ("-bad.example.com", "not a valid"),
        ("a" * 64 + ".com", "not a valid"),
        (("a" * 60 + ".") * 5 + "com", "at most 253"),
        ("example.notarealtld", "known top-level"),
        ("exa mple.com", "not a URL"),
    ],
)
def test_it_refuses_bad_names_with_a_reason(raw, why):
    with pytest.raises(DomainNameError, match=why):
        domain_name_normalise(raw)


@given(
    st.from_regex(
        r"([a-z][a-z0-9]{0,10}\.){0,2}tgbrand[a-z0-9]{0,8}\.(com|org|co\.uk|de)", fullmatch=True
    )
)
def test_normalising_is_idempotent(name):
    once = domain_name_normalise(name)
    assert domain_name_normalise(once) == once
    assert domain_name_normalise(name.upper() + ".") == once


def test_the_organizational_domain_comes_from_the_suffix_list():
    assert organizational_domain("mail.sub.example.co.uk") == "example.co.uk"
    assert organizational_domain("example.com") == "example.com"


def fake_dns(records: dict[str, list[str]]):
    return lambda name: records.get(name, [])


def test_spf_counts_lookups_through_nested_includes():
    dns = fake_dns(
        {
            "_spf.platform.test": ["v=spf1 ip4:203.0.113.0/24 -all"],
            "spf.crm.test": ["v=spf1 include:a.crm.test include:b.crm.test mx -all"],
            "a.crm.test": ["v=spf1 a -all"],
            "b.crm.test": ["v=spf1 ip4:198.51.100.1 -all"],
        }
    )
    analysis = spf_analyse(
        "v=spf1 include:_spf.platform.test include:spf.crm.test mx ~all",
        platform_include="_spf.platform.test",
        txt_lookup=dns,
    )
    # include x2 + mx, then in spf.crm.test include x2 + mx, then a in a.crm.test
    assert analysis.lookups == 7
    assert analysis.authorises
    assert not analysis.problems


@given(st.integers(min_value=0, max_value=20), st.integers(min_value=0, max_value=5))
def test_spf_lookup_count_matches_the_mechanisms(includes, plain):
    records = {f"i{n}.test": ["v=spf1 ip4:192.0.2.1 -all"] for n in range(includes)}
    records["_spf.platform.test"] = ["v=spf1 -all"]
    terms = [f"include:i{n}.test" for n in range(includes)] + ["a"] * plain
    analysis = spf_analyse(
        "v=spf1 include:_spf.platform.test " + " ".join(terms) + " -all",
        platform_include="_spf.platform.test",
        txt_lookup=fake_dns(records),
    )
    assert analysis.lookups == includes + plain + 1
    assert (analysis.lookups > LOOKUP_LIMIT) == (includes + plain + 1 > LOOKUP_LIMIT)


def test_spf_finds_loops_missing_includes_and_permissive_all():
    dns = fake_dns({"loop.test": ["v=spf1 include:loop.test -all"]})
    analysis = spf_analyse(
        "v=spf1 include:loop.test include:gone.test +all",
        platform_include="_spf.platform.test",
        txt_lookup=dns,
    )
    assert not analysis.authorises
    assert analysis.permissive_all
    assert any("loop" in p for p in analysis.problems)
    assert any("gone.test has no SPF record" in p for p in analysis.problems)


def test_dkim_selectors_are_dated_and_never_reused():
    from datetime import date

    day = date(2026, 11, 23)
    assert dkim_selector_for(day, set()) == "tg20261123"
    assert dkim_selector_for(day, {"tg20261123"}) == "tg20261123b"
    assert dkim_selector_for(day, {"tg20261123", "tg20261123b"}) == "tg20261123c"


def test_dkim_tags_ignore_whitespace_inside_the_key():
    assert dkim_tags("v=DKIM1; k=rsa; p=MIIB IjAN\n Bgkq")["p"] == "MIIBIjANBgkq"
