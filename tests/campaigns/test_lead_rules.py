from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from campaigns.lead_rules import (
    ROLE_LOCAL_PARTS,
    address_normalize,
    is_role_address,
    recipient_provider,
    time_zone_guess,
)


def test_it_normalises_case_and_international_domains():
    assert address_normalize("  Zoe.Muller@Example.COM ") == "zoe.muller@example.com"
    assert address_normalize("joerg@bücher.example") == "joerg@xn--bcher-kva.example"


@pytest.mark.parametrize(
    "bad",
    ["", "   ", "no-at-sign", "two@@example.com", "a@b", "a b@example.com", "zoë@example.com"],
)
def test_it_refuses_what_is_not_one_address_with_a_reason(bad):
    with pytest.raises(ValueError) as error:
        address_normalize(bad)
    assert str(error.value)


@pytest.mark.parametrize(
    "address",
    [
        "info@acme.test",
        "Sales@acme.test",
        "info+eu@acme.test",
        "sales2@acme.test",
        "no-reply@acme.test",
        "customer.service@acme.test",
        "hr@acme.test",
    ],
)
def test_role_addresses_are_recognised(address):
    assert is_role_address(address)


@pytest.mark.parametrize(
    "address", ["zoe@acme.test", "info.smith@acme.test", "salesforce-admin-bob@acme.test"]
)
def test_people_are_not_roles(address):
    assert not is_role_address(address)


@given(
    role=st.sampled_from(sorted(ROLE_LOCAL_PARTS)),
    tag=st.text("abc123", max_size=5),
    digits=st.text("0123456789", max_size=3),
)
def test_a_tag_or_a_number_never_hides_a_role(role, tag, digits):
    local = role + digits + (f"+{tag}" if tag else "")
    assert is_role_address(f"{local}@example.test")


def test_the_country_domain_suggests_a_time_zone_and_generic_ones_do_not():
    assert time_zone_guess("hans@firma.de") == "Europe/Berlin"
    assert time_zone_guess("amy@shop.co.uk") == "Europe/London"
    assert time_zone_guess("ken@corp.co.jp") == "Asia/Tokyo"
    assert time_zone_guess("bob@startup.com") is None
    assert time_zone_guess("bob@startup.io") is None


@given(st.emails())
def test_every_guess_is_a_real_zone(address):
    zone = time_zone_guess(address)
    assert zone is None or ZoneInfo(zone)


def test_consumer_providers_are_told_apart():
    assert recipient_provider("a@gmail.com") == "google"
    assert recipient_provider("a@googlemail.com") == "google"
    assert recipient_provider("a@hotmail.de") == "microsoft"
    assert recipient_provider("a@outlook.com") == "microsoft"
    assert recipient_provider("a@acme.test") == "other"
