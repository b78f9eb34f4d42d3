"""CSV import of external mailboxes: each row is created through the add-mailbox rules and
tested against the real Dovecot and SMTP servers; a bad file changes nothing; the pages show
progress and the outcome of every row, to admins of the workspace only, in Chromium too."""

import io
import re
import zipfile
from datetime import timedelta
from html import unescape
from typing import Any

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.utils import timezone
from playwright.sync_api import Browser, expect

from accounts.models import AuditLog
from accounts.templatetags.activity import ACTIVITY_SENTENCES
from config.errors import ApplicationError
from sending.models import Mailbox, MailboxImport, MailboxImportStatus
from sending.services.domains import domain_create
from sending.services.mailbox_import import (
    mailbox_import_run,
    mailbox_import_start,
    mailbox_imports_tidy,
)
from tests.billing.test_billing_browser import signed_in
from tests.test_browser import ARTIFACTS
from tests.test_browser_phone import DESKTOP, PHONE, chromium, sideways_overflow  # noqa: F401

pytestmark = pytest.mark.django_db

WRONG_PASSWORD = "not-the-password-9f3k"
HEADER = (
    "Email,Display Name,SMTP_Host,SMTP_Port,SMTP_Security,SMTP_Username,SMTP_Password,"
    "IMAP_Host,IMAP_Port,IMAP_Security,IMAP_Username"
)


def text_of(html: str) -> str:
    return " ".join(unescape(re.sub(r"<[^>]+>", " ", html)).split())


def csv_line(servers, account, address: str, password: str | None = None) -> str:
    """One mailbox at the test servers, logging in as `account` (IMAP password: the SMTP one)."""
    dovecot, smtp = servers
    secret = account.password if password is None else password
    return ",".join(
        [
            address,
            "Alex Example",
            smtp.host,
            str(smtp.port),
            "starttls",
            account.address,
            secret,
            dovecot.host,
            str(dovecot.port),
            "starttls",
            account.address,
        ]
    )


def csv_file(*lines: str, name: str = "mailboxes.csv") -> SimpleUploadedFile:
    return SimpleUploadedFile(name, ("\r\n".join(lines) + "\r\n").encode(), "text/csv")


@pytest.fixture
def other_domain(stranger):
    """A domain of another workspace."""
    return domain_create(
        workspace=stranger.workspace, actor=stranger.user, name="globex-outreach.com"
    )


@pytest.fixture
def start(owner, django_capture_on_commit_callbacks):
    """Upload a file as the owner; the queued run happens at commit (tasks run eagerly)."""

    def upload(file: SimpleUploadedFile) -> MailboxImport:
        with django_capture_on_commit_callbacks(execute=True):
            job = mailbox_import_start(workspace=owner.workspace, actor=owner.user, upload=file)
        job.refresh_from_db()
        return job

    return upload


def by_line(job: MailboxImport) -> dict[int, dict[str, Any]]:
    return {row["line"]: row for row in job.results}


