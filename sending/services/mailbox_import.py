"""CSV imports of external mailboxes: many mailboxes at a customer's own SMTP and IMAP host.

The upload is read and checked at once (encoding, columns, size); a bad file is refused with
the line at fault and nothing is stored. A good file's rows are stored encrypted (they carry
passwords) and a background run creates each mailbox through `mailbox_create`, so every rule of
the add-mailbox form holds (roles, plan limit, domain of the workspace, duplicates), then tests
its connection. The counts and the per-row results are saved after each row, so the page shows
progress. The run is claimed with a conditional update: a second run of the task does nothing.
"""

import json
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial
from typing import Any

from django.conf import settings
from django.core.files.uploadedfile import UploadedFile
from django.db import transaction
from django.utils import timezone

from accounts.crypto import secret_decrypt, secret_encrypt
from accounts.models import User, Workspace
from accounts.services import audit_log_record
from campaigns.csv_reader import CsvFormatError, CsvReader
from config.celery import task_enqueue
from config.errors import ApplicationError
from sending.domain_names import DomainNameError, domain_name_normalise
from sending.models import (
    ConnectionType,
    DomainStatus,
    MailboxImport,
    MailboxImportOutcome,
    MailboxImportStatus,
    SendingDomain,
    TlsMode,
)
from sending.services.connection import mailbox_test_connection
from sending.services.mailboxes import mailbox_create
from sending.services.permissions import require_role

logger = logging.getLogger(__name__)

IMPORT_MAX_BYTES = 1024 * 1024
TASK = "sending.tasks.mailbox_import_run"
# A running import whose last row finished this long ago lost its worker (a row takes at most
# two connection timeouts); a queued one this old lost its task.
IMPORT_STALE = timedelta(minutes=30)
IMPORT_LOST = timedelta(minutes=10)
MAILBOX_COLUMNS = ("display_name", "daily_limit", "warmup_enabled")
SERVER_COLUMNS = tuple(
    f"{prefix}_{key}"
    for prefix in ("smtp", "imap")
    for key in ("host", "port", "security", "username", "password")
)
COLUMNS = ("email", "local_part", "domain", *MAILBOX_COLUMNS, *SERVER_COLUMNS)
EXAMPLE_COLUMNS = ("email", "display_name", "daily_limit", *SERVER_COLUMNS, "warmup_enabled")
HEADER_ALIASES = {"email_address": "email", "e_mail": "email", "address": "email"}
# Security written as mail programs show it.
SECURITY_ALIASES = {"ssl/tls": TlsMode.SSL, "ssl_tls": TlsMode.SSL, "plain": TlsMode.NONE}
# The usual security of a port, when the row leaves it empty.
PORT_SECURITY = {
    465: TlsMode.SSL,
    993: TlsMode.SSL,
    587: TlsMode.STARTTLS,
    25: TlsMode.STARTTLS,
    143: TlsMode.STARTTLS,
}
EXAMPLE_ROWS = (
    "alex@example.com,Alex Smith,40,mail.example.com,587,starttls,,app-password-of-alex,"
    "mail.example.com,993,ssl,,,yes",
    "blake@example.com,Blake Jones,30,mail.example.com,465,ssl,blake,smtp-password-of-blake,"
    "mail.example.com,993,ssl,blake,imap-password-of-blake,yes",
)
GENERIC_REFUSAL = "Some fields are invalid."


def _refused(message: str, code: str = "invalid_file") -> ApplicationError:
    return ApplicationError(message, code=code, fields={"file": [message]})


def _column_of(header: str) -> str:
    name = "_".join(header.strip().lower().replace("-", " ").split())
    return HEADER_ALIASES.get(name, name)


@dataclass(frozen=True)
class ImportRow:
    line: int
    values: dict[str, str]


