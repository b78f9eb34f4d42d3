"""DNS verification against a real DNS server on loopback (dnslib)."""

from datetime import timedelta

import pytest
from django.core import mail
from django.utils import timezone

from accounts.models import AuditLog
from sending.models import DkimKeyState, DomainStatus, SendingDomain
from sending.services.dkim import dkim_keys_retire_due, dkim_rotation_start
from sending.services.dns import domain_records
from sending.services.domains import domain_claims_expire
from sending.services.verification import domain_verify, domains_recheck_claim
from sending.tasks import domains_tick
from tests.conftest import publish

pytestmark = pytest.mark.django_db


def results_by_kind(verification) -> dict:
    return {r["kind"]: r for r in verification.results}


def test_a_fully_published_domain_is_verified(zone, domain, django_capture_on_commit_callbacks):
    publish(zone, domain)
    zone.set("acme-outreach.com", "MX", ["1 aspmx.l.google.com.", "5 alt1.aspmx.l.google.com."])
    verification = domain_verify(domain=domain)
    assert verification.verified
    results = results_by_kind(verification)
    for kind in ("ownership", "spf", "dkim", "dmarc"):
        assert results[kind]["status"] == "pass", results[kind]
    domain.refresh_from_db()
    assert domain.status == DomainStatus.VERIFIED
    assert domain.provider == "google"
    assert domain.verified_at is not None
    assert domain.next_check_at > timezone.now() + timedelta(hours=23)
    assert AuditLog.objects.filter(action="domain.verify", object_id=str(domain.pk)).exists()


@pytest.mark.parametrize(
    ("missing", "code"),
    [("ownership", "missing"), ("spf", "missing"), ("dkim", "missing"), ("dmarc", "dmarc_missing")],
)
def test_each_missing_record_keeps_the_domain_pending_and_says_why(zone, domain, missing, code):
    publish(zone, domain, skip=(missing,))
    verification = domain_verify(domain=domain)
    assert not verification.verified
    result = results_by_kind(verification)[missing]
    assert (result["status"], result["code"]) == ("fail", code)
    assert result["message"]
    domain.refresh_from_db()
    assert domain.status == DomainStatus.PENDING_DNS
    assert domain.next_check_at < timezone.now() + timedelta(hours=1)


def test_wrong_values_are_explained(zone, domain):
    publish(zone, domain, skip=("ownership", "dkim"))
    records = {r.kind: r for r in domain_records(domain)}
    zone.set(records["ownership"].host, "TXT", ["_trustgate=someone-elses-token"])
    zone.set(
        records["dkim"].host, "TXT", ["v=DKIM1; k=rsa; p=MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIB"]
    )
    results = results_by_kind(domain_verify(domain=domain))
    assert results["ownership"]["code"] == "wrong_value"
    assert "someone-elses-token" in results["ownership"]["found"][0]
    assert results["dkim"]["code"] == "dkim_mismatch"
    assert "selector" in results["dkim"]["message"]


def test_two_spf_records_fail(zone, domain):
    publish(zone, domain)
    zone.add("acme-outreach.com", "TXT", "v=spf1 include:spf.protection.outlook.com -all")
    result = results_by_kind(domain_verify(domain=domain))["spf"]
    assert result["code"] == "multiple_spf"
    assert "merge them into one" in result["message"]


def test_spf_with_too_many_lookups_fails(zone, domain, settings):
    publish(zone, domain, skip=("spf",))
    includes = []
    for n in range(10):
        zone.set(f"spf{n}.vendor.com", "TXT", ["v=spf1 ip4:192.0.2.1 -all"])
        includes.append(f"include:spf{n}.vendor.com")
    zone.set(
        "acme-outreach.com",
        "TXT",
        [f"v=spf1 include:{settings.PLATFORM_SPF_INCLUDE} {' '.join(includes)} ~all"],
    )
    result = results_by_kind(domain_verify(domain=domain))["spf"]
    assert result["code"] == "spf_too_many_lookups"
    assert "11 DNS lookups" in result["message"]


def test_spf_without_the_platform_include_fails(zone, domain):
    publish(zone, domain, skip=("spf",))
    zone.set("acme-outreach.com", "TXT", ["v=spf1 include:_spf.google.com ~all"])
    zone.set("_spf.google.com", "TXT", ["v=spf1 ip4:192.0.2.0/24 ~all"])
    assert results_by_kind(domain_verify(domain=domain))["spf"]["code"] == "spf_no_include"


def test_dmarc_must_send_reports_to_the_platform(zone, domain):
    publish(zone, domain, skip=("dmarc",))
    zone.set("_dmarc.acme-outreach.com", "TXT", ["v=DMARC1; p=reject; rua=mailto:me@acme.com"])
    result = results_by_kind(domain_verify(domain=domain))["dmarc"]
    assert result["code"] == "dmarc_no_rua"