def test_it_creates_and_tests_each_row_and_refuses_a_foreign_domain(
    mail_servers, mail_account, verified_domain, other_domain, owner, owner_client, start
):
    job = start(
        csv_file(
            HEADER,
            csv_line(mail_servers, mail_account, "alex@acme-outreach.com"),
            csv_line(mail_servers, mail_account, "Blake@Acme-Outreach.com"),
            csv_line(mail_servers, mail_account, "casey@acme-outreach.com", WRONG_PASSWORD),
            csv_line(mail_servers, mail_account, "dana@globex-outreach.com"),
        )
    )
    assert job.status == MailboxImportStatus.DONE
    assert (job.total, job.created, job.connected, job.failed) == (4, 3, 2, 1)
    rows = by_line(job)
    assert {line: row["outcome"] for line, row in rows.items()} == {
        2: "connected",
        3: "connected",
        4: "not_connected",
        5: "refused",
    }
    assert rows[3]["address"] == "blake@acme-outreach.com"
    assert "rejected the username or password" in rows[4]["message"]
    assert "globex-outreach.com is not a domain of this workspace" in rows[5]["message"]
    assert rows[5]["mailbox"] is None
    mailboxes = {m.local_part: m for m in Mailbox.objects.filter(domain=verified_domain)}
    assert sorted(mailboxes) == ["alex", "blake", "casey"]
    assert [mailboxes[n].connection_ok for n in ("alex", "blake", "casey")] == [True, True, False]
    assert mailboxes["alex"].display_name == "Alex Example"
    assert not Mailbox.objects.filter(domain=other_domain).exists()
    assert job.rows_encrypted == ""  # the passwords went with the run
    logged = AuditLog.objects.get(action="mailbox.import")
    assert (logged.workspace, logged.after["name"]) == (owner.workspace, "mailboxes.csv")
    assert "mailbox.import" in ACTIVITY_SENTENCES

    page = owner_client.get(f"/w/{owner.workspace.public_id}/mailboxes/import/{job.pk}/")
    body = page.content.decode()
    assert page.status_code == 200
    assert "hx-trigger" not in body  # finished: no more polling
    assert f'href="/w/{owner.workspace.public_id}/mailboxes/{mailboxes["casey"].pk}/"' in body
    assert body.count('data-testid="test-again"') == 1
    words = text_of(body)
    assert "Import finished: 3 mailboxes created, 2 connected." in words
    assert "globex-outreach.com is not a domain of this workspace" in words


def test_it_polls_while_the_import_waits_and_shows_the_rows_done_so_far(
    mail_servers, mail_account, verified_domain, owner, owner_client
):
    job = mailbox_import_start(
        workspace=owner.workspace,
        actor=owner.user,
        upload=csv_file(HEADER, csv_line(mail_servers, mail_account, "alex@acme-outreach.com")),
    )
    url = f"/w/{owner.workspace.public_id}/mailboxes/import/{job.pk}/"
    body = owner_client.get(url).content.decode()
    assert 'hx-trigger="every 2s"' in body
    assert "Waiting to start" in body
    MailboxImport.objects.filter(pk=job.pk).update(status="running", total=2, failed=1)
    partial = owner_client.get(url, HTTP_HX_REQUEST="true").content.decode()
    assert "<html" not in partial
    assert "1 of 2" in text_of(partial)


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b"", "The file is empty."),
        (b"email,smtp_password\r\n", "has no mailboxes below them"),
        (b"name,smtp_password\r\nalex,secret\r\n", "The file has no “email” column"),
        (b"email,smtp_password,notes\r\nalex@acme-outreach.com,x,y\r\n", "unknown column “notes”"),
        (
            b"email,smtp_password\r\na@acme-outreach.com,x\r\nb@acme-outreach.com\r\n",
            "Line 3: This row has 1 fields but the header has 2.",
        ),
    ],
    ids=["empty", "header-only", "no-email-column", "unknown-column", "short-line"],
)
def test_a_bad_file_is_refused_with_its_reason_and_changes_nothing(
    verified_domain, owner, content, expected
):
    upload = SimpleUploadedFile("bad.csv", content, "text/csv")
    with pytest.raises(ApplicationError) as refused:
        mailbox_import_start(workspace=owner.workspace, actor=owner.user, upload=upload)
    assert expected in refused.value.message
    assert refused.value.fields == {"file": [refused.value.message]}
    assert not MailboxImport.objects.exists()
    assert not Mailbox.objects.exists()


def test_a_spreadsheet_saved_as_xlsx_is_refused_on_the_page(verified_domain, owner, owner_client):
    workbook = io.BytesIO()
    with zipfile.ZipFile(workbook, "w") as archive:
        archive.writestr("xl/workbook.xml", "<workbook>" + "x" * 500 + "</workbook>")
    upload = SimpleUploadedFile("mailboxes.xlsx", workbook.getvalue())
    ws = owner.workspace.public_id
    response = owner_client.post(f"/w/{ws}/mailboxes/import/", {"file": upload})
    words = text_of(response.content.decode())
    assert response.status_code == 200
    assert "Nothing was imported: This file does not look like a CSV text file." in words
    assert "Save it from your spreadsheet as CSV (UTF-8)" in words
    assert not MailboxImport.objects.exists()


