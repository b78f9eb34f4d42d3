"""Lead CSV imports against PostgreSQL: streamed runs, per-line problems, encodings, merges,
role and suppressed addresses, the summary file, progress and a task run twice."""

import csv
import io
import itertools
import time
import tracemalloc

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from campaigns.models import ImportState, Lead, LeadImport, LeadList
from campaigns.services import imports
from campaigns.services.imports import (
    lead_import_run,
    lead_import_start,
    lead_import_summary,
    lead_import_upload,
    mapping_guess,
)
from config.errors import ApplicationError
from sending.models import SuppressedDomain, Suppression
from tests.campaigns.builders import lead_list

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _media(settings, tmp_path):
    settings.MEDIA_ROOT = str(tmp_path / "media")


def upload(owner, content: bytes, name: str = "leads.csv") -> LeadImport:
    return lead_import_upload(
        workspace=owner.workspace,
        actor=owner.user,
        upload=SimpleUploadedFile(name, content, content_type="text/csv"),
    )


def run_import(owner, content: bytes, *, list_name: str = "Imported", **options) -> LeadImport:
    """Upload, start with the guessed mapping, run the task; the finished import."""
    lead_import = upload(owner, content)
    mapping = options.pop("mapping", None) or lead_import.mapping["columns"]
    lead_import_start(
        lead_import=lead_import,
        actor=owner.user,
        mapping=mapping,
        new_list_name=list_name,
        **options,
    )
    lead_import_run(import_id=lead_import.pk)
    lead_import.refresh_from_db()
    return lead_import


def summary_rows(lead_import: LeadImport) -> list[dict[str, str]]:
    text = b"".join(lead_import_summary(lead_import=lead_import)).decode()
    return list(csv.DictReader(io.StringIO(text)))


def test_it_guesses_the_mapping_from_header_names():
    headers = ["E-mail", "First Name", "surname", "Company Name", "Job title", "Pain point", ""]
    assert mapping_guess(headers) == {
        "0": "email",
        "1": "first_name",
        "2": "last_name",
        "3": "company",
        "4": "title",
        "5": "custom:pain_point",
        "6": "",
    }
    assert mapping_guess(["Email Address", "email"]) == {"0": "email", "1": ""}


def test_it_imports_a_file_into_a_new_list_with_custom_fields(owner):
    content = (
        b"Email Address,First name,Company,Industry,Timezone\n"
        b"Ada@Example.DE,Ada,Analytical,Computing,\n"
        b"bob@example.com,Bob,Builder,Construction,America/Chicago\n"
        b"carol@example.co.uk,Carol,,Finance,\n"
    )
    lead_import = run_import(owner, content, list_name="Conference")
    assert lead_import.state == ImportState.DONE
    assert lead_import.counts == {
        "rows": 3,
        "added": 3,
        "merged": 0,
        "invalid": 0,
        "role": 0,
        "suppressed": 0,
        "failed": 0,
    }
    assert lead_import.bytes_done == lead_import.file_size
    assert lead_import.progress_percent == 100
    ada = Lead.objects.get(workspace=owner.workspace, email="ada@example.de")
    assert (ada.first_name, ada.company, ada.custom_fields) == (
        "Ada",
        "Analytical",
        {"industry": "Computing"},
    )
    assert (ada.time_zone, ada.time_zone_guessed) == ("Europe/Berlin", True)
    bob = Lead.objects.get(email="bob@example.com")
    assert (bob.time_zone, bob.time_zone_guessed) == ("America/Chicago", False)
    assert Lead.objects.get(email="carol@example.co.uk").time_zone == "Europe/London"
    conference = LeadList.objects.get(workspace=owner.workspace, name="Conference")
    assert lead_import.lead_list == conference
    assert conference.leads.count() == 3


