"""Suppression lists: normal forms, refusals, the stop of waiting campaign leads, CSV import and
export, the page's flows and the operations console."""

import csv
import io

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client

from accounts.models import AuditLog
from campaigns.models import (
    CampaignLead,
    CampaignLeadState,
    ImportKind,
    ImportState,
    Lead,
    LeadImport,
)
from campaigns.selectors.suppressions import suppression_check
from campaigns.services import suppressions
from campaigns.services.suppressions import (
    suppressed_domain_block,
    suppressed_domain_clean,
    suppressed_domain_unblock,
    suppression_add,
    suppression_import_create,
    suppression_import_run,
    suppression_remove,
)
from config.errors import ApplicationError, PermissionDenied
from sending.models import SuppressedDomain, Suppression
from tests.campaigns.builders import campaign, lead_list, sending_domain

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _media(settings, tmp_path):
    settings.MEDIA_ROOT = str(tmp_path / "media")


def page_url(membership, tail: str = "") -> str:
    return f"/w/{membership.workspace.public_id}/suppressions/{tail}"


def enrolled(workspace, emails):
    """A running campaign with one waiting campaign lead per address."""
    made = campaign(workspace, status="running", lists=[lead_list(workspace, emails)])
    for lead in Lead.objects.filter(workspace=workspace):
        CampaignLead.objects.create(campaign=made, lead=lead)
    return made


def states(workspace) -> dict[str, tuple[str, str]]:
    rows = CampaignLead.objects.filter(campaign__workspace=workspace).select_related("lead")
    return {r.lead.email: (r.state, r.state_reason) for r in rows}


# --- Normal forms and refusals ------------------------------------------------------------------


@pytest.mark.parametrize(
    "typed",
    [
        "competitor.com",
        "@competitor.com",
        " Competitor.COM. ",
        "https://competitor.com/about?x=1",
        "http://www.competitor.com:8080/",
        "www.competitor.com",
        "competitor.com/pricing",
    ],
)
def test_it_reads_a_domain_the_way_people_type_it(typed):
    assert suppressed_domain_clean(typed) == "competitor.com"


def test_it_keeps_international_domains_in_punycode_and_allows_free_mail():
    assert suppressed_domain_clean("bücher.de") == "xn--bcher-kva.de"
    assert suppressed_domain_clean("gmail.com") == "gmail.com"


@pytest.mark.parametrize(
    ("typed", "says"),
    [
        ("", "Enter a domain name"),
        ("bob@competitor.com", "That is an email address"),
        ("not a domain", "Enter only the domain name"),
        ("localhost", "full domain name"),
        ("192.0.2.1", "IP address"),
        ("co.uk", "public suffix"),
        ("competitor.invalidtld", "not under a known top-level domain"),
    ],
)
def test_it_refuses_what_cannot_be_a_domain_with_a_reason(owner, typed, says):
    with pytest.raises(ApplicationError) as refused:
        suppressed_domain_block(workspace=owner.workspace, actor=owner.user, domain=typed)
    assert says in refused.value.message
    assert refused.value.fields["domain"]
    assert not SuppressedDomain.objects.exists()


def test_an_address_is_stored_in_the_form_the_outbound_gate_compares(owner):
    added = suppression_add(
        workspace=owner.workspace, actor=owner.user, address=" Bob@Bücher.Example "
    )
    assert added.created
    assert added.row.address == "bob@xn--bcher-kva.example"
    assert added.row.reason == Suppression.Reason.MANUAL
    again = suppression_add(
        workspace=owner.workspace, actor=owner.user, address="BOB@bücher.example"
    )
    assert not again.created and again.row.pk == added.row.pk
    assert Suppression.objects.count() == 1
    log = AuditLog.objects.get(action="suppression.add")
    assert log.workspace == owner.workspace and log.actor == owner.user


