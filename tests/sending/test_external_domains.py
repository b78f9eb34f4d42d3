"""Domains that send through their own mail servers (Google Workspace, Microsoft 365, any host):
verified by ownership, DMARC and their own SPF against the loopback DNS server; DKIM confirmed
from a warm-up message with dkimpy; external mailboxes added before the domain verifies."""

import re
from email.message import EmailMessage
from html import unescape
from pathlib import Path

import dkim
import pytest
from django.utils import timezone
from dkim import dknewkey

from accounts.models import AuditLog
from config.errors import ApplicationError
from sending.models import DkimState, DomainStatus, Mailbox, SendingDomain, SendsThrough
from sending.services.dkim_observed import domain_dkim_observe
from sending.services.dns import domain_records
from sending.services.domains import domain_create, domain_sending_change
from sending.services.mailboxes import mailbox_create
from sending.services.verification import domain_verify
from tests.conftest import UNTESTED_SERVERS, external_data, publish, token_client
from warming.selectors import warming_network

pytestmark = pytest.mark.django_db

NAME = "acme-outreach.com"
GOOGLE_SPF = "v=spf1 include:_spf.google.com ~all"
GOOGLE_SPF_INCLUDE = "v=spf1 ip4:209.85.128.0/17 ip4:64.233.160.0/19 ~all"
RECEIVED_AR = (
    "mx.example.org; dkim=pass header.i=@acme-outreach.com header.s=s1 header.b=abc; "
    "spf=pass smtp.mailfrom=alex@acme-outreach.com; dmarc=pass header.from=acme-outreach.com"
)


def text_of(html: str) -> str:
    return " ".join(unescape(re.sub(r"<[^>]+>", " ", html)).split())


def results_by_kind(verification) -> dict:
    return {r["kind"]: r for r in verification.results}


@pytest.fixture
def own(owner) -> SendingDomain:
    return domain_create(
        workspace=owner.workspace, actor=owner.user, name=NAME, sends_through="own_servers"
    )


def publish_own(zone, domain: SendingDomain, *, spf: str | list[str] | None = GOOGLE_SPF) -> None:
    """Ownership and DMARC as the product shows them, and the domain's own SPF record."""
    for record in domain_records(domain):
        if record.kind in ("ownership", "dmarc"):
            zone.add(record.host, record.type, record.value)
    zone.set("_spf.google.com", "TXT", [GOOGLE_SPF_INCLUDE])
    if spf is not None:
        zone.set(domain.name, "TXT", [spf] if isinstance(spf, str) else spf)


# --- Verification ------------------------------------------------------------------------------


def test_an_own_servers_domain_verifies_without_any_platform_record(zone, own, settings):
    publish_own(zone, own)
    verification = domain_verify(domain=own)
    assert verification.verified
    results = results_by_kind(verification)
    assert set(results) == {"ownership", "spf", "dmarc", "tracking", "mx"}  # no DKIM record
    for kind in ("ownership", "spf", "dmarc"):
        assert results[kind]["status"] == "pass", results[kind]
    assert "own SPF record is valid" in results["spf"]["message"]
    # Nothing of the platform's was asked for or published.
    assert zone.query_count(settings.PLATFORM_SPF_INCLUDE) == 0
    assert not any(name.endswith(f"_domainkey.{NAME}") for name, _ in zone.queries)
    own.refresh_from_db()
    assert own.status == DomainStatus.VERIFIED
    assert "DKIM is confirmed from the first warm-up message" in own.status_reason
    assert own.dkim_pending and own.dkim_state == DkimState.PENDING


def test_its_records_ask_for_no_platform_include_and_no_platform_key(own, settings):
    records = domain_records(own)
    assert {r.kind for r in records} == {"ownership", "spf", "dmarc", "tracking", "mx"}
    spf = next(r for r in records if r.kind == "spf")
    assert settings.PLATFORM_SPF_INCLUDE not in spf.value
    assert own.dkim_keys.count() == 1  # kept unused, ready if it moves to the platform


def test_a_redirect_to_the_providers_record_is_a_valid_own_spf(zone, own):
    publish_own(zone, own, spf="v=spf1 redirect=_spf.google.com")
    assert domain_verify(domain=own).verified