def _columns(headers: tuple[str, ...]) -> list[str]:
    """The column each header names ("" for a blank header); refused when unknown, twice or
    missing a required one."""
    columns = [_column_of(header) for header in headers]
    present = set(columns)
    if "email" not in present and not {"local_part", "domain"} <= present:
        named = ", ".join(h.strip() for h in headers if h.strip())
        raise _refused(
            f"The file has no “email” column (line 1 names: {named}). Line 1 must name the "
            "columns, one of them email: see the example file."
        )
    if "smtp_password" not in present:
        raise _refused("The file has no “smtp_password” column: each mailbox needs its password.")
    unknown = [h.strip() for h, c in zip(headers, columns, strict=True) if c and c not in COLUMNS]
    if unknown:
        names = ", ".join(f"“{name}”" for name in unknown)
        raise _refused(
            f"Line 1 names unknown column{'s' if len(unknown) > 1 else ''} {names}. The columns "
            f"are: {', '.join(EXAMPLE_COLUMNS)} (see the example file)."
        )
    twice = sorted({c for c in columns if c and columns.count(c) > 1})
    if twice:
        raise _refused(f"Line 1 names the column “{twice[0]}” twice; keep one.")
    return columns


def _rows_read(reader: CsvReader, columns: list[str]) -> list[ImportRow]:
    most = settings.MAILBOX_IMPORT_MAX_ROWS
    rows: list[ImportRow] = []
    for row in reader.rows():
        if row.problem:
            raise _refused(
                f"Line {row.line}: {row.problem} Fix it in your spreadsheet, save it as CSV "
                "(UTF-8) and upload it again."
            )
        values = {c: v.strip() for c, v in zip(columns, row.values, strict=True) if c}
        if not any(values.values()):
            continue
        if len(rows) == most:
            raise _refused(
                f"The file has more than {most} mailboxes (line {row.line} is mailbox "
                f"{most + 1}). Split it into files of at most {most} rows.",
                code="too_many_rows",
            )
        rows.append(ImportRow(row.line, values))
    return rows


def mailbox_import_read(upload: UploadedFile) -> list[ImportRow]:
    """The file's rows by column name, or a refusal naming what is wrong with the file."""
    size = upload.size or 0
    if size == 0:
        raise _refused("The file is empty.")
    if size > IMPORT_MAX_BYTES:
        raise _refused(
            f"The file is {size / 1024 / 1024:.1f} MB; a mailbox import takes at most "
            f"{IMPORT_MAX_BYTES // 1024 // 1024} MB.",
            code="file_too_large",
        )
    upload.seek(0)
    try:
        reader = CsvReader(upload)
    except CsvFormatError as error:
        raise _refused(
            f"{error} Save it from your spreadsheet as CSV (UTF-8) and upload it again."
        ) from error
    if reader.header_problem:
        raise _refused(f"Line 1 cannot be read: {reader.header_problem}")
    if not any(header.strip() for header in reader.headers):
        raise _refused("The file is empty.")
    rows = _rows_read(reader, _columns(reader.headers))
    if not rows:
        raise _refused("The file names its columns but has no mailboxes below them.")
    return rows


@transaction.atomic
def mailbox_import_start(
    *, workspace: Workspace, actor: User, upload: UploadedFile
) -> MailboxImport:
    """Check an uploaded CSV of external mailboxes and queue their creation; a bad file is
    refused and nothing is stored."""
    require_role(workspace=workspace, user=actor)
    rows = mailbox_import_read(upload)
    payload = json.dumps([{"line": row.line, "values": row.values} for row in rows])
    name = (upload.name or "mailboxes.csv").replace("\\", "/").rsplit("/", 1)[-1][:255]
    job = MailboxImport.objects.create(
        workspace=workspace,
        created_by=actor,
        file_name=name,
        total=len(rows),
        rows_encrypted=secret_encrypt(payload),
    )
    audit_log_record(
        action="mailbox.import",
        actor=actor,
        obj=job,
        workspace=workspace,
        after={"name": name, "rows": len(rows)},
    )
    pk = job.pk
    transaction.on_commit(lambda: task_enqueue(TASK, pk))
    return job