def test_a_bad_address_is_refused_beside_its_field_and_changes_nothing(owner):
    with pytest.raises(ApplicationError) as refused:
        suppression_add(workspace=owner.workspace, actor=owner.user, address="bob@@example.com")
    assert "not an email address" in refused.value.message
    assert refused.value.fields["address"]
    assert not Suppression.objects.exists() and not AuditLog.objects.exists()


def test_the_workspaces_own_sending_domain_cannot_be_blocked(owner):
    sending_domain(owner.workspace, "acme-outreach.com")
    with pytest.raises(ApplicationError) as refused:
        suppressed_domain_block(
            workspace=owner.workspace, actor=owner.user, domain="https://acme-outreach.com/"
        )
    assert "your own sending domains" in refused.value.message
    assert not SuppressedDomain.objects.exists()


def test_a_stranger_cannot_add_to_another_workspaces_list(owner, stranger):
    with pytest.raises(PermissionDenied):
        suppression_add(workspace=owner.workspace, actor=stranger.user, address="a@b.com")
    with pytest.raises(PermissionDenied):
        suppressed_domain_block(workspace=None, actor=owner.user, domain="evil.com")
    assert not Suppression.objects.exists() and not SuppressedDomain.objects.exists()


# --- Stopping waiting campaign leads -------------------------------------------------------------


def test_suppressing_an_address_stops_its_waiting_campaign_leads_at_once(owner, stranger):
    enrolled(owner.workspace, ["ann@target.com", "bob@target.com"])
    enrolled(stranger.workspace, ["ann@target.com"])
    added = suppression_add(workspace=owner.workspace, actor=owner.user, address="ANN@target.com")
    assert added.stopped == 1
    seen = states(owner.workspace)
    assert seen["ann@target.com"] == ("stopped", "On the suppression list (added by hand).")
    assert seen["bob@target.com"][0] == "waiting"
    # Another workspace's lead at the same address is not touched.
    assert states(stranger.workspace)["ann@target.com"][0] == "waiting"


def test_blocking_a_domain_stops_every_waiting_lead_there_and_no_other(owner):
    enrolled(owner.workspace, ["ann@competitor.com", "bob@competitor.com", "cy@notcompetitor.com"])
    added = suppressed_domain_block(
        workspace=owner.workspace, actor=owner.user, domain="@competitor.com", reason="Rival"
    )
    assert added.stopped == 2
    seen = states(owner.workspace)
    assert seen["ann@competitor.com"] == (
        "stopped",
        "On the suppression list (the domain competitor.com is blocked).",
    )
    assert seen["cy@notcompetitor.com"][0] == "waiting"
    assert AuditLog.objects.get(action="suppressed_domain.block").after["name"] == "competitor.com"


def test_a_platform_entry_stops_waiting_leads_in_every_workspace(owner, stranger, staff_client):
    enrolled(owner.workspace, ["ann@target.com"])
    enrolled(stranger.workspace, ["ann@target.com"])
    suppression_add(
        workspace=None, actor=staff_client.staff, address="ann@target.com", reason="hard_bounce"
    )
    assert states(owner.workspace)["ann@target.com"][0] == CampaignLeadState.STOPPED
    assert states(stranger.workspace)["ann@target.com"][0] == CampaignLeadState.STOPPED


# --- Removing ------------------------------------------------------------------------------------


def test_removing_an_unsubscribe_needs_a_confirmation(owner):
    row = Suppression.objects.create(
        workspace=owner.workspace, address="ann@target.com", reason="unsubscribe"
    )
    with pytest.raises(ApplicationError) as refused:
        suppression_remove(suppression=row, actor=owner.user)
    assert refused.value.code == "confirmation_required"
    assert Suppression.objects.filter(pk=row.pk).exists()
    suppression_remove(suppression=row, actor=owner.user, confirmed=True)
    assert not Suppression.objects.filter(pk=row.pk).exists()
    log = AuditLog.objects.get(action="suppression.remove")
    assert log.before["reason"] == "unsubscribe"


