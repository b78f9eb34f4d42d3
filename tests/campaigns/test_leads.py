"""Lead services against PostgreSQL: the upsert's rules, lists, edits, deletion."""

from datetime import date

import pytest
from hypothesis import given
from hypothesis import strategies as st

from campaigns.lead_rules import address_normalize
from campaigns.models import CampaignLead, CampaignLeadState, Lead, LeadList, LeadStatus
from campaigns.services.enrolment import campaign_leads_enrol
from campaigns.services.leads import (
    LeadRow,
    Outcome,
    address_clean,
    lead_delete,
    lead_list_create,
    lead_list_delete,
    lead_list_rename,
    lead_update,
    leads_upsert,
)
from config.errors import ApplicationError
from sending.models import Suppression
from tests.campaigns import builders
from tests.campaigns.builders import lead_list

DOMAINS = ["example.com", "Example.DE", "bücher.de", "x.test", "-bad.com", "a", "ex_ample.com"]


@given(
    local=st.text(alphabet="abcXYZ019._+-!#'", min_size=1, max_size=70),
    domain=st.sampled_from(DOMAINS),
)
def test_the_fast_address_check_agrees_with_the_full_one(local, domain):
    address = f"{local}@{domain}"
    try:
        expected = address_normalize(address)
    except ValueError:
        with pytest.raises(ValueError):
            address_clean(address)
    else:
        assert address_clean(address) == expected


def test_it_adds_merges_and_reports_each_row(owner):
    rows = [
        LeadRow(0, " Ada@Example.com ", {"first_name": "Ada"}, {"plan": "pro"}),
        LeadRow(1, "ada@example.com", {"company": "Analytical"}, {"plan": "free", "seats": "3"}),
        LeadRow(2, "nope", {}),
        LeadRow(3, "long@example.com", {"first_name": "x" * 121}),
        LeadRow(4, "tz@example.com", {"time_zone": "Mars/Olympus"}),
        LeadRow(5, "bad-custom@example.com", {}, {"First Name": "x"}),
    ]
    result = leads_upsert(workspace=owner.workspace, rows=rows, where="item")
    outcomes = [(o.ref, o.outcome) for o in result.outcomes]
    assert outcomes == [
        (0, Outcome.ADDED),
        (1, Outcome.MERGED),
        (2, Outcome.INVALID),
        (3, Outcome.FAILED),
        (4, Outcome.ADDED),
        (5, Outcome.FAILED),
    ]
    assert result.outcomes[1].reason == "A duplicate of item 0: merged."
    assert "longer than 120" in result.outcomes[3].reason
    assert "Mars/Olympus" in result.outcomes[4].reason
    ada = Lead.objects.get(email="ada@example.com")
    assert (ada.first_name, ada.company) == ("Ada", "Analytical")
    assert ada.custom_fields == {"plan": "pro", "seats": "3"}
    assert Lead.objects.get(email="tz@example.com").time_zone == ""
    assert result.counts() == {
        "rows": 6,
        "added": 2,
        "merged": 1,
        "invalid": 1,
        "role": 0,
        "suppressed": 0,
        "failed": 2,
    }


def test_a_given_time_zone_replaces_a_guess_but_not_a_given_one(owner):
    leads_upsert(
        workspace=owner.workspace, rows=[LeadRow(0, "a@example.de"), LeadRow(1, "b@x.com")]
    )
    a = Lead.objects.get(email="a@example.de")
    assert (a.time_zone, a.time_zone_guessed) == ("Europe/Berlin", True)
    leads_upsert(
        workspace=owner.workspace,
        rows=[
            LeadRow(0, "a@example.de", {"time_zone": "Europe/Vienna"}),
            LeadRow(1, "b@x.com", {"time_zone": "Asia/Tokyo"}),
        ],
    )
    leads_upsert(workspace=owner.workspace, rows=[LeadRow(0, "a@example.de", {"time_zone": "UTC"})])
    a.refresh_from_db()
    assert (a.time_zone, a.time_zone_guessed) == ("Europe/Vienna", False)
    assert Lead.objects.get(email="b@x.com").time_zone == "Asia/Tokyo"


def test_leads_of_another_workspace_are_never_merged(owner, stranger):
    lead_list(stranger.workspace, ["shared@example.com"], name="Theirs")
    result = leads_upsert(workspace=owner.workspace, rows=[LeadRow(0, "shared@example.com")])
    assert result.outcomes[0].outcome == Outcome.ADDED
    assert Lead.objects.filter(email="shared@example.com").count() == 2
    theirs = Lead.objects.get(workspace=stranger.workspace)
    assert theirs.lists.get().name == "Theirs"


