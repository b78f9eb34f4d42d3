"""Domain pages and API: the wizard, bad input, isolation between workspaces."""

import pytest
from rest_framework.test import APIClient

from accounts.models import AuditLog
from sending.models import DkimKey, DomainStatus, SendingDomain
from sending.services.domains import domain_create
from sending.services.status import domain_quarantine
from tests.conftest import publish, token_client

pytestmark = pytest.mark.django_db


def test_the_wizard_adds_a_domain_shows_its_records_and_checks_them(owner, owner_client, zone):
    ws = owner.workspace.public_id
    response = owner_client.post(f"/w/{ws}/domains/", {"name": "Acme-Outreach.com"})
    domain = SendingDomain.objects.get(name="acme-outreach.com")
    assert response["Location"] == f"/w/{ws}/domains/{domain.public_id}/"
    page = owner_client.get(response["Location"]).content.decode()
    key = domain.dkim_keys.get()
    for expected in (
        "_trustgate.acme-outreach.com",
        f"trustgate={domain.ownership_token}",
        "include:_spf.trustgate.email",
        f"{key.selector}._domainkey.acme-outreach.com",
        key.public_key,
        "v=DMARC1; p=none; rua=mailto:dmarc-reports@trustgate.email",
        "data-copy",
    ):
        assert expected in page
    assert "PRIVATE KEY" not in page

    publish(zone, domain)
    response = owner_client.post(
        f"/w/{ws}/domains/{domain.public_id}/check/", HTTP_HX_REQUEST="true"
    )
    fragment = response.content.decode()
    assert response.status_code == 200
    assert fragment.lstrip().startswith('<section class="card" id="dns-records"')
    assert "<html" not in fragment  # an HTMX partial, not a page
    assert "Verified" in fragment
    domain.refresh_from_db()
    assert domain.status == DomainStatus.VERIFIED


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("co.uk", "public suffix"),
        ("not a domain", "not a URL"),
        ("10.0.0.1", "IP address"),
        ("x" * 300, "at most"),
    ],
)
def test_bad_names_get_a_clear_error_and_write_nothing(owner, owner_client, name, message):
    response = owner_client.post(f"/w/{owner.workspace.public_id}/domains/", {"name": name})
    assert response.status_code == 200
    assert message in response.content.decode()
    assert not SendingDomain.objects.exists()
    assert not DkimKey.objects.exists()


def test_a_domain_claimed_by_another_workspace_is_refused(owner, stranger, stranger_client):
    domain_create(workspace=owner.workspace, actor=owner.user, name="acme-outreach.com")
    response = stranger_client.post(
        f"/w/{stranger.workspace.public_id}/domains/", {"name": "acme-outreach.com"}
    )
    body = response.content.decode()
    assert "already claimed by another workspace" in body
    assert owner.workspace.name not in body  # who holds it is not revealed
    assert SendingDomain.objects.count() == 1


def test_a_member_can_look_but_not_add_or_remove(owner, teammate_client, domain):
    ws = owner.workspace.public_id
    assert teammate_client.get(f"/w/{ws}/domains/{domain.public_id}/").status_code == 200
    assert teammate_client.post(f"/w/{ws}/domains/", {"name": "other.com"}).status_code == 403
    assert teammate_client.post(f"/w/{ws}/domains/{domain.public_id}/remove/").status_code == 403
    assert (
        teammate_client.post(f"/w/{ws}/domains/{domain.public_id}/rotate-dkim/").status_code == 403
    )
    assert list(SendingDomain.objects.values_list("name", "status")) == [
        ("acme-outreach.com", "pending_dns")
    ]


def test_a_stranger_gets_404_on_domain_pages_and_actions(owner, stranger, stranger_client, domain):
    mine = stranger.workspace.public_id
    theirs = owner.workspace.public_id
    for url in (
        f"/w/{theirs}/domains/{domain.public_id}/",
        f"/w/{mine}/domains/{domain.public_id}/",  # their domain through my workspace
    ):
        assert stranger_client.get(url).status_code == 404
    assert (
        stranger_client.get(f"/w/{mine}/domains/{domain.public_id}/reputation/").status_code == 404
    )
    for action in ("check", "remove", "rotate-dkim"):
        assert (
            stranger_client.post(f"/w/{mine}/domains/{domain.public_id}/{action}/").status_code
            == 404
        )
    domain.refresh_from_db()
    assert domain.status == DomainStatus.PENDING_DNS
    assert domain.dkim_keys.count() == 1