def test_only_owners_and_admins_remove_entries(owner, teammate):
    row = suppression_add(workspace=owner.workspace, actor=teammate.user, address="a@b.com").row
    with pytest.raises(PermissionDenied):
        suppression_remove(suppression=row, actor=teammate.user)
    blocked = suppressed_domain_block(
        workspace=owner.workspace, actor=teammate.user, domain="b.com"
    ).row
    with pytest.raises(PermissionDenied):
        suppressed_domain_unblock(suppressed_domain=blocked, actor=teammate.user)
    suppressed_domain_unblock(suppressed_domain=blocked, actor=owner.user)
    assert not SuppressedDomain.objects.exists()
    assert Suppression.objects.filter(pk=row.pk).exists()


# --- The check ---------------------------------------------------------------------------------


def test_the_check_says_why_without_naming_another_workspace(owner, stranger, staff_client):
    Suppression.objects.create(
        workspace=stranger.workspace, address="ann@target.com", reason="complaint"
    )
    assert not suppression_check(workspace=owner.workspace, address="ann@target.com").suppressed
    suppression_add(
        workspace=None, actor=staff_client.staff, address="ann@target.com", reason="hard_bounce"
    )
    suppressed_domain_block(workspace=owner.workspace, actor=owner.user, domain="target.com")
    check = suppression_check(workspace=owner.workspace, address="Ann@Target.com")
    assert [(v.by, v.what) for v in check.verdicts] == [
        ("platform", "Hard bounce"),
        ("workspace", "the whole domain target.com is blocked"),
    ]


# --- CSV import ----------------------------------------------------------------------------------


def upload(data: bytes, name: str = "list.csv") -> SimpleUploadedFile:
    return SimpleUploadedFile(name, data, content_type="text/csv")


def run_import(owner, data: bytes, django_capture_on_commit_callbacks, name="list.csv"):
    with django_capture_on_commit_callbacks(execute=True):
        job = suppression_import_create(
            workspace=owner.workspace, actor=owner.user, upload=upload(data, name)
        )
    job.refresh_from_db()
    return job


MIXED = (
    b"email,domain,reason\n"
    b"ann@target.com,,unsubscribed\n"
    b",competitor.com,Rival company\n"
    b"not-an-address,,\n"
    b"ANN@target.com,,\n"
    b"bob@target.com,,spam\n"
    b",acme-outreach.com,\n"
    b"cy@target.com,https://www.other.com/,hard bounce\n"
    b",,\n"
    b"dee@target.com,,left the company\n"
    b"too,many,fields,here\n"
)


def test_an_import_adds_addresses_and_domains_and_reports_bad_rows_by_line(
    owner, django_capture_on_commit_callbacks
):
    sending_domain(owner.workspace, "acme-outreach.com")
    Suppression.objects.create(workspace=owner.workspace, address="dee@target.com", reason="manual")
    enrolled(owner.workspace, ["bob@target.com", "eve@competitor.com"])
    job = run_import(owner, MIXED, django_capture_on_commit_callbacks)
    assert job.kind == ImportKind.SUPPRESSIONS and job.state == ImportState.DONE
    assert job.counts == {
        "rows": 9,
        "added": 5,
        "added_addresses": 3,
        "added_domains": 2,
        "already": 2,  # ANN@ again in the file, dee@ already listed
        "invalid": 3,
        "stopped": 2,
    }
    assert [p["line"] for p in job.problems] == [4, 7, 11]
    assert "not an email address" in job.problems[0]["message"]
    assert "own sending domains" in job.problems[1]["message"]
    assert "fields but the header has 3" in job.problems[2]["message"]
    reasons = dict(Suppression.objects.values_list("address", "reason"))
    assert reasons == {
        "ann@target.com": "unsubscribe",
        "bob@target.com": "complaint",
        "cy@target.com": "hard_bounce",
        "dee@target.com": "manual",
    }
    assert set(SuppressedDomain.objects.values_list("domain", "reason")) == {
        ("competitor.com", "Rival company"),
        ("other.com", "hard bounce"),
    }
    assert job.bytes_done == job.file_size and job.progress_percent == 100
    assert states(owner.workspace)["eve@competitor.com"][0] == "stopped"
    assert AuditLog.objects.get(action="suppression.import").after["added"] == 5