def test_bytes_that_are_not_text_are_refused_naming_their_line(verified_domain, owner):
    # UTF-8 for the first 64 KB (what the encoding is judged on), then a stray Latin-1 byte.
    padding = "x" * 1000
    lines = [b"email,display_name,smtp_password"]
    lines += [f"m{i}@acme-outreach.com,{padding},secret".encode() for i in range(70)]
    lines.append(b"late@acme-outreach.com,Ren\xe9,secret")
    upload = SimpleUploadedFile("mixed.csv", b"\r\n".join(lines) + b"\r\n")
    with pytest.raises(ApplicationError) as refused:
        mailbox_import_start(workspace=owner.workspace, actor=owner.user, upload=upload)
    assert refused.value.message.startswith("Line 72: This row contains bytes that are not valid")
    assert not MailboxImport.objects.exists()


def test_too_many_rows_are_refused_naming_the_first_one_over(verified_domain, owner, settings):
    settings.MAILBOX_IMPORT_MAX_ROWS = 3
    lines = ["email,smtp_password", *(f"m{i}@acme-outreach.com,secret" for i in range(4))]
    with pytest.raises(ApplicationError) as refused:
        mailbox_import_start(workspace=owner.workspace, actor=owner.user, upload=csv_file(*lines))
    assert refused.value.code == "too_many_rows"
    assert "more than 3 mailboxes (line 5 is mailbox 4)" in refused.value.message
    assert not MailboxImport.objects.exists()


def test_the_plan_limit_stops_creation_with_a_message_on_each_row_over_it(
    mail_servers, mail_account, verified_domain, owner, settings, start
):
    settings.BILLING_UNPAID_PLAN = "evaluation"  # two mailboxes
    job = start(
        csv_file(
            HEADER,
            *(
                csv_line(mail_servers, mail_account, f"{name}@acme-outreach.com")
                for name in ("alex", "blake", "casey", "dana")
            ),
        )
    )
    assert (job.created, job.connected, job.failed) == (2, 2, 2)
    rows = by_line(job)
    for line in (4, 5):
        assert rows[line]["outcome"] == "refused"
        assert "allows 2 mailboxes, and you have 2" in rows[line]["message"]
        assert rows[line]["link"][1] == f"/w/{owner.workspace.public_id}/billing/"
    assert Mailbox.objects.count() == 2


def test_running_the_task_twice_creates_nothing_twice(
    mail_servers, mail_account, verified_domain, owner
):
    job = mailbox_import_start(
        workspace=owner.workspace,
        actor=owner.user,
        upload=csv_file(HEADER, csv_line(mail_servers, mail_account, "alex@acme-outreach.com")),
    )
    mailbox_import_run(import_id=job.pk)
    mailbox_import_run(import_id=job.pk)
    job.refresh_from_db()
    assert (job.status, job.created, len(job.results)) == ("done", 1, 1)
    assert Mailbox.objects.count() == 1
    assert AuditLog.objects.filter(action="mailbox.create").count() == 1


def test_an_import_whose_worker_died_is_failed_and_a_lost_one_is_queued_again(
    mail_servers, mail_account, verified_domain, owner, django_capture_on_commit_callbacks
):
    def upload() -> MailboxImport:
        line = csv_line(mail_servers, mail_account, "alex@acme-outreach.com")
        return mailbox_import_start(
            workspace=owner.workspace, actor=owner.user, upload=csv_file(HEADER, line)
        )

    stuck, lost, fresh = upload(), upload(), upload()
    now = timezone.now()
    MailboxImport.objects.filter(pk=stuck.pk).update(
        status=MailboxImportStatus.RUNNING, progress_at=now - timedelta(minutes=31)
    )
    MailboxImport.objects.filter(pk=lost.pk).update(created_at=now - timedelta(minutes=11))

    with django_capture_on_commit_callbacks(execute=True):
        assert mailbox_imports_tidy(now=now) == {"failed": 1, "queued_again": 1}

    stuck.refresh_from_db()
    assert stuck.status == MailboxImportStatus.FAILED and stuck.rows_encrypted == ""
    assert "upload the file again for the rest" in stuck.error
    lost.refresh_from_db()
    assert (lost.status, lost.created) == (MailboxImportStatus.DONE, 1)  # it ran
    fresh.refresh_from_db()
    assert fresh.status == MailboxImportStatus.QUEUED  # not old enough to count as lost
    assert mailbox_imports_tidy(now=now) == {"failed": 0, "queued_again": 0}


