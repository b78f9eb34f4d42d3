"""Lead pages with the Django test client: the import flow (upload -> mapping -> progress ->
summary), the leads table and its filters, a lead, lists, tenant isolation and N+1 guards."""

import csv
import io

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from campaigns.models import ImportState, Lead, LeadImport, LeadList
from campaigns.services.imports import lead_import_run
from campaigns.services.leads import LeadRow, leads_upsert
from tests.campaigns.builders import lead_list

pytestmark = pytest.mark.django_db

CSV = (
    b"Email Address,First Name,Company,Industry\n"
    b"ada@example.de,Ada,Analytical,Computing\n"
    b"info@example.com,,Acme,Retail\n"
    b"not-an-address,Bob,,\n"
    b"ada@example.de,,,\n"
)


@pytest.fixture(autouse=True)
def _media(settings, tmp_path):
    settings.MEDIA_ROOT = str(tmp_path / "media")


def url(name: str, ws, *args) -> str:
    return reverse(name, args=[ws.public_id, *args])


def test_the_import_flow_from_upload_to_summary(
    owner, owner_client, django_capture_on_commit_callbacks
):
    ws = owner.workspace
    page = owner_client.get(url("lead_import_new", ws))
    assert page.status_code == 200
    assert b"Upload and preview" in page.content

    uploaded = owner_client.post(
        url("lead_import_new", ws), {"file": SimpleUploadedFile("fair.csv", CSV)}
    )
    lead_import = LeadImport.objects.get()
    assert uploaded.url == url("lead_import_detail", ws, lead_import.public_id)

    mapping = owner_client.get(uploaded.url)
    text = mapping.content.decode()
    assert "Match the columns of fair.csv" in text
    assert 'value="email" selected' in text  # guessed from "Email Address"
    assert "Analytical" in text  # the preview
    assert 'value="industry"' in text  # a custom field named after its header

    form = {
        "column_0": "email",
        "column_1": "first_name",
        "column_2": "company",
        "column_3": "custom",
        "custom_3": "Sector",
        "lead_list": "",
        "new_list_name": "Fair 2025",
        "role_addresses": "flag",
    }
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        started = owner_client.post(uploaded.url, form)
    assert started.status_code == 302
    assert len(callbacks) == 1  # the task is queued when the start commits

    progress = owner_client.get(uploaded.url)
    assert b"Waiting to start" in progress.content
    assert b'hx-trigger="every 1s"' in progress.content
    lead_import_run(import_id=lead_import.pk)

    partial = owner_client.get(
        url("lead_import_progress", ws, lead_import.public_id), HTTP_HX_REQUEST="true"
    )
    assert partial["HX-Refresh"] == "true"  # finished: the page reloads into the summary
    assert b"hx-trigger" not in partial.content

    summary = owner_client.get(uploaded.url)
    text = summary.content.decode()
    assert "Import finished: 2 leads added and 1 merged into the list" in text
    assert 'data-count="invalid">1<' in text
    assert 'data-count="role">1<' in text
    assert "Problems, by line" in text
    assert '<td class="num">4</td>' in text  # the invalid address's line
    download = owner_client.get(url("lead_import_summary", ws, lead_import.public_id))
    assert download["Content-Disposition"] == 'attachment; filename="fair-summary.csv"'
    rows = list(csv.DictReader(io.StringIO(b"".join(download.streaming_content).decode())))
    assert [(r["line"], r["outcome"]) for r in rows] == [
        ("2", "added"),
        ("3", "added"),
        ("4", "invalid"),
        ("5", "merged"),
    ]
    assert rows[1]["reason"].startswith("A role address: imported and flagged.")
    ada = Lead.objects.get(email="ada@example.de")
    assert ada.custom_fields == {"sector": "Computing"}
    assert ada.lists.get().name == "Fair 2025"


def test_a_bad_upload_is_explained_beside_the_field(owner, owner_client):
    page = owner_client.post(
        url("lead_import_new", owner.workspace),
        {"file": SimpleUploadedFile("photo.png", bytes(range(256)) * 64)},
    )
    assert page.status_code == 200
    assert "does not look like a CSV text file" in page.content.decode()
    assert not LeadImport.objects.exists()


def test_a_mapping_without_email_stays_on_the_page_with_the_reason(owner, owner_client):
    owner_client.post(
        url("lead_import_new", owner.workspace), {"file": SimpleUploadedFile("a.csv", CSV)}
    )
    lead_import = LeadImport.objects.get()
    page = owner_client.post(
        url("lead_import_detail", owner.workspace, lead_import.public_id),
        {
            "column_0": "",
            "column_1": "first_name",
            "column_2": "first_name",
            "column_3": "",
            "lead_list": "",
            "new_list_name": "X",
            "role_addresses": "flag",
        },
    )
    text = page.content.decode()
    assert page.status_code == 200
    assert "Choose the column that holds the email address." in text
    assert "First name is already taken by another column." in text
    lead_import.refresh_from_db()
    assert lead_import.state == ImportState.UPLOADED
    assert not LeadList.objects.exists()