@pytest.mark.parametrize(
    ("spf", "code", "words"),
    [
        (None, "missing", "No SPF record on acme-outreach.com"),
        ([GOOGLE_SPF, "v=spf1 include:spf.protection.outlook.com -all"], "multiple_spf", "merge"),
        ("v=spf1 ip:192.0.2.1 ~all", "spf_invalid", "not an SPF mechanism"),
        ("v=spf1 ip4:192.0.2.1/40 ~all", "spf_invalid", "not an IPv4 address"),
        ("v=spf1 ~all include:_spf.google.com", "spf_invalid", "never used"),
        ("v=spf1 include:_spf.google.com ?all", "spf_no_final_all", "End it with ~all or -all"),
        ("v=spf1 include:_spf.google.com", "spf_no_final_all", "has no final all"),
        ("v=spf1 include:_spf.google.com +all", "spf_permissive", "ends in +all"),
        ("v=spf1 -all", "spf_authorises_nobody", "authorises no server"),
        ("v=spf1 include:gone.example ~all", "spf_broken", "has no SPF record"),
    ],
)
def test_a_missing_or_invalid_own_spf_keeps_it_waiting_and_says_why(zone, own, spf, code, words):
    publish_own(zone, own, spf=spf)
    verification = domain_verify(domain=own)
    assert not verification.verified
    result = results_by_kind(verification)["spf"]
    assert (result["status"], result["code"]) == ("fail", code)
    assert words in result["message"]
    own.refresh_from_db()
    assert own.status == DomainStatus.PENDING_DNS


def test_an_own_spf_over_the_lookup_limit_fails(zone, own):
    includes = []
    for n in range(11):
        zone.set(f"spf{n}.vendor.com", "TXT", ["v=spf1 ip4:192.0.2.1 -all"])
        includes.append(f"include:spf{n}.vendor.com")
    publish_own(zone, own, spf=f"v=spf1 {' '.join(includes)} ~all")
    result = results_by_kind(domain_verify(domain=own))["spf"]
    assert result["code"] == "spf_too_many_lookups"
    assert "11 DNS lookups" in result["message"]


def test_platform_domains_keep_todays_checks(zone, domain):
    # The records an own-servers domain needs are not enough for a domain the platform sends for.
    publish_own(zone, domain)
    verification = domain_verify(domain=domain)
    assert not verification.verified
    results = results_by_kind(verification)
    assert results["spf"]["code"] == "spf_no_include"
    assert results["dkim"]["code"] == "missing"
    publish(zone, domain, skip=("spf",))
    zone.set(NAME, "TXT", ["v=spf1 include:_spf.trustgate.email ?all"])
    assert domain_verify(domain=domain).verified  # ?all is still accepted there, as before


# --- Changing how a domain sends -----------------------------------------------------------------


def test_changing_how_it_sends_rechecks_at_once_and_is_audited(zone, verified_domain, owner):
    verification = domain_sending_change(
        domain=verified_domain, actor=owner.user, sends_through="own_servers"
    )
    domain = verification.domain
    assert domain.sends_through == SendsThrough.OWN_SERVERS
    # The platform's records are published, and its include makes a valid SPF record too.
    assert verification.verified
    assert "dkim" not in results_by_kind(verification)
    log = AuditLog.objects.get(action="domain.sending_change")
    assert (log.actor, log.before, log.after) == (
        owner.user,
        {"sends_through": "platform"},
        {"sends_through": "own_servers"},
    )
    # Back to the platform: the platform's DKIM key is checked again.
    verification = domain_sending_change(domain=domain, actor=owner.user, sends_through="platform")
    assert results_by_kind(verification)["dkim"]["status"] == "pass"


def test_a_domain_with_platform_mailboxes_cannot_move_to_its_own_servers(sender, owner):
    with pytest.raises(ApplicationError, match="has platform mailboxes"):
        domain_sending_change(domain=sender, actor=owner.user, sends_through="own_servers")
    sender.refresh_from_db()
    assert sender.sends_through == SendsThrough.PLATFORM


def test_an_own_servers_domain_takes_no_platform_mailbox(own, owner):
    with pytest.raises(ApplicationError, match="its mailboxes are external"):
        mailbox_create(
            domain=own, actor=owner.user, data={"connection": "platform", "local_part": "alex"}
        )