def test_malformed_rows_and_bad_addresses_are_reported_with_their_lines(owner):
    content = (
        b"email,first_name\n"  # line 1
        b"good@example.com,Good\n"  # 2
        b"not-an-address,Nope\n"  # 3
        b"too,many,fields\n"  # 4
        b'"multi\nline@example.com",Quoted\n'  # 5-6: one record, counted from line 5
        b",Empty\n"  # 7
        b"also.good@example.com,Fine\n"  # 8
        b"zone@example.com,Zed\n"  # 9
    )
    lead_import = run_import(owner, content)
    assert lead_import.counts["rows"] == 7
    assert lead_import.counts["added"] == 3
    assert lead_import.counts["invalid"] == 3
    assert lead_import.counts["failed"] == 1
    lines = {p["line"]: p["message"] for p in lead_import.problems}
    assert set(lines) == {3, 4, 5, 7}
    assert "fields but the header has 2" in lines[4]
    assert "@" in lines[3]
    assert lines[7] == "The address is empty."
    rows = summary_rows(lead_import)
    assert [(r["line"], r["outcome"]) for r in rows] == [
        ("2", "added"),
        ("3", "invalid"),
        ("4", "failed"),
        ("5", "invalid"),
        ("7", "invalid"),
        ("8", "added"),
        ("9", "added"),
    ]


def test_a_latin1_file_keeps_its_accents(owner):
    content = "email;first_name;company\nrene@example.fr;René;Société Générale\n".encode("latin-1")
    lead_import = run_import(owner, content)
    assert lead_import.encoding == "cp1252"
    assert lead_import.delimiter == ";"
    lead = Lead.objects.get(email="rene@example.fr")
    assert (lead.first_name, lead.company) == ("René", "Société Générale")


def test_a_utf16_file_with_a_bom_is_read(owner):
    content = "email\tfirst_name\njürgen@example.de\tJürgen\nzoe@example.com\tZoë\n"
    lead_import = run_import(owner, content.encode("utf-16"))
    assert lead_import.encoding == "utf-16"
    assert lead_import.counts["added"] == 1  # a non-ASCII local part is refused
    assert lead_import.counts["invalid"] == 1
    assert Lead.objects.get(email="zoe@example.com").first_name == "Zoë"
    assert "non-ASCII" in lead_import.problems[0]["message"]


def test_undecodable_bytes_fail_their_row_only(owner):
    # UTF-8 in the first chunk (so read as UTF-8), then a byte that is not UTF-8 further on.
    body = "".join(f"person{i}@example.com,Zoë\n" for i in range(3000)).encode()
    content = b"email,first_name\n" + body + b"bad@example.com,\xff\n" + b"ok@example.com,Ok\n"
    lead_import = run_import(owner, content)
    assert lead_import.state == ImportState.DONE
    assert lead_import.encoding == "utf-8"
    assert lead_import.counts["added"] == 3001
    assert lead_import.counts["failed"] == 1
    assert lead_import.problems == [
        {
            "line": 3002,
            "message": "This row contains bytes that are not valid text in the file's encoding.",
        }
    ]
    assert Lead.objects.filter(email="ok@example.com").exists()
    assert not Lead.objects.filter(email="bad@example.com").exists()


def test_a_file_that_is_not_csv_is_refused_at_upload(owner):
    with pytest.raises(ApplicationError) as refused:
        upload(owner, bytes(range(256)) * 64, name="photo.png")
    assert "does not look like a CSV" in refused.value.fields["file"][0]
    with pytest.raises(ApplicationError) as empty:
        upload(owner, b"")
    assert empty.value.fields["file"] == ["The file is empty."]
    assert not LeadImport.objects.exists()


def test_a_file_over_the_size_limit_is_refused(owner, monkeypatch):
    monkeypatch.setattr(imports, "IMPORT_MAX_BYTES", 100)
    with pytest.raises(ApplicationError) as refused:
        upload(owner, b"email\n" + b"someone@example.com\n" * 10)
    assert refused.value.code == "file_too_large"
    assert "at most" in refused.value.fields["file"][0]
    assert not LeadImport.objects.exists()


