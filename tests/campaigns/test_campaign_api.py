"""/api/v1/campaigns/: building, launching and reading campaigns with a workspace token."""

import pytest

from campaigns.models import Campaign, CampaignLead, CampaignStatus
from tests.campaigns import builders
from tests.conftest import token_client

API = "/api/v1/campaigns/"


@pytest.fixture
def api(owner):
    builders.paid(owner.workspace, credits=1000)
    return token_client(owner)


@pytest.fixture
def setup(owner):
    """A standard-tier mailbox and a list of two leads in the owner's workspace."""
    domain = builders.sending_domain(owner.workspace, "acme-sales.com")
    (mailbox,) = builders.mailboxes(domain, 1)
    leads = builders.lead_list(owner.workspace, ["ann@p1.test", "bob@p2.test"], company="P")
    return mailbox, leads


def created(api, name="Q1") -> dict:
    answer = api.post(API, {"name": name}, format="json")
    assert answer.status_code == 201, answer.json()
    return answer.json()


def test_a_campaign_is_built_and_launched_through_the_api(api, setup):
    mailbox, leads = setup
    campaign = created(api)
    assert campaign["status"] == "draft"
    assert [s["position"] for s in campaign["steps"]] == [1]
    url = f"{API}{campaign['id']}/"

    answer = api.patch(
        url,
        {
            "mailboxes": [mailbox.pk],
            "lead_lists": [leads.public_id],
            "send_days": [0, 1, 2, 3, 4, 5, 6],
            "window_start": "00:00",
            "window_end": "23:59",
            "time_zone": "Europe/Paris",
        },
        format="json",
    )
    assert answer.status_code == 200, answer.json()
    body = answer.json()
    assert body["mailboxes"] == [mailbox.pk] and body["lead_lists"] == [leads.public_id]
    assert body["lead_count"] == 2 and body["time_zone"] == "Europe/Paris"

    step = api.post(f"{url}steps/", {"delay_days": 3}, format="json")
    assert step.status_code == 201 and step.json()["position"] == 2
    variant = api.post(
        f"{url}steps/1/variants/",
        {"subject": "Other", "body": "Hey {{ first_name }}\n{{ unsubscribe_url }}"},
        format="json",
    )
    assert variant.status_code == 201 and variant.json()["label"] == "B"
    edited = api.patch(f"{url}steps/1/variants/b/", {"active": False}, format="json")
    assert edited.status_code == 200 and edited.json()["active"] is False

    checks = api.get(f"{url}checks/").json()
    assert checks["ok"] is True and checks["lead_count"] == 2

    preview = api.get(f"{url}preview/", {"step": 1, "variant": "A"}).json()
    assert preview["lead_email"] == "ann@p1.test" and "Ann" in preview["body"]

    launched = api.post(f"{url}launch/", {}, format="json")
    assert launched.status_code == 200, launched.json()
    assert launched.json()["status"] == "running"
    assert CampaignLead.objects.filter(campaign__public_id=campaign["id"]).count() == 2

    assert api.post(f"{url}pause/").json()["status"] == "paused"
    assert api.post(f"{url}resume/", {}, format="json").json()["status"] == "running"

    stats = api.get(f"{url}stats/").json()
    assert stats["totals"]["sent"] == 0 and len(stats["daily"]) == 30
    assert [len(s["variants"]) for s in stats["steps"]] == [2, 1]
    assert stats["replies"] == {"replied": 0, "positive": 0}
    assert stats["tracking"]["opens"] == 0 and len(stats["tracking"]["steps"]) == 2