def test_an_own_servers_domain_has_no_platform_key_to_rotate(own, owner):
    from sending.services.dkim import dkim_rotation_start

    keys = own.dkim_keys.count()
    with pytest.raises(ApplicationError, match="its own mail servers"):
        dkim_rotation_start(domain=own, actor=owner.user)
    assert own.dkim_keys.count() == keys


def test_a_platform_domain_still_needs_verifying_before_any_mailbox(domain, owner):
    with pytest.raises(ApplicationError, match="not verified yet"):
        mailbox_create(
            domain=domain,
            actor=owner.user,
            data={"connection": "external", "local_part": "alex", **UNTESTED_SERVERS},
        )


def test_warm_up_planning_leaves_out_mailboxes_of_a_domain_waiting_for_dns(zone, own, owner):
    mailbox = mailbox_create(
        domain=own,
        actor=owner.user,
        data={"connection": "external", "local_part": "alex", **UNTESTED_SERVERS},
    )
    Mailbox.objects.filter(pk=mailbox.pk).update(connection_ok=True)
    today = timezone.localdate()
    assert f"m{mailbox.pk}" not in warming_network(day=today).addresses
    publish_own(zone, own)
    assert domain_verify(domain=own).verified
    assert f"m{mailbox.pk}" in warming_network(day=today).addresses


# --- DKIM from a warm-up message -----------------------------------------------------------------


@pytest.fixture(scope="module")
def dkim_key(tmp_path_factory) -> tuple[bytes, str]:
    """A 2048-bit RSA key made with dkimpy's own tool: (private PEM, TXT record value)."""
    folder: Path = tmp_path_factory.mktemp("dkim")
    private, record = folder / "s1.key", folder / "s1.dns"
    dknewkey.GenRSAKeys(str(private), verbose=False)
    dknewkey.ExtractRSADnsPublicKey(str(private), str(record), verbose=False)
    return private.read_bytes(), record.read_text()


def warmup_message(sender_domain: str = NAME, body: str = "Hi Sam, are we still on for Tuesday?"):
    msg = EmailMessage()
    msg["From"] = f"Alex <alex@{sender_domain}>"
    msg["To"] = "sam@example.org"
    msg["Subject"] = "Tuesday"
    msg["Message-ID"] = f"<w-1@{sender_domain}>"
    msg.set_content(body + "\n")
    return msg.as_bytes()


def signed(message: bytes, key: bytes, *, d: str = NAME, s: str = "s1") -> bytes:
    signature = dkim.sign(
        message,
        s.encode(),
        d.encode(),
        key,
        include_headers=[b"from", b"to", b"subject", b"message-id"],
    )
    return signature + message


def received(message: bytes, results: str = RECEIVED_AR) -> bytes:
    """The message as the recipient's server stored it: its trace headers on top."""
    return (
        f"Authentication-Results: {results}\r\n"
        "Received: from mail-sor-f41.google.com by mx.example.org; Mon, 23 Nov 2026 10:00:00 "
        "+0000\r\n"
    ).encode() + message


@pytest.fixture
def published_key(zone, dkim_key):
    zone.set(f"s1._domainkey.{NAME}", "TXT", [dkim_key[1]])
    return dkim_key[0]


def test_a_signed_warm_up_message_confirms_the_dkim(own, published_key):
    raw = received(signed(warmup_message(), published_key))
    observation = domain_dkim_observe(domain=own, raw_message=raw)
    assert (observation.ok, observation.code, observation.confirmed) == (True, "pass", True)
    assert observation.selector == "s1"
    assert observation.authentication_results == [RECEIVED_AR]
    own.refresh_from_db()
    assert own.dkim_confirmed_at is not None
    assert own.dkim_confirmed_selector == "s1"
    assert "dkim=pass" in own.dkim_confirmed_auth_results
    assert own.dkim_last_observation["code"] == "pass"
    assert (own.dkim_pending, own.dkim_state) == (False, DkimState.CONFIRMED)
    log = AuditLog.objects.get(action="domain.dkim_confirm")
    assert (log.actor, log.after["selector"]) == (None, "s1")