def test_the_leads_table_filters_and_pages(owner, owner_client, django_assert_max_num_queries):
    ws = owner.workspace
    fair = lead_list(ws, [f"fair{i}@example.com" for i in range(60)], name="Fair")
    lead_list(ws, ["other@globex.example"], name="Other", company="Globex")
    page_url = url("leads", ws)
    with django_assert_max_num_queries(12):
        first = owner_client.get(page_url)
    text = first.content.decode()
    assert text.count('data-lead="') == 50
    assert "Leads 1–50" in text and 'rel="next"' in text
    second = owner_client.get(page_url, {"page": 2})
    assert second.content.decode().count('data-lead="') == 11
    by_list = owner_client.get(page_url, {"list": fair.public_id})
    assert "other@globex.example" not in by_list.content.decode()
    searched = owner_client.get(page_url, {"q": "globex"}).content.decode()
    assert searched.count('data-lead="') == 1
    nothing = owner_client.get(page_url, {"status": "bounced"}).content.decode()
    assert "No lead matches these filters" in nothing


def test_an_empty_workspace_is_told_how_to_start(owner, owner_client):
    page = owner_client.get(url("leads", owner.workspace)).content.decode()
    assert "No leads yet" in page
    assert url("lead_import_new", owner.workspace) in page


def test_a_lead_is_edited_and_deleted_on_its_page(owner, owner_client):
    ws = owner.workspace
    fair = lead_list(ws, ["ada@example.com"], name="Fair")
    lead = Lead.objects.get()
    page_url = url("lead_detail", ws, lead.public_id)
    refused = owner_client.post(
        page_url, {"status": "active", "time_zone": "Mars", "custom_fields": "plan: pro"}
    )
    assert "is not a time zone" in refused.content.decode()
    saved = owner_client.post(
        page_url,
        {
            "first_name": "Ada",
            "status": "out_of_office",
            "out_of_office_until": "2030-01-06",
            "time_zone": "Europe/London",
            "custom_fields": "Plan: pro\nseats: 3",
            "lists": [fair.public_id],
        },
    )
    assert saved.status_code == 302
    lead.refresh_from_db()
    assert lead.custom_fields == {"plan": "pro", "seats": "3"}
    assert lead.status == "out_of_office"
    deleted = owner_client.post(url("lead_delete", ws, lead.public_id))
    assert deleted.url == url("leads", ws)
    assert not Lead.objects.exists()


def test_lists_page_creates_renames_and_deletes(owner, owner_client, django_assert_max_num_queries):
    ws = owner.workspace
    for i in range(5):
        lead_list(ws, [f"p{i}@example.com"], name=f"List {i}")
    with django_assert_max_num_queries(10):
        page = owner_client.get(url("lead_lists", ws))
    assert page.content.decode().count('data-list="') == 5
    owner_client.post(url("lead_lists", ws), {"name": "New one"})
    duplicate = owner_client.post(url("lead_lists", ws), {"name": "new ONE"})
    assert "already a list called" in duplicate.content.decode()
    made = LeadList.objects.get(name="New one")
    owner_client.post(url("lead_list_rename", ws, made.public_id), {"name": "Renamed"})
    made.refresh_from_db()
    assert made.name == "Renamed"
    owner_client.post(url("lead_list_delete", ws, made.public_id))
    assert not LeadList.objects.filter(pk=made.pk).exists()


def test_a_stranger_sees_none_of_it(owner, stranger, stranger_client):
    ws = owner.workspace
    lead_list(ws, ["ada@example.com"], name="Fair")
    lead = Lead.objects.get()
    listed = LeadList.objects.get()
    leads_upsert(workspace=ws, rows=[LeadRow(0, "b@example.com")])
    imp = LeadImport.objects.create(workspace=ws, file_name="x.csv", state=ImportState.DONE)
    for path in (
        url("leads", ws),
        url("lead_detail", ws, lead.public_id),
        url("lead_lists", ws),
        url("lead_import_detail", ws, imp.public_id),
        url("lead_import_summary", ws, imp.public_id),
    ):
        assert stranger_client.get(path).status_code == 404, path
    # Through their own workspace's pages, the owner's ids lead nowhere either.
    mine = stranger.workspace
    for path in (
        url("lead_detail", mine, lead.public_id),
        url("lead_import_detail", mine, imp.public_id),
        url("lead_import_progress", mine, imp.public_id),
        url("lead_import_summary", mine, imp.public_id),
    ):
        assert stranger_client.get(path).status_code == 404, path
    assert stranger_client.post(url("lead_delete", mine, lead.public_id)).status_code == 404
    assert stranger_client.post(url("lead_list_delete", mine, listed.public_id)).status_code == 404
    assert "ada@example.com" not in stranger_client.get(url("leads", mine)).content.decode()
    assert stranger_client.post(url("lead_delete", ws, lead.public_id)).status_code == 404
    assert stranger_client.post(url("lead_list_delete", ws, listed.public_id)).status_code == 404
    assert Lead.objects.count() == 2 and LeadList.objects.count() == 1