# --- The run -----------------------------------------------------------------------------------


def _result(
    line: int,
    address: str,
    outcome: str,
    message: str = "",
    mailbox: int | None = None,
    link: tuple[str, str] | None = None,
) -> dict[str, Any]:
    return {
        "line": line,
        "address": address,
        "outcome": outcome,
        "message": message,
        "mailbox": mailbox,
        "link": list(link) if link else None,
    }


def _address(values: dict[str, str]) -> tuple[str, str, str]:
    """(address as written, local part, domain) of a row."""
    email = values.get("email", "").lower()
    if email:
        local_part, _, domain = email.rpartition("@")
        return email, local_part, domain
    local_part, domain = values.get("local_part", "").lower(), values.get("domain", "").lower()
    return (f"{local_part}@{domain}" if local_part or domain else ""), local_part, domain


def _security(raw: str, port: str) -> str:
    security = raw.lower()
    if security:
        return SECURITY_ALIASES.get(security, security)
    if port.isdigit():
        return PORT_SECURITY.get(int(port), "")
    return ""


def _mailbox_data(values: dict[str, str], local_part: str, address: str) -> dict[str, Any]:
    data: dict[str, Any] = {"connection": ConnectionType.EXTERNAL, "local_part": local_part}
    for column in MAILBOX_COLUMNS:
        if values.get(column):
            data[column] = values[column]
    for prefix in ("smtp", "imap"):
        for key in ("host", "port", "username", "password"):
            data[f"{prefix}_{key}"] = values.get(f"{prefix}_{key}", "")
        port = data[f"{prefix}_port"]
        data[f"{prefix}_security"] = _security(values.get(f"{prefix}_security", ""), port)
        data[f"{prefix}_username"] = data[f"{prefix}_username"] or address
    data["imap_password"] = data["imap_password"] or data["smtp_password"]
    return data


def _refusal_text(error: ApplicationError) -> str:
    """The service's refusal, naming the columns at fault as the file does."""
    if error.message != GENERIC_REFUSAL or not error.fields:
        return error.message
    parts = []
    for field, problems in error.fields.items():
        column = "email" if field == "local_part" else field
        parts.append(f"{column}: {' '.join(problems)}")
    return " ".join(parts)


def _row_import(
    row: ImportRow, *, domains: dict[str, SendingDomain], actor: User
) -> dict[str, Any]:
    address, local_part, domain_name = _address(row.values)
    if not local_part or not domain_name:
        shown = f"“{address}” is not" if address else "There is no"
        return _result(row.line, address, MailboxImportOutcome.REFUSED, f"{shown} an address.")
    try:
        domain = domains.get(domain_name_normalise(domain_name))
    except DomainNameError:
        domain = None
    if domain is None:
        message = (
            f"{domain_name} is not a domain of this workspace: add it on the Domains page, then "
            "import this line again."
        )
        return _result(row.line, address, MailboxImportOutcome.REFUSED, message)
    try:
        mailbox = mailbox_create(
            domain=domain, actor=actor, data=_mailbox_data(row.values, local_part, address)
        )
    except ApplicationError as error:
        message = _refusal_text(error)
        return _result(row.line, address, MailboxImportOutcome.REFUSED, message, link=error.link)
    try:
        mailbox_test_connection(mailbox=mailbox)
    except Exception:
        logger.exception("connection test of imported mailbox %s failed to run", mailbox.pk)
        problem = "The connection test could not run; open the mailbox and run it again."
        return _result(
            row.line, mailbox.address, MailboxImportOutcome.NOT_CONNECTED, problem, mailbox.pk
        )
    mailbox.refresh_from_db(fields=["connection_ok", "connection_error"])
    if mailbox.is_connected:
        return _result(row.line, mailbox.address, MailboxImportOutcome.CONNECTED, "", mailbox.pk)
    return _result(
        row.line,
        mailbox.address,
        MailboxImportOutcome.NOT_CONNECTED,
        mailbox.connection_error,
        mailbox.pk,
    )


