"""Free-mail and mailbox-provider domains are refused, and over-long names get the DNS limit in
words, on the page and in the API alike."""

import pytest

from sending.domain_names import DomainNameError, domain_name_normalise, free_mail_provider
from sending.models import DkimKey, SendingDomain
from tests.conftest import token_client

PROVIDER = "free-mail or mailbox provider's domain"
LIMIT = "at most 253 characters"
# Unicode labels that fit in 253 characters but not once in punycode (xn--...).
LONG_IDN = ("üü" + "a" * 30 + ".") * 7 + "com"


@pytest.mark.parametrize(
    "name",
    [
        "gmail.com",
        "GMail.com.",
        "googlemail.com",
        "yahoo.com",
        "yahoo.co.uk",
        "outlook.com",
        "hotmail.com",
        "live.com",
        "icloud.com",
        "proton.me",
        "protonmail.com",
        "gmx.de",
        "gmx.net",
        "web.de",
        "aol.com",
        "tutanota.com",
    ],
)
def test_it_refuses_provider_domains(name):
    with pytest.raises(DomainNameError, match=PROVIDER):
        domain_name_normalise(name)


def test_it_refuses_names_under_a_provider_domain_and_says_which():
    with pytest.raises(DomainNameError, match=r"mail\.gmail\.com is under gmail\.com"):
        domain_name_normalise("mail.gmail.com")
    assert free_mail_provider("mail.gmail.com") == "gmail.com"


@pytest.mark.parametrize("name", ["acme-outreach.com", "mail.acme.co.uk", "gmail-tips.com"])
def test_it_accepts_the_customers_own_domains(name):
    assert domain_name_normalise(name) == name
    assert free_mail_provider(name) is None


@pytest.mark.parametrize(
    ("raw", "shown"),
    [("x" * 254, "has 254"), ("x" * 5000, "has 5000"), (LONG_IDN, "in its ASCII (punycode) form")],
)
def test_over_long_names_get_the_dns_limit(raw, shown):
    with pytest.raises(DomainNameError, match=LIMIT) as refused:
        domain_name_normalise(raw)
    assert shown in str(refused.value)


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("name", "message"),
    [("gmail.com", PROVIDER), ("x" * 1000, LIMIT), (LONG_IDN, LIMIT)],
    ids=["provider", "long", "long-idn"],
)
def test_the_page_refuses_beside_the_field_and_writes_nothing(owner, owner_client, name, message):
    response = owner_client.post(f"/w/{owner.workspace.public_id}/domains/", {"name": name})
    body = response.content.decode().replace("&#x27;", "'")
    assert response.status_code == 200
    error = body.split('id="id_name_error"', 1)[1].split("</ul>", 1)[0]
    assert message in error
    assert 'maxlength="' not in body.split('name="name"', 1)[1].split(">", 1)[0]
    assert not SendingDomain.objects.exists()
    assert not DkimKey.objects.exists()


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("name", "message"), [("outlook.com", PROVIDER), ("x" * 260, LIMIT), ("x" * 400, LIMIT)]
)
def test_the_api_refuses_with_the_error_shape(owner, name, message):
    response = token_client(owner).post("/api/v1/domains/", {"name": name}, format="json")
    assert response.status_code == 400
    error = response.json()["error"]
    assert message in error["message"]
    assert message in error["fields"]["name"][0]
    assert not SendingDomain.objects.exists()