def test_a_tampered_body_is_recorded_as_a_failure_and_confirms_nothing(own, published_key):
    raw = signed(warmup_message(), published_key).replace(b"Tuesday?", b"Wednesday?")
    observation = domain_dkim_observe(domain=own, raw_message=received(raw))
    assert (observation.ok, observation.code) == (False, "body_hash_mismatch")
    assert "signature did not verify: body hash mismatch" in observation.reason
    own.refresh_from_db()
    assert own.dkim_confirmed_at is None
    assert own.dkim_state == DkimState.FAILED
    assert own.dkim_last_observation["reason"] == observation.reason
    assert own.dkim_last_observation["authentication_results"] == [RECEIVED_AR]


def test_an_unsigned_message_says_the_provider_is_not_signing(own):
    SendingDomain.objects.filter(pk=own.pk).update(provider="google")
    observation = domain_dkim_observe(domain=own, raw_message=received(warmup_message()))
    assert (observation.ok, observation.code) == (False, "no_signature")
    assert observation.reason.startswith("No DKIM-Signature: your provider is not signing")
    assert "Google Admin" in observation.reason
    own.refresh_from_db()
    assert own.dkim_confirmed_at is None


def test_a_signature_by_another_domain_does_not_count(zone, own, dkim_key):
    zone.set("s1._domainkey.acme-com.gappssmtp.com", "TXT", [dkim_key[1]])
    raw = signed(warmup_message(), dkim_key[0], d="acme-com.gappssmtp.com")
    observation = domain_dkim_observe(domain=own, raw_message=received(raw))
    assert (observation.ok, observation.code) == (False, "not_aligned")
    assert "signed by acme-com.gappssmtp.com, not by acme-outreach.com" in observation.reason
    assert zone.query_count("s1._domainkey.acme-com.gappssmtp.com") == 0  # not even looked up
    own.refresh_from_db()
    assert own.dkim_confirmed_at is None


def test_a_signature_by_the_parent_domain_counts_relaxed_alignment(zone, owner, dkim_key):
    sub = domain_create(
        workspace=owner.workspace,
        actor=owner.user,
        name=f"mail.{NAME}",
        sends_through="own_servers",
    )
    zone.set(f"s1._domainkey.{NAME}", "TXT", [dkim_key[1]])
    raw = signed(warmup_message(sender_domain=sub.name), dkim_key[0], d=NAME)
    assert domain_dkim_observe(domain=sub, raw_message=received(raw)).confirmed


def test_an_unpublished_key_is_named(own, zone, dkim_key):
    raw = signed(warmup_message(), dkim_key[0], s="google2026")
    observation = domain_dkim_observe(domain=own, raw_message=received(raw))
    assert (observation.ok, observation.code) == (False, "key_missing")
    assert f"no DKIM key at google2026._domainkey.{NAME}" in observation.reason


def test_a_slow_dns_server_is_recorded_but_confirms_nothing(own, zone, dkim_key):
    zone.slow(f"s1._domainkey.{NAME}")
    raw = signed(warmup_message(), dkim_key[0])
    observation = domain_dkim_observe(domain=own, raw_message=received(raw))
    assert (observation.ok, observation.code) == (False, "lookup_failed")
    own.refresh_from_db()
    assert own.dkim_confirmed_at is None


def test_once_confirmed_it_stays_and_asks_dns_nothing(own, zone, published_key):
    first = received(signed(warmup_message(), published_key))
    assert domain_dkim_observe(domain=own, raw_message=first).confirmed
    own.refresh_from_db()
    confirmed_at = own.dkim_confirmed_at
    asked = len(zone.queries)
    zone.remove(f"s1._domainkey.{NAME}")
    for raw in (first, received(warmup_message())):  # signed again, then unsigned
        observation = domain_dkim_observe(domain=own, raw_message=raw)
        assert (observation.ok, observation.code, observation.confirmed) == (
            True,
            "already_confirmed",
            True,
        )
    assert len(zone.queries) == asked
    own.refresh_from_db()
    assert own.dkim_confirmed_at == confirmed_at
    assert own.dkim_last_observation["code"] == "pass"
    assert AuditLog.objects.filter(action="domain.dkim_confirm").count() == 1