def _finish(job_id: int, **fields: Any) -> None:
    # The passwords go with the rows: nothing to run again from them.
    MailboxImport.objects.filter(pk=job_id).update(
        rows_encrypted="", finished_at=timezone.now(), **fields
    )


def mailbox_import_run(*, import_id: int) -> None:
    """Create and test the mailboxes of one queued import, row by row (claimed first: a second
    run of the same import does nothing)."""
    now = timezone.now()
    claimed = MailboxImport.objects.filter(pk=import_id, status=MailboxImportStatus.QUEUED).update(
        status=MailboxImportStatus.RUNNING, started_at=now, progress_at=now
    )
    if claimed != 1:
        return
    job = MailboxImport.objects.select_related("workspace", "created_by").get(pk=import_id)
    try:
        _run(job)
    except Exception:
        logger.exception("mailbox import %s stopped", job.pk)
        _finish(
            job.pk,
            status=MailboxImportStatus.FAILED,
            error=(
                "The import stopped because of an error on our side. The mailboxes listed below "
                "were created; upload the file again for the rest (existing ones are refused, "
                "not added twice)."
            ),
        )


def _run(job: MailboxImport) -> None:
    actor = job.created_by
    if actor is None:
        _finish(
            job.pk,
            status=MailboxImportStatus.FAILED,
            error="The person who started this import no longer has an account.",
        )
        return
    rows = [
        ImportRow(item["line"], item["values"])
        for item in json.loads(secret_decrypt(job.rows_encrypted))
    ]
    domains = {
        domain.name: domain
        for domain in SendingDomain.objects.filter(workspace=job.workspace)
        .exclude(status=DomainStatus.RETIRED)
        .select_related("workspace")
    }
    results: list[dict[str, Any]] = []
    counts = {"created": 0, "connected": 0, "failed": 0}
    for row in rows:
        result = _row_import(row, domains=domains, actor=actor)
        results.append(result)
        if result["outcome"] == MailboxImportOutcome.REFUSED:
            counts["failed"] += 1
        else:
            counts["created"] += 1
            counts["connected"] += result["outcome"] == MailboxImportOutcome.CONNECTED
        MailboxImport.objects.filter(pk=job.pk).update(
            results=results, progress_at=timezone.now(), **counts
        )
    _finish(job.pk, status=MailboxImportStatus.DONE)


def mailbox_imports_tidy(*, now: datetime | None = None) -> dict[str, int]:
    """Imports a worker left behind: one queued long ago (its task was lost) is queued again,
    which is safe because a run claims its import first; one running without a finished row
    for IMPORT_STALE (its worker died) is failed, with what the customer can do."""
    now = now or timezone.now()
    failed = MailboxImport.objects.filter(
        status=MailboxImportStatus.RUNNING, progress_at__lt=now - IMPORT_STALE
    ).update(
        status=MailboxImportStatus.FAILED,
        finished_at=now,
        rows_encrypted="",
        error=(
            "The import stopped before it finished (the server running it went away). The "
            "mailboxes listed below were created; upload the file again for the rest (existing "
            "ones are refused, not added twice)."
        ),
    )
    lost = list(
        MailboxImport.objects.filter(
            status=MailboxImportStatus.QUEUED, created_at__lt=now - IMPORT_LOST
        ).values_list("pk", flat=True)
    )
    for pk in lost:
        transaction.on_commit(partial(task_enqueue, TASK, pk))
    return {"failed": failed, "queued_again": len(lost)}


def mailbox_import_example() -> str:
    """The example file offered on the upload page."""
    lines = [",".join(EXAMPLE_COLUMNS), *EXAMPLE_ROWS]
    return "\r\n".join(lines) + "\r\n"