def test_lists_are_created_renamed_and_deleted_keeping_their_leads(owner):
    made = lead_list_create(workspace=owner.workspace, actor=owner.user, name="  Trade   fair ")
    assert made.name == "Trade fair"
    with pytest.raises(ApplicationError) as taken:
        lead_list_create(workspace=owner.workspace, actor=owner.user, name="trade FAIR")
    assert "already a list" in taken.value.fields["name"][0]
    with pytest.raises(ApplicationError):
        lead_list_create(workspace=owner.workspace, actor=owner.user, name="   ")
    lead_list_rename(lead_list=made, actor=owner.user, name="Fair 2025")
    leads_upsert(workspace=owner.workspace, rows=[LeadRow(0, "x@example.com")], lead_list=made)
    lead_list_delete(lead_list=made, actor=owner.user)
    assert not LeadList.objects.exists()
    assert Lead.objects.get(email="x@example.com").lists.count() == 0
    assert owner.workspace.audit_logs.filter(action="lead_list.delete").exists()


def test_a_lead_is_updated_with_checked_values(owner):
    fair = lead_list_create(workspace=owner.workspace, actor=owner.user, name="Fair")
    leads_upsert(workspace=owner.workspace, rows=[LeadRow(0, "ada@example.com")])
    lead = Lead.objects.get()
    with pytest.raises(ApplicationError) as refused:
        lead_update(
            lead=lead,
            actor=owner.user,
            data={"time_zone": "Berlin", "status": LeadStatus.OUT_OF_OFFICE},
        )
    assert set(refused.value.fields) == {"time_zone", "out_of_office_until"}
    lead.refresh_from_db()
    assert (lead.time_zone, lead.status) == ("", LeadStatus.ACTIVE)  # nothing changed
    lead_update(
        lead=lead,
        actor=owner.user,
        data={
            "first_name": " Ada ",
            "time_zone": "Europe/London",
            "status": LeadStatus.OUT_OF_OFFICE,
            "out_of_office_until": date(2030, 1, 6),
            "custom_fields": {"plan": "pro"},
            "lists": [fair],
        },
    )
    lead.refresh_from_db()
    assert (lead.first_name, lead.time_zone, lead.status) == (
        "Ada",
        "Europe/London",
        "out_of_office",
    )
    assert lead.out_of_office_until == date(2030, 1, 6)
    assert list(lead.lists.all()) == [fair]
    lead_update(lead=lead, actor=owner.user, data={"status": LeadStatus.ACTIVE, "lists": []})
    lead.refresh_from_db()
    assert lead.out_of_office_until is None
    assert lead.lists.count() == 0


def test_a_lead_marked_unsubscribed_by_hand_is_suppressed_and_its_steps_stop(owner):
    leads_upsert(workspace=owner.workspace, rows=[LeadRow(0, "ada@example.com")])
    lead = Lead.objects.get()
    campaign = builders.campaign(owner.workspace)
    campaign_leads_enrol(campaign=campaign, lead_ids=[lead.pk])
    lead_update(lead=lead, actor=owner.user, data={"status": LeadStatus.UNSUBSCRIBED})
    entry = Suppression.objects.get(workspace=owner.workspace, address="ada@example.com")
    assert entry.reason == Suppression.Reason.UNSUBSCRIBE
    assert CampaignLead.objects.get(lead=lead).state == CampaignLeadState.STOPPED
    # Back to active: the suppression stays (removing it is a separate, deliberate act).
    lead_update(lead=lead, actor=owner.user, data={"status": LeadStatus.ACTIVE})
    assert Suppression.objects.filter(address="ada@example.com").exists()


def test_a_lead_is_deleted_with_an_audit_entry(owner):
    leads_upsert(workspace=owner.workspace, rows=[LeadRow(0, "gone@example.com")])
    lead_delete(lead=Lead.objects.get(), actor=owner.user)
    assert not Lead.objects.exists()
    assert owner.workspace.audit_logs.filter(action="lead.delete").exists()


def test_a_large_batch_takes_a_fixed_number_of_queries(owner, django_assert_max_num_queries):
    lead_list(owner.workspace, [f"old{i}@example.com" for i in range(50)])
    target = LeadList.objects.get()
    rows = [LeadRow(i, f"old{i}@example.com", {"company": "Acme"}) for i in range(50)]
    rows += [LeadRow(50 + i, f"new{i}@example.com") for i in range(1500)]
    with django_assert_max_num_queries(10):
        result = leads_upsert(workspace=owner.workspace, rows=rows, lead_list=target)
    assert result.counts()["added"] == 1500
    assert result.counts()["merged"] == 50
    assert target.leads.count() == 1550