def test_a_single_latin1_column_without_header_imports_addresses_and_domains(
    owner, django_capture_on_commit_callbacks
):
    data = "josé@müller.de\nsales@acme.com\nfrançais.fr\n".encode("latin-1")
    job = run_import(owner, data, django_capture_on_commit_callbacks)
    assert job.encoding == "cp1252"
    assert job.counts["invalid"] == 1 and job.problems[0]["line"] == 1  # non-ASCII local part
    assert set(Suppression.objects.values_list("address", flat=True)) == {"sales@acme.com"}
    assert set(SuppressedDomain.objects.values_list("domain", flat=True)) == {"xn--franais-xxa.fr"}


def test_a_named_column_holds_only_its_kind_and_a_headerless_file_starts_at_line_one(
    owner, django_capture_on_commit_callbacks
):
    job = run_import(owner, b"E-mail\nann@a.com\nrival.com\n", django_capture_on_commit_callbacks)
    assert job.counts["added_addresses"] == 1 and job.problems[0]["line"] == 3
    job = run_import(owner, b"Domains\nrival.com\n", django_capture_on_commit_callbacks)
    assert job.counts["added_domains"] == 1
    job = run_import(
        owner, b"Bob,bob@b.com,note\nCy,cy@@b.com,x\n", django_capture_on_commit_callbacks
    )
    assert job.counts["added"] == 1 and job.problems[0]["line"] == 2
    assert Suppression.objects.filter(address="bob@b.com").exists()


def test_running_an_import_twice_changes_nothing_the_second_time(
    owner, django_capture_on_commit_callbacks
):
    job = run_import(owner, b"email\na@x.com\nb@x.com\n", django_capture_on_commit_callbacks)
    first = (job.counts, job.finished_at)
    suppression_import_run(import_id=job.pk)
    job.refresh_from_db()
    assert (job.counts, job.finished_at) == first
    assert Suppression.objects.count() == 2
    assert AuditLog.objects.filter(action="suppression.import").count() == 1


def test_a_file_without_a_usable_column_is_refused_at_upload(owner):
    with pytest.raises(ApplicationError) as refused:
        suppression_import_create(
            workspace=owner.workspace, actor=owner.user, upload=upload(b"name,company\nAnn,Acme\n")
        )
    assert "“name”, “company”" in refused.value.message
    assert refused.value.fields["file"]
    assert not LeadImport.objects.exists()


def test_a_big_import_is_streamed_in_batches_with_progress(
    owner, django_capture_on_commit_callbacks, monkeypatch
):
    monkeypatch.setattr(suppressions, "IMPORT_BATCH", 500)
    progress: list[int] = []
    real_flush = suppressions._Importer.flush

    def flush(importer, bytes_done):
        progress.append(bytes_done)
        return real_flush(importer, bytes_done)

    monkeypatch.setattr(suppressions._Importer, "flush", flush)
    lines = "".join(f"person.number{i}@bulk{i % 7}.example.com\n" for i in range(6000))
    job = run_import(owner, ("email\n" + lines).encode(), django_capture_on_commit_callbacks)
    assert job.state == "done" and job.counts["added"] == 6000
    assert Suppression.objects.count() == 6000
    assert len(progress) == 13  # twelve full batches and the rest
    assert progress == sorted(progress) and progress[0] < job.file_size == progress[-1]


# --- Export -------------------------------------------------------------------------------------