def test_a_stored_file_that_turns_out_unreadable_fails_the_import(owner):
    lead_import = upload(owner, b"email\na@example.com\n")
    lead_import_start(lead_import=lead_import, actor=owner.user, mapping={"0": "email"})
    with lead_import.file.open("wb") as handle:  # replaced behind our back by binary noise
        handle.write(bytes(range(256)) * 64)
    lead_import_run(import_id=lead_import.pk)
    lead_import.refresh_from_db()
    assert lead_import.state == ImportState.FAILED
    assert "does not look like a CSV" in lead_import.error
    assert not Lead.objects.exists()


def test_duplicates_merge_within_the_file_and_with_other_lists(owner):
    lead_list(owner.workspace, ["old@example.com"], name="Older list")
    Lead.objects.filter(email="old@example.com").update(first_name="", company="Kept Inc")
    content = (
        b"email,first_name,company,note\n"
        b"new@example.com,,,first\n"
        b"NEW@example.com,Nina,Ignored,second\n"
        b"old@example.com,Olga,Replaced,third\n"
    )
    lead_import = run_import(owner, content, list_name="Newer list")
    assert lead_import.counts["added"] == 1
    assert lead_import.counts["merged"] == 2
    new = Lead.objects.get(email="new@example.com")
    assert (new.first_name, new.company, new.custom_fields) == (
        "Nina",
        "Ignored",
        {"note": "first"},
    )
    old = Lead.objects.get(email="old@example.com")
    assert (old.first_name, old.company) == ("Olga", "Kept Inc")  # filled, not overwritten
    assert old.custom_fields == {"note": "third"}
    assert sorted(old.lists.values_list("name", flat=True)) == ["Newer list", "Older list"]
    assert Lead.objects.filter(workspace=owner.workspace).count() == 2
    reasons = {r["line"]: r["reason"] for r in summary_rows(lead_import)}
    assert reasons["3"].startswith("A duplicate of line 2")
    assert reasons["4"].startswith("Already a lead of this workspace")


def test_role_addresses_are_flagged_or_skipped(owner):
    content = b"email\ninfo@acme.com\nsales2@acme.com\nanna@acme.com\n"
    flagged = run_import(owner, content, list_name="Flagged")
    assert flagged.counts["role"] == 2
    assert flagged.counts["added"] == 3
    assert set(Lead.objects.filter(role_address=True).values_list("email", flat=True)) == {
        "info@acme.com",
        "sales2@acme.com",
    }
    Lead.objects.all().delete()
    skipped = run_import(owner, content, list_name="Skipped", skip_role_addresses=True)
    assert skipped.counts["role"] == 2
    assert skipped.counts["added"] == 1
    assert list(Lead.objects.values_list("email", flat=True)) == ["anna@acme.com"]
    outcomes = {r["email"]: r["outcome"] for r in summary_rows(skipped)}
    assert outcomes["info@acme.com"] == "role_skipped"


def test_suppressed_addresses_and_blocked_domains_are_skipped(owner, stranger):
    Suppression.objects.create(
        workspace=owner.workspace, address="gone@example.com", reason="manual"
    )
    Suppression.objects.create(workspace=None, address="bounced@example.com", reason="hard_bounce")
    SuppressedDomain.objects.create(workspace=owner.workspace, domain="competitor.com")
    # Another workspace's list suppresses nothing here.
    Suppression.objects.create(
        workspace=stranger.workspace, address="fine@example.com", reason="manual"
    )
    content = (
        b"email\ngone@example.com\nbounced@example.com\nceo@competitor.com\nfine@example.com\n"
    )
    lead_import = run_import(owner, content)
    assert lead_import.counts["suppressed"] == 3
    assert lead_import.counts["added"] == 1
    assert list(Lead.objects.values_list("email", flat=True)) == ["fine@example.com"]
    reasons = {r["email"]: r["reason"] for r in summary_rows(lead_import)}
    assert "competitor.com is blocked" in reasons["ceo@competitor.com"]
    assert "hard bounce" in reasons["bounced@example.com"]


def test_the_summary_cells_never_start_a_formula(owner):
    lead_import = run_import(owner, b"email\n=HYPERLINK(1)\n")
    assert summary_rows(lead_import)[0]["email"] == "'=HYPERLINK(1)"