def test_launching_with_a_rehab_domain_answers_400_naming_the_domain(api, owner, setup):
    _, leads = setup
    rehab = builders.sending_domain(owner.workspace, "acme-new.com", tier="rehab", score=44.0)
    (mailbox,) = builders.mailboxes(rehab, 1)
    campaign = created(api)
    url = f"{API}{campaign['id']}/"
    api.patch(url, {"mailboxes": [mailbox.pk], "lead_lists": [leads.public_id]}, format="json")
    answer = api.post(f"{url}launch/", {"acknowledge_warnings": True}, format="json")
    assert answer.status_code == 400
    error = answer.json()["error"]
    assert error["code"] == "campaign_checks_failed"
    assert "acme-new.com is in the rehab tier with a trust score of 44" in error["message"]
    assert any("acme-new.com" in message for message in error["fields"]["checks"])
    assert Campaign.objects.get(public_id=campaign["id"]).status == CampaignStatus.DRAFT


def test_warnings_answer_400_until_acknowledged(api, setup):
    mailbox, leads = setup
    campaign = created(api)
    url = f"{API}{campaign['id']}/"
    api.patch(url, {"mailboxes": [mailbox.pk], "lead_lists": [leads.public_id]}, format="json")
    api.patch(
        f"{url}steps/1/variants/A/",
        {"subject": "For {{ title }}", "body": "Hi\n{{ unsubscribe_url }}"},
        format="json",
    )
    answer = api.post(f"{url}launch/", {}, format="json")
    assert answer.status_code == 400
    assert answer.json()["error"]["code"] == "campaign_checks_warn"
    answer = api.post(f"{url}launch/", {"acknowledge_warnings": True}, format="json")
    assert answer.status_code == 200


def test_bad_settings_and_templates_answer_400_with_fields_and_change_nothing(api):
    campaign = created(api)
    url = f"{API}{campaign['id']}/"
    answer = api.patch(url, {"daily_limit": 0, "time_zone": "Nowhere/City"}, format="json")
    assert answer.status_code == 400
    assert set(answer.json()["error"]["fields"]) == {"daily_limit", "time_zone"}
    answer = api.patch(f"{url}steps/1/variants/A/", {"body": "{{ first_name"}, format="json")
    assert answer.status_code == 400
    assert "line 1, column 1" in answer.json()["error"]["fields"]["body"][0]
    detail = api.get(url).json()
    assert (
        detail["daily_limit"] == 500
        and "{{ unsubscribe_url }}" in (detail["steps"][0]["variants"][0]["body"])
    )


def test_state_conflicts_answer_409(api):
    campaign = created(api)
    url = f"{API}{campaign['id']}/"
    answer = api.post(f"{url}pause/")
    assert answer.status_code == 409
    assert answer.json()["error"]["code"] == "campaign_not_running"
    assert api.delete(f"{url}steps/1/").status_code == 400  # the last step
    assert api.delete(url).status_code == 204
    assert not Campaign.objects.filter(public_id=campaign["id"]).exists()


def test_another_workspaces_campaign_is_not_found(api, stranger):
    theirs = builders.campaign(stranger.workspace, name="Theirs")
    base = f"{API}{theirs.public_id}/"
    assert api.get(base).status_code == 404
    assert api.patch(base, {"name": "Mine"}, format="json").status_code == 404
    assert api.post(f"{base}launch/", {}, format="json").status_code == 404
    assert api.get(f"{base}stats/").status_code == 404
    assert api.delete(base).status_code == 404
    assert [c["id"] for c in api.get(API).json()["results"]] == []
    theirs.refresh_from_db()
    assert theirs.name == "Theirs"


def test_members_read_but_only_owners_and_admins_change(api, teammate, setup):
    campaign = created(api)
    member = token_client(teammate)
    url = f"{API}{campaign['id']}/"
    assert member.get(url).status_code == 200
    assert member.patch(url, {"name": "X"}, format="json").status_code == 403
    assert member.post(API, {"name": "Mine"}, format="json").status_code == 403


def test_the_list_has_counts_and_no_n_plus_1(api, owner, setup, django_assert_max_num_queries):
    _, leads = setup
    for i in range(6):
        builders.campaign(owner.workspace, name=f"C{i}", lists=[leads])
    with django_assert_max_num_queries(12):
        answer = api.get(API)
    rows = answer.json()["results"]
    assert len(rows) == 6 and {row["lead_count"] for row in rows} == {2}
