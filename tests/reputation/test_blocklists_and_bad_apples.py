"""DNSBL monitoring against a loopback DNS server, and bad-apple isolation in shared pools."""

from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

from accounts.models import AuditLog, User
from reputation.core.pool_map import key, kumo_redis
from reputation.dnsbl import interpret, ip_query_name
from reputation.models import BlocklistCheck, EgressSource, Pool, PoolMembership
from reputation.services.bad_apples import bad_apples_isolate
from reputation.services.blocklists import blocklists_check, pool_rotate
from sending.models import DomainStatus
from sending.services.domains import domain_create
from sending.services.verification import domain_verify
from tests.conftest import publish
from tests.reputation.records import complaint, traffic

pytestmark = pytest.mark.django_db


def test_query_names_and_answers():
    assert ip_query_name("198.51.100.7", "zen.example") == "7.100.51.198.zen.example"
    assert ip_query_name("2001:db8::1", "z.example").startswith("1.0.0.0.")
    assert interpret([]) == (False, "", "")
    assert interpret(["127.0.0.2"])[0] is True
    listed, _, error = interpret(["127.255.255.254"])
    assert (listed, bool(error)) == (False, True)  # a refusal is not a listing


@pytest.fixture
def sources(db, settings):
    settings.DNSBL_IP_ZONES = ["zen.dnsbl.test", "bl.dnsbl.test"]
    settings.DNSBL_DOMAIN_ZONES = ["dbl.dnsbl.test"]
    today = timezone.localdate()
    premium = Pool.objects.create(name="premium")
    for name in ("standard", "rehab", "quarantine"):
        Pool.objects.create(name=name)
    a = EgressSource.objects.create(
        name="ip-a",
        source_address="198.51.100.10",
        ehlo_domain="a.mta.test",
        warmup_started_on=today - timedelta(days=90),
    )
    b = EgressSource.objects.create(
        name="ip-b",
        source_address="198.51.100.11",
        ehlo_domain="b.mta.test",
        warmup_started_on=today - timedelta(days=90),
    )
    spare = EgressSource.objects.create(
        name="ip-spare",
        source_address="198.51.100.12",
        ehlo_domain="c.mta.test",
        state="standby",
        warmup_started_on=today - timedelta(days=300),
    )
    PoolMembership.objects.create(pool=premium, source=a)
    PoolMembership.objects.create(pool=premium, source=b)
    return a, b, spare


def test_a_listed_ip_is_pulled_and_a_standby_source_promoted(
    zone, sources, settings, django_capture_on_commit_callbacks, mailoutbox
):
    a, b, spare = sources
    settings.STAFF_ALERT_EMAILS = ["ops@platform.test"]
    zone.set(ip_query_name(a.source_address, "zen.dnsbl.test"), "A", ["127.0.0.2"])
    zone.slow(ip_query_name(b.source_address, "bl.dnsbl.test"))  # a timeout is not a listing
    with django_capture_on_commit_callbacks(execute=True):
        result = blocklists_check()
    a.refresh_from_db()
    b.refresh_from_db()
    spare.refresh_from_db()
    assert (a.state, b.state, spare.state) == ("pulled", "active", "active")
    assert result["sources_pulled"] == 1
    assert spare.warmup_started_on == timezone.localdate()  # its own warm-up starts now
    assert set(spare.pools.values_list("name", flat=True)) == {"premium"}
    checks = BlocklistCheck.objects.filter(kind="ip")
    assert checks.filter(listed=True).get().target == a.source_address
    assert checks.exclude(error="").get().target == b.source_address
    pool = kumo_redis().hget(key("pools"), "premium")
    assert b'"ip-a","weight":0' in pool
    assert AuditLog.objects.filter(action="source.pull", actor=None).exists()
    assert any("ops@platform.test" in m.to for m in mailoutbox)