def test_progress_is_saved_while_the_import_runs(owner, monkeypatch):
    monkeypatch.setattr(imports, "IMPORT_BATCH", 50)
    seen: list[tuple[int, int]] = []
    original = imports._save_progress

    def spy(lead_import, progress, bytes_done):
        original(lead_import, progress, bytes_done)
        row = LeadImport.objects.get(pk=lead_import.pk)
        seen.append((row.bytes_done, row.counts["rows"]))
        assert row.state == ImportState.RUNNING

    monkeypatch.setattr(imports, "_save_progress", spy)
    body = "".join(f"person{i}@example.com,{'x' * 200}\n" for i in range(400))
    lead_import = run_import(owner, f"email,note\n{body}".encode())
    assert len(seen) == 8
    assert [rows for _, rows in seen] == [50 * (i + 1) for i in range(8)]
    assert all(a[0] <= b[0] for a, b in itertools.pairwise(seen))
    assert seen[0][0] < lead_import.file_size
    assert lead_import.counts["added"] == 400


def test_the_task_run_twice_imports_once(owner, django_capture_on_commit_callbacks):
    lead_import = upload(owner, b"email\na@example.com\nb@example.com\n")
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        lead_import_start(lead_import=lead_import, actor=owner.user, mapping={"0": "email"})
    assert len(callbacks) == 1  # the task was queued once the start committed (run eagerly)
    lead_import.refresh_from_db()
    assert lead_import.state == ImportState.DONE
    finished = lead_import.finished_at
    lead_import_run(import_id=lead_import.pk)  # a second delivery of the same task
    lead_import.refresh_from_db()
    assert lead_import.finished_at == finished
    assert lead_import.counts["added"] == 2
    with pytest.raises(ApplicationError):
        lead_import_start(lead_import=lead_import, actor=owner.user, mapping={"0": "email"})


def test_a_mapping_without_an_email_column_is_refused(owner):
    lead_import = upload(owner, b"name,company\nAda,Analytical\n")
    with pytest.raises(ApplicationError) as refused:
        lead_import_start(lead_import=lead_import, actor=owner.user, mapping={"0": "first_name"})
    assert refused.value.fields["mapping"] == ["Choose the column that holds the email address."]
    with pytest.raises(ApplicationError) as twice:
        lead_import_start(
            lead_import=lead_import, actor=owner.user, mapping={"0": "email", "1": "email"}
        )
    assert "already taken" in twice.value.fields["column_1"][0]
    with pytest.raises(ApplicationError) as reserved:
        lead_import_start(
            lead_import=lead_import,
            actor=owner.user,
            mapping={"0": "email", "1": "custom:first_name"},
        )
    assert "lead's own fields" in reserved.value.fields["column_1"][0]
    lead_import.refresh_from_db()
    assert lead_import.state == ImportState.UPLOADED
    assert not LeadList.objects.exists()


def test_a_100k_row_import_streams_in_bounded_memory(owner):
    rows = "".join(
        f"lead{i}@company{i % 997}.com,First{i},Last{i},Company {i % 997},VP Sales\n"
        for i in range(100_000)
    )
    content = ("email,first_name,last_name,company,title\n" + rows).encode()
    lead_import = upload(owner, content)
    lead_import_start(
        lead_import=lead_import,
        actor=owner.user,
        mapping=lead_import.mapping["columns"],
        new_list_name="Big",
    )
    started = time.monotonic()
    tracemalloc.start()
    try:
        lead_import_run(import_id=lead_import.pk)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    elapsed = time.monotonic() - started
    lead_import.refresh_from_db()
    assert lead_import.state == ImportState.DONE, lead_import.error
    assert lead_import.counts["added"] == 100_000
    assert Lead.objects.filter(workspace=owner.workspace).count() == 100_000
    assert lead_import.lead_list.leads.count() == 100_000
    # The whole file as Python objects would take several times its size; a streamed run holds
    # one batch of rows at a time.
    assert peak < len(content) / 2, (peak, len(content))
    print(f"100k rows in {elapsed:.1f} s, peak {peak / 1e6:.1f} MB for {len(content) / 1e6:.1f} MB")