def test_a_subdomain_inherits_the_organizational_dmarc(zone, owner, settings):
    from sending.services.domains import domain_create

    sub = domain_create(workspace=owner.workspace, actor=owner.user, name="mail.acme-outreach.com")
    publish(zone, sub, skip=("dmarc",))
    zone.set(
        "_dmarc.acme-outreach.com",
        "TXT",
        [f"v=DMARC1; p=quarantine; rua=mailto:me@acme.com,mailto:{settings.PLATFORM_DMARC_RUA}"],
    )
    verification = domain_verify(domain=sub)
    assert verification.verified
    assert "inherited from acme-outreach.com" in results_by_kind(verification)["dmarc"]["message"]


def test_a_slow_dns_server_is_an_error_not_a_verdict(zone, verified_domain):
    zone.slow("_dmarc.acme-outreach.com")
    verification = domain_verify(domain=verified_domain)
    dmarc = results_by_kind(verification)["dmarc"]
    assert (dmarc["status"], dmarc["code"]) == ("error", "lookup_failed")
    verified_domain.refresh_from_db()
    assert verified_domain.status == DomainStatus.VERIFIED  # not demoted on a timeout
    assert verified_domain.next_check_at < timezone.now() + timedelta(hours=2)


def test_the_recheck_tick_demotes_a_broken_domain_and_tells_the_owners(
    zone, verified_domain, owner, django_capture_on_commit_callbacks
):
    zone.remove(f"_dmarc.{verified_domain.name}")
    SendingDomain.objects.filter(pk=verified_domain.pk).update(
        next_check_at=timezone.now() - timedelta(minutes=1)
    )
    with django_capture_on_commit_callbacks(execute=True):
        assert domains_tick()["rechecks"] == 1
    verified_domain.refresh_from_db()
    assert verified_domain.status == DomainStatus.PENDING_DNS
    assert "DMARC" in verified_domain.status_reason
    log = AuditLog.objects.get(action="domain.dns_broken")
    assert (log.actor, log.before, log.after) == (
        None,
        {"status": "verified"},
        {"status": "pending_dns"},
    )
    assert mail.outbox[-1].to == [owner.user.email]
    assert "DMARC is missing" in mail.outbox[-1].body
    assert domains_tick()["rechecks"] == 0  # not due again yet


def test_a_due_domain_is_claimed_once(zone, verified_domain):
    SendingDomain.objects.filter(pk=verified_domain.pk).update(
        next_check_at=timezone.now() - timedelta(minutes=1)
    )
    assert domains_recheck_claim() == [verified_domain.pk]
    assert domains_recheck_claim() == []  # a second tick does not take it again


def test_dkim_rotation_switches_only_after_the_new_record_verifies(zone, verified_domain):
    old = verified_domain.dkim_keys.get(state=DkimKeyState.ACTIVE)
    new = dkim_rotation_start(domain=verified_domain, actor=None)
    kinds = [(r.kind, r.selector) for r in domain_records(verified_domain) if r.kind == "dkim"]
    assert kinds == [("dkim", old.selector), ("dkim", new.selector)]  # both published

    domain_verify(domain=verified_domain)  # new record not in DNS yet
    new.refresh_from_db()
    assert new.state == DkimKeyState.PENDING
    verified_domain.refresh_from_db()
    assert verified_domain.status == DomainStatus.VERIFIED

    publish(zone, verified_domain)
    domain_verify(domain=verified_domain)
    new.refresh_from_db()
    old.refresh_from_db()
    assert new.state == DkimKeyState.ACTIVE
    assert old.state == DkimKeyState.RETIRING
    assert AuditLog.objects.filter(action="dkim.switch").exists()

    assert dkim_keys_retire_due(now=timezone.now()) == 0
    assert dkim_keys_retire_due(now=old.retire_after + timedelta(seconds=1)) == 1
    old.refresh_from_db()
    assert (old.state, old.private_key_encrypted) == (DkimKeyState.RETIRED, "")


def test_unverified_claims_expire_and_free_the_name(domain, stranger, settings):
    SendingDomain.objects.filter(pk=domain.pk).update(
        created_at=timezone.now() - timedelta(days=settings.DOMAIN_CLAIM_TTL_DAYS + 1)
    )
    assert domain_claims_expire() == 1
    domain.refresh_from_db()
    assert domain.status == DomainStatus.RETIRED
    from sending.services.domains import domain_create

    taken = domain_create(workspace=stranger.workspace, actor=stranger.user, name=domain.name)
    assert taken.workspace == stranger.workspace