def test_the_export_streams_addresses_and_domains_with_reason_and_date(
    owner, owner_client, stranger
):
    suppression_add(workspace=owner.workspace, actor=owner.user, address="b@x.com", source="=cmd")
    Suppression.objects.create(workspace=owner.workspace, address="a@x.com", reason="unsubscribe")
    suppressed_domain_block(workspace=owner.workspace, actor=owner.user, domain="rival.com")
    Suppression.objects.create(
        workspace=stranger.workspace, address="secret@x.com", reason="manual"
    )
    response = owner_client.get(page_url(owner, "export.csv"))
    assert response.status_code == 200 and response.streaming
    assert response["Content-Type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert rows[0] == ["kind", "value", "reason", "note", "added_at"]
    assert [r[:4] for r in rows[1:]] == [
        ["address", "a@x.com", "Unsubscribed", ""],
        ["address", "b@x.com", "Added by hand", "'=cmd"],
        ["domain", "rival.com", "Domain blocked", ""],
    ]
    assert rows[1][4].startswith("20")


# --- Pages ---------------------------------------------------------------------------------------


def test_adding_an_address_on_the_page_and_seeing_it_listed(owner, owner_client):
    response = owner_client.post(
        page_url(owner, "addresses/"), {"address": "Ann@Target.com", "note": "Asked by phone"}
    )
    assert response.status_code == 302
    page = owner_client.get(response["Location"]).content.decode()
    assert "ann@target.com is on your suppression list" in page
    assert "Asked by phone" in page


def test_a_bad_address_is_shown_beside_the_field_and_adds_nothing(owner, owner_client):
    response = owner_client.post(page_url(owner, "addresses/"), {"address": "nope"})
    assert response.status_code == 400
    html = response.content.decode()
    field = html.index('name="address"')
    error = html.index("Not an email address")
    assert error < field and field - error < 600  # the error sits just above its own input
    assert not Suppression.objects.exists()


def test_blocking_a_domain_on_the_page_and_the_own_domain_refusal(owner, owner_client):
    sending_domain(owner.workspace, "acme-outreach.com")
    refused = owner_client.post(page_url(owner, "domains/"), {"domain": "acme-outreach.com"})
    assert refused.status_code == 400
    assert "one of your own sending domains" in refused.content.decode()
    done = owner_client.post(page_url(owner, "domains/"), {"domain": "https://rival.com/x"})
    assert done.status_code == 302
    assert "rival.com is blocked" in owner_client.get(done["Location"]).content.decode()


def test_removing_an_unsubscribe_on_the_page_asks_for_consent(owner, owner_client):
    row = Suppression.objects.create(
        workspace=owner.workspace, address="ann@target.com", reason="unsubscribe"
    )
    url = page_url(owner, f"addresses/{row.pk}/remove/")
    assert "agreed again" in owner_client.get(url).content.decode()
    refused = owner_client.post(url, {})
    assert refused.status_code == 400
    assert "Confirm that they agreed" in refused.content.decode()
    assert Suppression.objects.filter(pk=row.pk).exists()
    assert owner_client.post(url, {"confirm": "on"}).status_code == 302
    assert not Suppression.objects.filter(pk=row.pk).exists()


def test_a_member_cannot_remove_and_a_stranger_sees_nothing(
    owner, teammate_client, stranger_client
):
    row = Suppression.objects.create(workspace=owner.workspace, address="a@b.com", reason="manual")
    assert teammate_client.post(page_url(owner, f"addresses/{row.pk}/remove/")).status_code == 403
    assert stranger_client.get(page_url(owner)).status_code == 404
    assert stranger_client.get(page_url(owner, "export.csv")).status_code == 404
    stranger_ws = stranger_client.get("/").wsgi_request.user.memberships.first().workspace
    own_url = f"/w/{stranger_ws.public_id}/suppressions/addresses/{row.pk}/remove/"
    assert stranger_client.post(own_url, {"confirm": "on"}).status_code == 404
    assert Suppression.objects.filter(pk=row.pk).exists()


def test_the_platform_tab_counts_and_checks_without_naming_who(
    owner, owner_client, stranger, staff_client
):
    suppression_add(workspace=None, actor=staff_client.staff, address="x@y.com", reason="complaint")
    suppressed_domain_block(workspace=None, actor=staff_client.staff, domain="spamtrap.net")
    Suppression.objects.create(
        workspace=stranger.workspace, address="only@stranger.com", reason="manual"
    )
    html = owner_client.get(page_url(owner) + "?tab=platform&address=X@y.com").content.decode()
    assert 'data-testid="platform-count">1<' in html
    assert "spamtrap.net" in html
    assert "On the platform's list: spam complaint" in html
    assert stranger.workspace.name not in html
    clear = owner_client.get(page_url(owner) + "?tab=platform&address=only@stranger.com")
    assert "is not suppressed" in clear.content.decode()


def test_the_import_page_uploads_and_shows_the_result(
    owner, owner_client, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        response = owner_client.post(
            page_url(owner, "import/"), {"file": upload(b"email\na@x.com\nbad\n")}
        )
    assert response.status_code == 302
    html = owner_client.get(response["Location"]).content.decode()
    assert 'data-state="done"' in html and 'data-testid="count-added">1' in html
    assert "Line" in html and "not an email address" in html
    problems = owner_client.get(response["Location"] + "problems.csv")
    assert b"".join(problems.streaming_content).decode().splitlines()[1].startswith("3,")
    refused = owner_client.post(page_url(owner, "import/"), {"file": upload(b"a,b\n1,2\n")})
    assert refused.status_code == 400
    assert "No “email” or “domain” column" in refused.content.decode()


def test_the_list_pages_query_a_fixed_number_of_times(
    owner, owner_client, django_assert_max_num_queries
):
    for i in range(60):
        Suppression.objects.create(
            workspace=owner.workspace, address=f"p{i}@x.com", reason="manual"
        )
        SuppressedDomain.objects.create(
            workspace=owner.workspace, domain=f"d{i}.com", created_by=owner.user
        )
    for tab in ("addresses", "domains", "platform", "import"):
        with django_assert_max_num_queries(14):
            assert owner_client.get(page_url(owner) + f"?tab={tab}").status_code == 200
    html = owner_client.get(page_url(owner) + "?tab=addresses&q=p1").content.decode()
    assert "p1@x.com" in html and "p10@x.com" in html and "p2@x.com" not in html


# --- Operations console ------------------------------------------------------------------------


def test_staff_add_platform_entries_and_remove_with_a_reason(staff_client: Client, owner):
    enrolled(owner.workspace, ["ann@target.com"])
    added = staff_client.post(
        "/admin/sending/suppression/add/",
        {"address": "Ann@Target.com", "reason": "hard_bounce", "source": "Ticket 7"},
    )
    assert added.status_code == 302
    row = Suppression.objects.get()
    assert row.workspace is None and row.address == "ann@target.com"
    assert states(owner.workspace)["ann@target.com"][0] == "stopped"
    again = staff_client.post(
        "/admin/sending/suppression/add/", {"address": "ann@target.com", "reason": "manual"}
    )
    assert "already on the platform" in again.content.decode()
    blocked = staff_client.post(
        "/admin/sending/suppresseddomain/add/", {"domain": "@spam.net", "reason": "Trap"}
    )
    assert blocked.status_code == 302
    assert SuppressedDomain.objects.get().domain == "spam.net"
    listing = staff_client.get("/admin/sending/suppression/?scope=platform")
    assert "ann@target.com" in listing.content.decode()

    for model, action, pk in (
        ("suppression", "remove", row.pk),
        ("suppresseddomain", "unblock", SuppressedDomain.objects.get().pk),
    ):
        response = staff_client.post(
            f"/admin/sending/{model}/",
            {"action": action, "_selected_action": [pk], "apply": "1", "reason": "Ticket 8"},
        )
        assert response.status_code == 302
    assert not Suppression.objects.exists() and not SuppressedDomain.objects.exists()
    logged = AuditLog.objects.filter(actor=staff_client.staff).values_list("action", "reason")
    assert set(logged) == {
        ("suppression.add", ""),
        ("suppressed_domain.block", ""),
        ("suppression.remove", "Ticket 8"),
        ("suppressed_domain.unblock", "Ticket 8"),
    }
