"""Demo domains survive use: a DNS check reports but never demotes them (their DNS is not really
published), and running the demo seed again repairs what was changed."""

from io import StringIO

import pytest
from django.core import mail
from django.core.management import call_command

from sending.models import DomainStatus, Mailbox, SendingDomain
from sending.services.domains import domain_release, domain_retire
from sending.services.status import domain_quarantine
from sending.services.verification import domain_verify, domains_recheck_claim
from tests.conftest import token_client

pytestmark = pytest.mark.django_db

DEMO_NOTE = "Demo domain: its DNS is not really published, so checks change nothing."


@pytest.fixture
def demo_domain(zone, domain) -> SendingDomain:
    """A demo domain as the seed leaves it: verified, with nothing published in DNS."""
    SendingDomain.objects.filter(pk=domain.pk).update(
        is_demo=True, status=DomainStatus.VERIFIED, provider="google"
    )
    domain.refresh_from_db()
    return domain


def assert_still_verified(domain: SendingDomain) -> None:
    domain.refresh_from_db()
    assert (domain.status, domain.provider) == (DomainStatus.VERIFIED, "google")
    assert domain.dns_checked_at is not None
    assert {r["kind"]: r["status"] for r in domain.dns_results}["ownership"] == "fail"


@pytest.mark.parametrize("htmx", [True, False], ids=["htmx", "plain"])
def test_check_now_on_a_demo_domain_reports_but_does_not_demote(
    demo_domain, owner, owner_client, htmx
):
    page = f"/w/{owner.workspace.public_id}/domains/{demo_domain.public_id}/"
    headers = {"HTTP_HX_REQUEST": "true"} if htmx else {}
    response = owner_client.post(f"{page}check/", **headers)
    body = response.content.decode() if htmx else owner_client.get(response["Location"]).content
    assert_still_verified(demo_domain)
    body = body if isinstance(body, str) else body.decode()
    assert DEMO_NOTE in body  # the message and the note beside the records
    assert 'data-testid="demo-note"' in body
    assert "Verified" in body


def test_the_api_check_and_the_daily_recheck_leave_a_demo_domain_verified(demo_domain, owner):
    body = token_client(owner).post(f"/api/v1/domains/{demo_domain.public_id}/verify/").json()
    assert (body["status"], body["verified"], body["demo"]) == ("verified", True, True)
    assert body["results"]
    assert_still_verified(demo_domain)

    SendingDomain.objects.filter(pk=demo_domain.pk).update(next_check_at="2000-01-01T00:00Z")
    for pk in domains_recheck_claim():
        domain_verify(domain=SendingDomain.objects.get(pk=pk))
    assert_still_verified(demo_domain)
    assert mail.outbox == []  # nobody is told their demo "stopped sending"


def test_running_the_seed_again_repairs_the_demo():
    call_command("seed_demo", stdout=StringIO())
    demo = SendingDomain.objects.exclude(status=DomainStatus.RETIRED)
    assert demo.count() == 4
    assert all(d.is_demo for d in demo)
    penalties = dict(
        demo.exclude(status=DomainStatus.VERIFIED).values_list("name", "status")
    )  # earned by the simulated traffic: part of the demo, kept

    # Broken as a customer could break it: demoted by a check before demo domains were marked,
    # a mailbox deleted, a domain removed.
    SendingDomain.objects.filter(name="acme-outreach.com").update(
        status=DomainStatus.PENDING_DNS, is_demo=False
    )
    Mailbox.objects.filter(local_part="sam").delete()
    domain_retire(domain=SendingDomain.objects.get(name="acme-mail.io"), actor=None)

    call_command("seed_demo", stdout=StringIO())
    live = {d.name: d for d in SendingDomain.objects.exclude(status=DomainStatus.RETIRED)}
    assert set(live) == {
        "acme-outreach.com",
        "acme-mail.io",
        "globex-growth.com",
        "globex-blast.com",
    }
    assert all(d.is_demo for d in live.values())
    assert live["acme-outreach.com"].status == DomainStatus.VERIFIED
    assert sorted(live["acme-outreach.com"].mailboxes.values_list("local_part", flat=True)) == [
        "alex",
        "jordan",
        "sam",
    ]
    assert live["acme-mail.io"].mailboxes.filter(local_part="hello").exists()
    assert live["acme-mail.io"].events.exists()
    assert {name: live[name].status for name in penalties} == penalties


def test_lifting_a_demo_domains_quarantine_brings_it_back_to_verified(demo_domain, owner):
    domain_quarantine(domain=demo_domain, actor=None, reason="Spam complaints above the line.")
    outcome = domain_release(domain=demo_domain, actor=owner.user, reason="Reviewed by support")
    assert outcome.verification.verified
    assert "quarantine lifted" in outcome.summary and "verified" in outcome.summary
    assert_still_verified(demo_domain)
