"""/api/v1/suppressions/: list, filter, create, retrieve, delete; tenants never meet."""

import pytest
from drf_spectacular.generators import SchemaGenerator

from campaigns.models import CampaignLead
from sending.models import SuppressedDomain, Suppression
from tests.campaigns.builders import campaign, lead_list, sending_domain
from tests.conftest import token_client

pytestmark = pytest.mark.django_db
URL = "/api/v1/suppressions/"


@pytest.fixture
def api(owner):
    return token_client(owner)


@pytest.fixture
def stranger_api(stranger):
    return token_client(stranger)


def test_it_adds_an_address_and_a_domain_and_lists_them_newest_first(api, owner):
    made = api.post(URL, {"address": " Ann@Target.com ", "note": "CRM opt-out"}, format="json")
    assert made.status_code == 201
    body = made.json()
    assert body["kind"] == "address" and body["value"] == "ann@target.com"
    assert body["reason"] == "manual" and body["note"] == "CRM opt-out"
    assert body["workspace"] == owner.workspace.public_id
    assert body["id"].startswith("address_")
    blocked = api.post(URL, {"domain": "https://www.rival.com/", "note": "Rival"}, format="json")
    assert blocked.status_code == 201 and blocked.json()["value"] == "rival.com"
    again = api.post(URL, {"address": "ann@target.com"}, format="json")
    assert again.status_code == 200 and again.json()["id"] == body["id"]

    listed = api.get(URL).json()
    assert listed["count"] == 2
    assert [r["value"] for r in listed["results"]] == ["rival.com", "ann@target.com"]
    assert [r["value"] for r in api.get(URL, {"kind": "domain"}).json()["results"]] == ["rival.com"]
    assert api.get(URL, {"search": "TARGET"}).json()["count"] == 1
    assert api.get(URL + body["id"] + "/").json()["note"] == "CRM opt-out"


def test_a_reason_from_another_tool_is_kept(api):
    made = api.post(URL, {"address": "bob@x.com", "reason": "unsubscribe"}, format="json")
    assert made.json()["reason"] == "unsubscribe"
    refused = api.delete(URL + made.json()["id"] + "/")
    assert refused.status_code == 400
    assert refused.json()["error"]["code"] == "confirmation_required"
    assert Suppression.objects.filter(address="bob@x.com").exists()
    assert api.delete(URL + made.json()["id"] + "/?confirm=true").status_code == 204
    assert not Suppression.objects.exists()


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({}, "address"),
        ({"address": "a@b.com", "domain": "b.com"}, "address"),
        ({"address": "not-an-address"}, "address"),
        ({"domain": "bob@rival.com"}, "domain"),
        ({"domain": "rival.com", "reason": "complaint"}, "reason"),
        ({"address": "a@b.com", "reason": "because"}, "reason"),
    ],
)
def test_bad_payloads_get_a_clear_error_and_change_nothing(api, payload, field):
    response = api.post(URL, payload, format="json")
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["fields"][field] and error["message"]
    assert not Suppression.objects.exists() and not SuppressedDomain.objects.exists()


def test_the_own_sending_domain_is_refused(api, owner):
    sending_domain(owner.workspace, "acme-outreach.com")
    response = api.post(URL, {"domain": "acme-outreach.com"}, format="json")
    assert response.status_code == 400
    assert "own sending domains" in response.json()["error"]["fields"]["domain"][0]


def test_creating_stops_waiting_campaign_steps(api, owner):
    made = campaign(owner.workspace, lists=[lead_list(owner.workspace, ["ann@rival.com"])])
    CampaignLead.objects.create(campaign=made, lead=made.lead_lists.get().leads.get())
    api.post(URL, {"domain": "rival.com"}, format="json")
    assert CampaignLead.objects.get().state == "stopped"


def test_a_stranger_never_sees_or_deletes_another_workspaces_entries(api, stranger_api):
    mine = api.post(URL, {"address": "ann@target.com"}, format="json").json()["id"]
    domain = api.post(URL, {"domain": "rival.com"}, format="json").json()["id"]
    stranger_api.post(URL, {"address": "own@stranger.com"}, format="json")
    listed = stranger_api.get(URL).json()
    assert [r["value"] for r in listed["results"]] == ["own@stranger.com"]
    for entry in (mine, domain):
        assert stranger_api.get(URL + entry + "/").status_code == 404
        assert stranger_api.delete(URL + entry + "/?confirm=true").status_code == 404
    assert Suppression.objects.filter(address="ann@target.com").exists()
    assert SuppressedDomain.objects.filter(domain="rival.com").exists()
    # Naming the other workspace explicitly does not help a token bound to its own.
    other = api.get(URL).json()["results"][0]["workspace"]
    refused = stranger_api.post(URL, {"address": "x@y.com", "workspace": other}, format="json")
    assert refused.status_code == 404


def test_the_platforms_entries_are_not_listed(api):
    Suppression.objects.create(workspace=None, address="trap@x.com", reason="hard_bounce")
    SuppressedDomain.objects.create(workspace=None, domain="trap.com")
    assert api.get(URL).json()["count"] == 0
    platform = Suppression.objects.get()
    assert api.get(f"{URL}address_{platform.pk}/").status_code == 404
    assert api.delete(f"{URL}address_{platform.pk}/?confirm=true").status_code == 404
    for bad in ("nonsense", "address_x", "domain_", "address_99999999999999999999999"):
        assert api.get(URL + bad + "/").status_code == 404
    assert api.get(URL, {"kind": "both"}).status_code == 400


def test_the_list_queries_a_fixed_number_of_times(api, owner, django_assert_max_num_queries):
    for i in range(40):
        Suppression.objects.create(
            workspace=owner.workspace, address=f"p{i}@x.com", reason="manual"
        )
        SuppressedDomain.objects.create(workspace=owner.workspace, domain=f"d{i}.com")
    with django_assert_max_num_queries(8):
        response = api.get(URL, {"page_size": 80})
    assert response.json()["count"] == 80 and len(response.json()["results"]) == 80


def test_it_is_in_the_openapi_schema():
    schema = SchemaGenerator().get_schema(request=None, public=True)
    paths = schema["paths"]
    assert {"get", "post"} <= paths["/api/v1/suppressions/"].keys()
    assert {"get", "delete"} <= paths["/api/v1/suppressions/{id}/"].keys()
    delete = paths["/api/v1/suppressions/{id}/"]["delete"]
    assert any(p["name"] == "confirm" for p in delete["parameters"])