def test_a_domain_the_platform_signs_for_needs_no_observation(domain, zone):
    observation = domain_dkim_observe(domain=domain, raw_message=received(warmup_message()))
    assert (observation.code, observation.confirmed) == ("not_needed", False)
    assert zone.queries == []
    domain.refresh_from_db()
    assert domain.dkim_last_observation == {}


# --- Pages ---------------------------------------------------------------------------------------


def test_a_new_customer_adds_the_domain_then_an_external_mailbox_at_once(
    zone, mail_servers, mail_account, owner, owner_client, settings
):
    ws = owner.workspace.public_id
    response = owner_client.post(
        f"/w/{ws}/domains/", {"name": NAME, "sends_through": "own_servers"}
    )
    domain = SendingDomain.objects.get(name=NAME)
    assert domain.sends_through == SendsThrough.OWN_SERVERS
    page = f"/w/{ws}/domains/{domain.public_id}/"
    assert response["Location"] == page
    owner_client.post(f"{page}check/")
    body = owner_client.get(page).content.decode()
    missing = text_of(body.split('data-testid="still-missing"', 1)[1].split("</div>", 1)[0])
    for name in ("Ownership record:", "SPF: No SPF record", "DMARC: DMARC is missing"):
        assert name in missing
    assert "DKIM" not in missing
    assert "add its external mailboxes" in missing
    assert settings.PLATFORM_SPF_INCLUDE not in body
    assert "_domainkey" not in body
    assert "Rotate DKIM key" not in body
    assert "DKIM pending" in text_of(body)
    assert "Confirmed from the first warm-up message" in text_of(body)

    # The mailbox can be added and connected before the domain's DNS checks out.
    form = {"domain": domain.public_id, "warmup_enabled": "on"}
    form.update(external_data(mail_servers, mail_account, local_part="alex"))
    response = owner_client.post(f"/w/{ws}/mailboxes/", form)
    mailbox = Mailbox.objects.get()
    mailbox_page = f"/w/{ws}/mailboxes/{mailbox.pk}/"
    assert response["Location"] == mailbox_page
    owner_client.post(f"{mailbox_page}test/")
    mailbox.refresh_from_db()
    assert mailbox.is_connected
    body = owner_client.get(mailbox_page).content.decode()
    steps = text_of(body.split('data-testid="warmup-steps"', 1)[1].split("</section>", 1)[0])
    assert "Still missing before warm-up can start: acme-outreach.com is not verified yet" in steps
    assert "SPF: No SPF record" in steps
    assert "The connection test passed." in steps
    assert "DKIM pending: confirmed from the first warm-up message the agent reads." in steps
    warmup = text_of(body.split('id="warmup-state"', 1)[1].split("</span>", 1)[0])
    assert warmup.endswith("Waiting for the domain's verification")
    listed = owner_client.get(f"/w/{ws}/mailboxes/").content.decode()
    assert "Waiting for the domain's verification" in text_of(listed)

    # Once its own records are published, only the DKIM confirmation is left (it never blocks).
    publish_own(zone, domain)
    owner_client.post(f"{page}check/")
    body = owner_client.get(mailbox_page).content.decode()
    steps = text_of(body.split('data-testid="warmup-steps"', 1)[1].split("</section>", 1)[0])
    assert "Nothing is missing: this mailbox takes part in warm-up." in steps
    assert "DKIM pending" in steps
    assert 'data-testid="still-missing"' not in owner_client.get(page).content.decode()


def test_the_domain_page_shows_the_dkim_confirmation_or_the_last_failure(
    own, owner, owner_client, published_key
):
    page = f"/w/{owner.workspace.public_id}/domains/{own.public_id}/"
    tampered = signed(warmup_message(), published_key).replace(b"Tuesday", b"Friday")
    domain_dkim_observe(domain=own, raw_message=received(tampered))
    body = text_of(owner_client.get(page).content.decode())
    assert "DKIM not confirmed" in body
    assert "body hash mismatch" in body

    domain_dkim_observe(domain=own, raw_message=received(signed(warmup_message(), published_key)))
    body = text_of(owner_client.get(page).content.decode())
    today = timezone.localdate()
    assert f"Confirmed on {today.day} {today:%b %Y} from a warm-up message (selector s1" in body
    assert "Authentication-Results: mx.example.org; dkim=pass" in body


