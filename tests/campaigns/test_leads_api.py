"""The leads API: leads, lists, a campaign's bulk add and its leads; tenant isolation."""

import pytest

from campaigns.models import CampaignLead, Lead, LeadList
from sending.models import Suppression
from tests.campaigns.builders import campaign, lead_list
from tests.conftest import token_client

pytestmark = pytest.mark.django_db


@pytest.fixture
def api(owner):
    return token_client(owner)


@pytest.fixture
def stranger_api(stranger):
    return token_client(stranger)


def test_leads_are_listed_filtered_and_paginated(api, owner, django_assert_max_num_queries):
    fair = lead_list(owner.workspace, [f"fair{i}@example.com" for i in range(30)], name="Fair")
    lead_list(owner.workspace, ["cto@globex.example"], name="Other", company="Globex")
    with django_assert_max_num_queries(8):
        page = api.get("/api/v1/leads/", {"page_size": 20})
    assert page.status_code == 200
    body = page.json()
    assert body["count"] == 31 and len(body["results"]) == 20
    assert body["results"][0]["lists"]
    assert api.get("/api/v1/leads/", {"list": fair.public_id}).json()["count"] == 30
    assert api.get("/api/v1/leads/", {"search": "globex"}).json()["count"] == 1
    assert api.get("/api/v1/leads/", {"status": "bounced"}).json()["count"] == 0


def test_a_lead_is_created_merged_patched_and_deleted(api, owner):
    fair = LeadList.objects.create(workspace=owner.workspace, name="Fair")
    made = api.post(
        "/api/v1/leads/",
        {"email": "Ada@Example.DE", "first_name": "Ada", "list": fair.public_id},
        format="json",
    )
    assert made.status_code == 201, made.json()
    lead = made.json()
    assert lead["email"] == "ada@example.de"
    assert (lead["time_zone"], lead["time_zone_guessed"]) == ("Europe/Berlin", True)
    assert lead["lists"] == [fair.public_id]
    again = api.post(
        "/api/v1/leads/", {"email": "ada@example.de", "company": "Analytical"}, format="json"
    )
    assert again.status_code == 200
    assert again.json()["company"] == "Analytical"
    patched = api.patch(
        f"/api/v1/leads/{lead['id']}/",
        {"status": "out_of_office", "out_of_office_until": "2030-01-06", "lists": []},
        format="json",
    )
    assert patched.status_code == 200, patched.json()
    assert patched.json()["status"] == "out_of_office" and patched.json()["lists"] == []
    refused = api.patch(f"/api/v1/leads/{lead['id']}/", {"time_zone": "Mars"}, format="json")
    assert refused.status_code == 400
    assert "time_zone" in refused.json()["error"]["fields"]
    assert api.delete(f"/api/v1/leads/{lead['id']}/").status_code == 204
    assert not Lead.objects.exists()


def test_a_suppressed_or_invalid_lead_is_refused_with_the_reason(api, owner):
    Suppression.objects.create(
        workspace=owner.workspace, address="gone@example.com", reason="manual"
    )
    suppressed = api.post("/api/v1/leads/", {"email": "gone@example.com"}, format="json")
    assert suppressed.status_code == 400
    assert suppressed.json()["error"]["code"] == "suppressed"
    invalid = api.post("/api/v1/leads/", {"email": "nope"}, format="json")
    assert invalid.status_code == 400
    assert invalid.json()["error"]["fields"]["email"]
    assert not Lead.objects.exists()


def test_lists_are_listed_created_renamed_and_deleted(api, owner, django_assert_max_num_queries):
    for i in range(5):
        lead_list(owner.workspace, [f"p{i}@example.com"], name=f"List {i}")
    with django_assert_max_num_queries(6):
        listed = api.get("/api/v1/lead-lists/")
    assert [row["lead_count"] for row in listed.json()["results"]] == [1] * 5
    made = api.post("/api/v1/lead-lists/", {"name": "Fair"}, format="json")
    assert made.status_code == 201 and made.json()["lead_count"] == 0
    duplicate = api.post("/api/v1/lead-lists/", {"name": "fair"}, format="json")
    assert duplicate.status_code == 400
    assert duplicate.json()["error"]["fields"]["name"]
    renamed = api.patch(
        f"/api/v1/lead-lists/{made.json()['id']}/", {"name": "Fair 2"}, format="json"
    )
    assert renamed.json()["name"] == "Fair 2"
    assert api.delete(f"/api/v1/lead-lists/{made.json()['id']}/").status_code == 204


