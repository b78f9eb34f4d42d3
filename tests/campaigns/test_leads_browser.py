"""The lead import in headless Chromium at 1280 and 390 pixels: upload, the column mapping with
its preview, the summary with its download; a running import's progress card that updates
itself until the summary shows; the leads table; nothing scrolls sideways.
Screenshots go to test-artifacts/leads-*.png."""

from pathlib import Path

import pytest
from django.core.files.base import ContentFile
from playwright.sync_api import Browser, Page, expect

from campaigns.models import ImportState, Lead, LeadImport
from tests.billing.test_billing_browser import signed_in
from tests.test_browser_phone import DESKTOP, chromium, snap_widths  # noqa: F401

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

CSV = (
    "Email Address;First Name;Last Name;Company Name;Pain point;Notes\n"
    "ada.lovelace@analytical-engines.example.de;Ada;Lovelace;Analytical Engines;"
    "Too many punch cards to sort by hand;Met at the fair\n"
    "info@acme.example.com;;;Acme;;\n"
    "not-an-address;Bob;;;;\n"
    "grace@navy.example.com;Grace;Hopper;Café Müller;Bugs;\n"
).encode("latin-1")


@pytest.fixture(autouse=True)
def _media(settings, tmp_path):
    settings.MEDIA_ROOT = str(tmp_path / "media")


def snap(page: Page, name: str) -> dict[str, int]:
    return snap_widths(page, f"leads-{name}")


def test_an_owner_imports_a_csv_and_finds_the_leads(
    live_server,
    chromium,  # noqa: F811
    owner,
):
    ws = owner.workspace
    base = f"{live_server.url}/w/{ws.public_id}"
    running = LeadImport(
        workspace=ws,
        file_name="crm-export-with-a-rather-long-file-name-2025.csv",
        file_size=1000,
        bytes_done=420,
        state=ImportState.RUNNING,
        counts={"rows": 400, "added": 380, "merged": 12, "invalid": 5, "role": 3},
    )
    running.file.save("running.csv", ContentFile(b"email\n"), save=False)
    running.save()

    def steps(browser: Browser) -> dict[str, dict[str, int]]:
        overflow = {}
        page = signed_in(browser, owner.user, live_server.url, DESKTOP)
        page.goto(f"{base}/leads/")
        expect(page.get_by_test_id("leads-empty")).to_contain_text("No leads yet")
        overflow["empty"] = snap(page, "empty")

        page.get_by_role("link", name="Import a CSV").click()
        page.get_by_label("CSV file").set_input_files(
            {"name": "fair.csv", "mimeType": "text/csv", "buffer": CSV}
        )
        overflow["upload"] = snap(page, "upload")
        page.get_by_role("button", name="Upload and preview").click()

        expect(page.get_by_role("heading", level=1)).to_have_text("Match the columns of fair.csv")
        table = page.get_by_test_id("mapping-table")
        expect(table.get_by_label("Field for Email Address")).to_have_value("email")
        expect(table.get_by_label("Field for Pain point")).to_have_value("custom")
        expect(page.locator("main")).to_contain_text("Read as Windows-1252")
        expect(table).to_contain_text("Café Müller")  # the preview, accents and all
        # Ignore the notes; the custom field's name box only shows for "Custom field…".
        notes = table.get_by_label("Field for Notes")
        notes.select_option("")
        notes_row = page.get_by_test_id("mapping-row").filter(has_text="Met at the fair")
        expect(notes_row.get_by_label("Custom field name")).to_be_hidden()
        page.get_by_label("New list's name").fill("Trade fair 2025")
        overflow["mapping"] = snap(page, "mapping")
        page.get_by_role("button", name="Start the import").click()

        expect(page.get_by_test_id("import-done")).to_contain_text(
            "Import finished: 3 leads added and 0 merged into the list Trade fair 2025"
        )
        counts = page.get_by_test_id("import-counts")
        expect(counts.locator('[data-count="invalid"]')).to_have_text("1")
        expect(counts.locator('[data-count="role"]')).to_have_text("1")
        expect(page.get_by_test_id("problem-list")).to_contain_text("@-sign")
        overflow["summary"] = snap(page, "summary")
        with page.expect_download() as download:
            page.get_by_test_id("summary-download").click()
        summary = Path(download.value.path()).read_text(encoding="utf-8")
        assert summary.splitlines()[0] == "line,email,outcome,reason"
        assert "4,not-an-address,invalid," in summary

        page.get_by_role("link", name="See the leads").click()
        expect(page.get_by_test_id("lead-list").locator("tr[data-lead]")).to_have_count(3)
        expect(page.get_by_test_id("lead-list")).to_contain_text("Role address")
        overflow["table"] = snap(page, "table")
        page.get_by_role("link", name="ada.lovelace@analytical-engines.example.de").click()
        expect(page.get_by_label("Time zone")).to_have_value("Europe/Berlin")
        expect(page.get_by_label("Custom fields")).to_have_value(
            "pain_point: Too many punch cards to sort by hand"
        )
        overflow["lead"] = snap(page, "lead")

        # A running import: its card polls and the page turns into the summary when it ends.
        page.goto(f"{base}/leads/import/{running.public_id}/")
        expect(page.get_by_test_id("progress-percent")).to_have_text("42 %")
        overflow["progress"] = snap(page, "progress")
        LeadImport.objects.filter(pk=running.pk).update(bytes_done=900)
        expect(page.get_by_test_id("progress-percent")).to_have_text("90 %")
        LeadImport.objects.filter(pk=running.pk).update(
            state=ImportState.DONE, counts={**running.counts, "rows": 1000, "added": 950}
        )
        expect(page.get_by_test_id("import-done")).to_contain_text("950 leads added")
        page.context.close()
        return overflow

    overflow = chromium.run(steps)
    assert all(width == {"1280": 0, "390": 0} for width in overflow.values()), overflow
    assert Lead.objects.filter(workspace=ws).count() == 3