def test_the_domain_page_changes_how_it_sends(zone, owner, owner_client, domain):
    page = f"/w/{owner.workspace.public_id}/domains/{domain.public_id}/"
    publish_own(zone, domain)
    response = owner_client.post(page, {"sends_through": "own_servers"})
    assert response["Location"] == page
    domain.refresh_from_db()
    assert (domain.sends_through, domain.status) == ("own_servers", DomainStatus.VERIFIED)
    body = text_of(owner_client.get(page).content.decode())
    assert "now sends through its own mail servers" in body.lower()
    assert "Its records check out: it can send." in body


def test_a_member_cannot_change_how_a_domain_sends(owner, teammate_client, domain):
    page = f"/w/{owner.workspace.public_id}/domains/{domain.public_id}/"
    assert teammate_client.post(page, {"sends_through": "own_servers"}).status_code == 403
    domain.refresh_from_db()
    assert domain.sends_through == SendsThrough.PLATFORM


# --- API -----------------------------------------------------------------------------------------


def test_the_api_creates_changes_and_reports_an_own_servers_domain(zone, owner):
    client = token_client(owner)
    response = client.post(
        "/api/v1/domains/", {"name": NAME, "sends_through": "own_servers"}, format="json"
    )
    assert response.status_code == 201, response.json()
    created = response.json()
    assert created["sends_through"] == "own_servers"
    assert created["dkim"]["state"] == "pending"
    assert created["dkim_selector"] is None
    records = client.get(f"/api/v1/domains/{created['id']}/dns-records/").json()
    assert {r["kind"] for r in records} == {"ownership", "spf", "dmarc", "tracking", "mx"}

    client.post(f"/api/v1/domains/{created['id']}/verify/")
    body = client.get(f"/api/v1/domains/{created['id']}/").json()
    assert {m["kind"] for m in body["missing"]} == {"ownership", "spf", "dmarc"}

    # An external mailbox right away; its warm-up waits for the domain.
    mailbox = client.post(
        "/api/v1/mailboxes/",
        {
            "domain": created["id"],
            "connection": "external",
            "local_part": "alex",
            **UNTESTED_SERVERS,
        },
        format="json",
    )
    assert mailbox.status_code == 201, mailbox.json()
    Mailbox.objects.filter(pk=mailbox.json()["id"]).update(connection_ok=True)
    listed = client.get(f"/api/v1/mailboxes/{mailbox.json()['id']}/").json()
    assert listed["warmup_status"] == "waiting_for_domain_verification"

    response = client.patch(
        f"/api/v1/domains/{created['id']}/", {"sends_through": "bogus"}, format="json"
    )
    assert response.status_code == 400
    response = client.patch(
        f"/api/v1/domains/{created['id']}/", {"sends_through": "platform"}, format="json"
    )
    # An external mailbox is fine on a platform domain; the platform's records are now asked for.
    assert response.status_code == 200, response.json()
    assert response.json()["sends_through"] == "platform"
    assert response.json()["dkim"]["state"] == "platform_key"
    assert "dkim" in {m["kind"] for m in response.json()["missing"]}


def test_another_workspace_can_neither_read_nor_change_how_a_domain_sends(
    owner, stranger, teammate, own
):
    client = token_client(stranger)
    assert client.get("/api/v1/domains/").json()["results"] == []
    assert client.get(f"/api/v1/domains/{own.public_id}/").status_code == 404
    response = client.patch(
        f"/api/v1/domains/{own.public_id}/", {"sends_through": "platform"}, format="json"
    )
    assert response.status_code == 404
    member = token_client(teammate)
    response = member.patch(
        f"/api/v1/domains/{own.public_id}/", {"sends_through": "platform"}, format="json"
    )
    assert response.status_code == 403
    assert member.get(f"/api/v1/domains/{own.public_id}/").json()["sends_through"] == "own_servers"
    own.refresh_from_db()
    assert own.sends_through == SendsThrough.OWN_SERVERS
    assert not AuditLog.objects.filter(action="domain.sending_change").exists()