def test_another_workspace_cannot_see_an_import(verified_domain, owner, stranger, stranger_client):
    job = mailbox_import_start(
        workspace=owner.workspace,
        actor=owner.user,
        upload=csv_file("email,smtp_password", "alex@acme-outreach.com,secret"),
    )
    for ws in (owner.workspace.public_id, stranger.workspace.public_id):
        assert stranger_client.get(f"/w/{ws}/mailboxes/import/{job.pk}/").status_code == 404
    listing = stranger_client.get(f"/w/{stranger.workspace.public_id}/mailboxes/import/")
    assert listing.status_code == 200
    assert "mailboxes.csv" not in listing.content.decode()


def test_a_member_without_the_admin_role_cannot_upload(verified_domain, owner, teammate_client):
    ws = owner.workspace.public_id
    assert teammate_client.get(f"/w/{ws}/mailboxes/import/").status_code == 403
    upload = csv_file("email,smtp_password", "alex@acme-outreach.com,secret")
    assert teammate_client.post(f"/w/{ws}/mailboxes/import/", {"file": upload}).status_code == 403
    assert not MailboxImport.objects.exists()


def test_the_example_file_has_every_column_and_imports_as_is(owner, owner_client):
    ws = owner.workspace.public_id
    response = owner_client.get(f"/w/{ws}/mailboxes/import/example.csv")
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert "attachment" in response["Content-Disposition"]
    header, *rows = response.content.decode().splitlines()
    assert header.split(",")[:3] == ["email", "display_name", "daily_limit"]
    assert "smtp_password" in header and "warmup_enabled" in header
    assert len(rows) == 2
    upload = SimpleUploadedFile("example.csv", response.content)
    job = mailbox_import_start(workspace=owner.workspace, actor=owner.user, upload=upload)
    assert job.total == 2


def test_no_password_is_stored_or_shown_in_plain_text(
    mail_servers, mail_account, verified_domain, owner, owner_client, staff_client, start
):
    job = start(
        csv_file(
            HEADER,
            csv_line(mail_servers, mail_account, "alex@acme-outreach.com"),
            csv_line(mail_servers, mail_account, "casey@acme-outreach.com", WRONG_PASSWORD),
        )
    )
    assert job.connected == 1
    secrets = (mail_account.password, WRONG_PASSWORD)
    stored = [
        str(list(MailboxImport.objects.values())),
        str(list(Mailbox.objects.values())),
        str(list(AuditLog.objects.values())),
    ]
    ws = owner.workspace.public_id
    pages = [
        owner_client.get(f"/w/{ws}/mailboxes/import/{job.pk}/").content.decode(),
        owner_client.get(f"/w/{ws}/mailboxes/import/").content.decode(),
        staff_client.get(f"/admin/sending/mailboximport/{job.pk}/change/").content.decode(),
        staff_client.get("/admin/sending/mailboximport/").content.decode(),
    ]
    for text in stored + pages:
        for secret in secrets:
            assert secret not in text


def test_the_stored_rows_are_encrypted_until_the_run(verified_domain, owner):
    job = mailbox_import_start(
        workspace=owner.workspace,
        actor=owner.user,
        upload=csv_file("email,smtp_password", "alex@acme-outreach.com,hunter2-secret"),
    )
    row = MailboxImport.objects.values().get(pk=job.pk)
    assert row["rows_encrypted"]
    assert "hunter2-secret" not in str(row)