def test_bulk_add_upserts_and_enrols(api, owner):
    Suppression.objects.create(
        workspace=owner.workspace, address="gone@example.com", reason="manual"
    )
    lead_list(owner.workspace, ["known@example.com"], name="Old")
    target = LeadList.objects.create(workspace=owner.workspace, name="From the CRM")
    outreach = campaign(owner.workspace)
    response = api.post(
        f"/api/v1/campaigns/{outreach.public_id}/leads/",
        {
            "list": target.public_id,
            "leads": [
                {"email": "ada@example.com", "first_name": "Ada", "custom_fields": {"plan": "pro"}},
                {"email": "ADA@example.com", "company": "Analytical"},
                {"email": "known@example.com"},
                {"email": "nope"},
                {"email": "gone@example.com"},
                {"email": "info@example.com"},
            ],
        },
        format="json",
    )
    assert response.status_code == 200, response.json()
    body = response.json()
    assert body["counts"] == {
        "received": 6,
        "added": 2,
        "merged": 2,
        "invalid": 1,
        "role": 1,
        "suppressed": 1,
        "failed": 0,
        "enrolled": 3,
    }
    assert [(e["index"], e["code"]) for e in body["errors"]] == [(3, "invalid"), (4, "suppressed")]
    ada = Lead.objects.get(email="ada@example.com")
    assert (ada.first_name, ada.company, ada.custom_fields) == (
        "Ada",
        "Analytical",
        {"plan": "pro"},
    )
    assert target.leads.count() == 3
    assert CampaignLead.objects.filter(campaign=outreach).count() == 3
    again = api.post(
        f"/api/v1/campaigns/{outreach.public_id}/leads/",
        [{"email": "ada@example.com"}],  # a bare array is accepted too
        format="json",
    )
    assert again.json()["counts"]["enrolled"] == 0  # already in the campaign
    listed = api.get(f"/api/v1/campaigns/{outreach.public_id}/leads/").json()
    assert listed["count"] == 3
    assert {row["state"] for row in listed["results"]} == {"waiting"}


def test_a_bad_bulk_payload_is_refused_whole(api, owner):
    outreach = campaign(owner.workspace)
    path = f"/api/v1/campaigns/{outreach.public_id}/leads/"
    missing = api.post(
        path, {"leads": [{"email": "a@example.com"}, {"first_name": "x"}]}, format="json"
    )
    assert missing.status_code == 400
    assert "leads[1].email" in missing.json()["error"]["fields"]
    too_many = api.post(
        path, {"leads": [{"email": f"a{i}@example.com"} for i in range(1001)]}, format="json"
    )
    assert too_many.status_code == 400
    assert "At most 1000" in too_many.json()["error"]["fields"]["leads"][0]
    assert api.post(path, {"leads": []}, format="json").status_code == 400
    unknown_list = api.post(
        path, {"leads": [{"email": "a@example.com"}], "list": "lst_x"}, format="json"
    )
    assert unknown_list.status_code == 400
    assert not Lead.objects.exists()


def test_another_workspace_sees_nothing(api, stranger_api, owner, stranger):
    lead_list(owner.workspace, ["ada@example.com"], name="Fair")
    lead = Lead.objects.get()
    listed = LeadList.objects.get()
    outreach = campaign(owner.workspace)
    assert stranger_api.get("/api/v1/leads/").json()["count"] == 0
    assert stranger_api.get("/api/v1/lead-lists/").json()["count"] == 0
    assert stranger_api.get(f"/api/v1/leads/{lead.public_id}/").status_code == 404
    assert (
        stranger_api.patch(
            f"/api/v1/leads/{lead.public_id}/", {"first_name": "x"}, format="json"
        ).status_code
        == 404
    )
    assert stranger_api.delete(f"/api/v1/lead-lists/{listed.public_id}/").status_code == 404
    path = f"/api/v1/campaigns/{outreach.public_id}/leads/"
    assert stranger_api.get(path).status_code == 404
    assert (
        stranger_api.post(path, {"leads": [{"email": "x@example.com"}]}, format="json").status_code
        == 404
    )
    # Their own lead with the same address is theirs alone; a list of ours is not theirs.
    made = stranger_api.post(
        "/api/v1/leads/", {"email": "ada@example.com", "list": listed.public_id}, format="json"
    )
    assert made.status_code == 400
    assert Lead.objects.filter(workspace=stranger.workspace).count() == 0
    assert Lead.objects.get(workspace=owner.workspace).first_name == "Ada"


def test_the_endpoints_are_in_the_schema(api):
    schema = api.get("/api/schema/", HTTP_ACCEPT="application/json")
    paths = schema.json()["paths"] if schema.status_code == 200 else {}
    if not paths:
        from drf_spectacular.generators import SchemaGenerator

        paths = SchemaGenerator().get_schema(request=None, public=True)["paths"]
    for path in (
        "/api/v1/leads/",
        "/api/v1/leads/{id}/",
        "/api/v1/lead-lists/",
        "/api/v1/campaigns/{campaign_id}/leads/",
    ):
        assert path in paths, path
    bulk = paths["/api/v1/campaigns/{campaign_id}/leads/"]["post"]
    assert bulk["requestBody"]