def test_a_listed_domain_goes_to_cooldown(zone, sources, owner, verified_domain):
    zone.set(f"{verified_domain.name}.dbl.dnsbl.test", "A", ["127.0.1.2"])
    assert blocklists_check()["domains_cooled"] == 1
    verified_domain.refresh_from_db()
    assert verified_domain.status == DomainStatus.COOLDOWN
    assert "dbl.dnsbl.test" in verified_domain.status_reason


def test_clean_answers_change_nothing(zone, sources, verified_domain):
    result = blocklists_check()
    assert (result["sources_pulled"], result["domains_cooled"]) == (0, 0)
    assert result["checks"] == 3 * 2 + 1  # three sources (standby included) x two zones + domain
    assert not BlocklistCheck.objects.filter(listed=True).exists()


def test_staff_rotate_a_pool(sources, owner):
    a, _b, _spare = sources
    swapped = pool_rotate(pool=Pool.objects.get(name="premium"), actor=owner.user, reason="test")
    assert swapped == ["ip-a -> ip-spare"]
    a.refresh_from_db()
    assert a.state == "standby"


def test_a_bad_apple_is_quarantined_and_the_pool_spared(post, owner, zone, sources, settings):
    settings.BAD_APPLE_MIN_SENT = 100
    good, bad = [], None
    for n, name in enumerate(("clean-one.com", "clean-two.com", "dirty-one.com")):
        domain = domain_create(workspace=owner.workspace, actor=owner.user, name=name)
        publish(zone, domain)
        domain_verify(domain=domain)
        domain.tier = "standard"
        domain.save(update_fields=["tier"])
        if name.startswith("dirty"):
            bad = domain
        else:
            good.append(domain)
    for domain in good:
        post(traffic(domain, 100, prefix=f"{domain.name}-"))
    post(traffic(bad, 100, bounces=20, prefix="bad-"))  # the pool: 20 / 300 = 6.7 % > 5 %
    for domain in (*good, bad):  # keep them in the standard pool for the hour being judged
        domain.refresh_from_db()
        domain.tier = "standard"
        domain.status = "verified"
        domain.save(update_fields=["tier", "status"])
    assert bad_apples_isolate() == ["dirty-one.com"]
    bad.refresh_from_db()
    assert bad.status == DomainStatus.QUARANTINED
    evidence = AuditLog.objects.filter(action="domain.quarantine", object_id=str(bad.pk)).get()
    assert "Bad apple in the standard pool" in evidence.reason
    assert "20 hard bounces" in evidence.reason
    for domain in good:
        domain.refresh_from_db()
        assert domain.status == DomainStatus.VERIFIED


def test_a_pool_under_the_lines_quarantines_nobody(post, owner, zone, sources, settings):
    settings.BAD_APPLE_MIN_SENT = 100
    domain = domain_create(workspace=owner.workspace, actor=owner.user, name="fine-sender.com")
    publish(zone, domain)
    domain_verify(domain=domain)
    post([*traffic(domain, 200, bounces=4), complaint(domain, "p1@example.org")])
    assert bad_apples_isolate() == []


def test_the_pool_overview_page_shows_weights_warmup_listing_and_tenants(sources, verified_domain):
    staff = User.objects.create_user(email="ops@ops.test", is_staff=True, is_superuser=True)
    client = Client()
    client.force_login(staff)
    body = client.get("/admin/reputation/pool/").content.decode()
    assert "ip-a 500 (active, week 13; not checked yet)" in body
    assert "always empty" in body
    sources_page = client.get("/admin/reputation/egresssource/").content.decode()
    assert "week 13: equal share" in sources_page


def test_a_pool_with_a_single_sender_has_nobody_to_protect(post, owner, zone, sources, settings):
    settings.BAD_APPLE_MIN_SENT = 100
    domain = domain_create(workspace=owner.workspace, actor=owner.user, name="lonely-sender.com")
    publish(zone, domain)
    domain_verify(domain=domain)
    post(traffic(domain, 100, bounces=20))
    domain.refresh_from_db()
    domain.status = "verified"
    domain.save(update_fields=["status"])
    assert bad_apples_isolate() == []