# --- In the browser ----------------------------------------------------------------------------


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_an_agency_imports_mailboxes_and_reads_the_results_at_desk_and_phone_width(
    live_server,
    chromium,  # noqa: F811
    mail_servers,
    mail_account,
    verified_domain,
    other_domain,
    owner,
    tmp_path,
):
    path = tmp_path / "customer-mailboxes.csv"
    lines = [
        HEADER,
        csv_line(mail_servers, mail_account, "alex@acme-outreach.com"),
        csv_line(mail_servers, mail_account, "sales.team.northern.europe@acme-outreach.com"),
        csv_line(mail_servers, mail_account, "casey@acme-outreach.com", WRONG_PASSWORD),
        csv_line(mail_servers, mail_account, "dana@globex-outreach.com"),
    ]
    path.write_text("\r\n".join(lines) + "\r\n")
    bad = tmp_path / "export.csv"
    bad.write_text("Name,SMTP_Password\r\nAlex,secret\r\n")
    base = f"{live_server.url}/w/{owner.workspace.public_id}"
    ARTIFACTS.mkdir(exist_ok=True)

    def shot(page, name: str) -> int:
        page.screenshot(path=str(ARTIFACTS / f"mailbox-import-{name}.png"), full_page=True)
        return sideways_overflow(page)

    def steps(browser: Browser) -> dict[str, int]:
        phone = signed_in(browser, owner.user, live_server.url, PHONE)
        phone.goto(f"{base}/mailboxes/import/")
        phone.get_by_text("The columns", exact=True).click()
        overflow = {"upload-390": shot(phone, "upload-390")}
        phone.get_by_label("CSV file").set_input_files(str(bad))
        phone.get_by_role("button", name="Upload and import").click()
        expect(phone.get_by_role("alert")).to_contain_text("has no “email” column")
        overflow["refused-390"] = shot(phone, "refused-390")
        page = signed_in(browser, owner.user, live_server.url, DESKTOP)
        page.goto(f"{base}/mailboxes/import/")
        overflow["upload-1280"] = shot(page, "upload-1280")
        page.get_by_label("CSV file").set_input_files(str(path))
        page.get_by_role("button", name="Upload and import").click()
        expect(page.get_by_test_id("import-done")).to_contain_text("3 mailboxes created")
        expect(page.locator('tr[data-outcome="refused"]')).to_contain_text("globex-outreach.com")
        overflow["results-1280"] = shot(page, "results-1280")
        phone.goto(page.url)
        expect(phone.get_by_test_id("import-done")).to_be_visible()
        overflow["results-390"] = shot(phone, "results-390")
        phone.goto(f"{base}/mailboxes/import/")
        expect(phone.get_by_test_id("import-list")).to_contain_text("customer-mailboxes.csv")
        overflow["list-390"] = shot(phone, "list-390")
        phone.context.close()
        page.get_by_test_id("test-again").click()
        expect(page.get_by_role("heading", name="casey@acme-outreach.com")).to_be_visible()
        page.context.close()
        return overflow

    overflow = chromium.run(steps)
    assert set(overflow.values()) == {0}, overflow
    job = MailboxImport.objects.get()
    assert (job.created, job.connected, job.failed) == (3, 2, 1)


def test_the_pages_read_a_fixed_number_of_queries(
    verified_domain, owner, owner_client, django_assert_max_num_queries
):
    mailboxes = [
        Mailbox.objects.create(domain=verified_domain, local_part=f"m{i}", connection="external")
        for i in range(10)
    ]
    results = [
        {
            "line": i + 2,
            "address": m.address,
            "outcome": "not_connected",
            "message": "SMTP: refused.",
            "mailbox": m.pk,
            "link": None,
        }
        for i, m in enumerate(mailboxes)
    ]
    jobs = [
        MailboxImport.objects.create(
            workspace=owner.workspace, file_name=f"f{i}.csv", status="done", results=results
        )
        for i in range(10)
    ]
    ws = owner.workspace.public_id
    with django_assert_max_num_queries(12):
        assert owner_client.get(f"/w/{ws}/mailboxes/import/").status_code == 200
    with django_assert_max_num_queries(12):
        body = owner_client.get(f"/w/{ws}/mailboxes/import/{jobs[0].pk}/").content.decode()
    assert body.count('data-testid="test-again"') == 10