def test_api_creates_lists_and_serves_records(owner, zone):
    client = token_client(owner)
    response = client.post("/api/v1/domains/", {"name": "acme-outreach.com"}, format="json")
    assert response.status_code == 201, response.json()
    created = response.json()
    assert created["status"] == "pending_dns"
    assert created["workspace"] == owner.workspace.public_id
    listed = client.get("/api/v1/domains/").json()
    assert [d["id"] for d in listed["results"]] == [created["id"]]

    records = client.get(f"/api/v1/domains/{created['id']}/dns-records/").json()
    assert {r["kind"] for r in records} == {"ownership", "spf", "dkim", "dmarc", "tracking", "mx"}
    assert all(set(r) >= {"host", "type", "value", "required", "purpose"} for r in records)

    response = client.post(f"/api/v1/domains/{created['id']}/verify/")
    body = response.json()
    assert body["verified"] is False
    assert {r["kind"]: r["code"] for r in body["results"]}["ownership"] == "missing"

    publish(zone, SendingDomain.objects.get(public_id=created["id"]))
    body = client.post(f"/api/v1/domains/{created['id']}/verify/").json()
    assert body["verified"] is True
    assert body["status"] == "verified"


def test_api_refuses_bad_payloads_with_the_error_shape(owner):
    client = token_client(owner)
    for payload in ({}, {"name": "co.uk"}, {"name": ["x"]}, {"name": "a" * 400}):
        response = client.post("/api/v1/domains/", payload, format="json")
        assert response.status_code == 400
        assert set(response.json()["error"]) == {"code", "message", "fields"}
    assert not SendingDomain.objects.exists()


def test_api_delete_retires_the_domain_and_frees_the_name(owner, stranger, domain):
    client = token_client(owner)
    assert client.delete(f"/api/v1/domains/{domain.public_id}/").status_code == 204
    domain.refresh_from_db()
    assert domain.status == DomainStatus.RETIRED
    assert not domain.dkim_keys.exclude(private_key_encrypted="").exists()
    assert client.get(f"/api/v1/domains/{domain.public_id}/").status_code == 404
    assert AuditLog.objects.filter(action="domain.retire").exists()
    domain_create(workspace=stranger.workspace, actor=stranger.user, name=domain.name)


def test_api_tenant_isolation_on_domains(owner, stranger, domain):
    client = token_client(stranger)
    assert client.get("/api/v1/domains/").json()["results"] == []
    for method, suffix in (
        ("get", ""),
        ("get", "dns-records/"),
        ("post", "verify/"),
        ("delete", ""),
    ):
        response = getattr(client, method)(f"/api/v1/domains/{domain.public_id}/{suffix}")
        assert response.status_code == 404, (method, suffix)
    domain.refresh_from_db()
    assert domain.status == DomainStatus.PENDING_DNS
    # A token is bound to its workspace even when the user belongs to others.
    response = client.post(
        "/api/v1/domains/",
        {"name": "x-corp.com", "workspace": owner.workspace.public_id},
        format="json",
    )
    assert response.status_code == 404


def test_api_member_cannot_create_or_delete(owner, teammate, domain):
    client = token_client(teammate)
    assert client.post("/api/v1/domains/", {"name": "x-corp.com"}, format="json").status_code == 403
    assert client.delete(f"/api/v1/domains/{domain.public_id}/").status_code == 403
    assert client.get(f"/api/v1/domains/{domain.public_id}/").status_code == 200


def test_session_api_needs_the_workspace_when_the_user_has_several(owner):
    from tests.factories import MembershipFactory

    MembershipFactory(user=owner.user, role="owner")
    client = APIClient()
    client.force_login(owner.user)
    response = client.post("/api/v1/domains/", {"name": "acme-outreach.com"}, format="json")
    assert response.status_code == 400
    assert "workspace" in response.json()["error"]["fields"]
    response = client.post(
        "/api/v1/domains/",
        {"name": "acme-outreach.com", "workspace": owner.workspace.public_id},
        format="json",
    )
    assert response.status_code == 201


def test_domain_list_queries_do_not_grow(owner, owner_client, django_assert_max_num_queries):
    client = token_client(owner)
    for n in range(2):
        domain_create(workspace=owner.workspace, actor=owner.user, name=f"brand{n}.com")
    page, api = f"/w/{owner.workspace.public_id}/domains/", "/api/v1/domains/"
    owner_client.get(page)
    client.get(api)
    with django_assert_max_num_queries(20) as page_queries:
        owner_client.get(page)
    with django_assert_max_num_queries(20) as api_queries:
        client.get(api)
    for n in range(2, 6):
        domain_create(workspace=owner.workspace, actor=owner.user, name=f"brand{n}.com")
    with django_assert_max_num_queries(len(page_queries.captured_queries)):
        owner_client.get(page)
    with django_assert_max_num_queries(len(api_queries.captured_queries)):
        assert len(client.get(api).json()["results"]) == 6


def test_the_domain_pages_action_log_reads_as_sentences(owner, owner_client, domain):
    domain_quarantine(domain=domain, actor=None, reason="Complaints above 0.3 %.")
    page = owner_client.get(f"/w/{owner.workspace.public_id}/domains/{domain.public_id}/")
    body = page.content.decode()
    log = body[body.index('data-testid="action-log"') :]
    log = log[: log.index("</table>")]
    assert f"{domain.name} was quarantined" in log
    assert "You added the domain" in log
    assert "domain.quarantine" not in log and "domain.create" not in log
