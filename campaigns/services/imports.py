"""CSV imports of leads: upload (headers, preview, a guessed mapping), the customer's mapping,
then the background run that streams the stored file through the lead upsert.

The run never holds the file: rows are read by `campaigns.csv_reader.CsvReader` and upserted
`IMPORT_BATCH` at a time, each batch in its own transaction, after which the progress (bytes
read, counts, the first problems) is saved. The summary (one line per data row: line, email,
outcome, reason) is written to a temporary file as the run goes and stored beside the upload at
the end. The run is claimed with a conditional update, so a second run of the task does nothing.
"""

import csv
import io
import logging
import tempfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial
from typing import IO, Any

from django.core.files import File
from django.core.files.storage import default_storage
from django.core.files.uploadedfile import UploadedFile
from django.db import transaction
from django.utils import timezone

from accounts.models import User, Workspace
from accounts.services import audit_log_record
from campaigns.csv_reader import CsvFormatError, CsvReader, Row, preview
from campaigns.models import ImportKind, ImportState, LeadImport, LeadList
from campaigns.services.leads import (
    LEAD_FIELD_LABELS,
    LEAD_FIELDS,
    LeadRow,
    Outcome,
    RowOutcome,
    custom_field_name,
    custom_field_problem,
    lead_list_create,
    leads_upsert,
)
from config.celery import task_enqueue
from config.errors import ApplicationError

logger = logging.getLogger(__name__)

IMPORT_MAX_BYTES = 50 * 1024 * 1024
IMPORT_BATCH = 1000
PROBLEMS_KEPT = 1000
PREVIEW_ROWS = 5
CUSTOM_PREFIX = "custom:"
COUNT_KEYS = ("rows", "added", "merged", "invalid", "role", "suppressed", "failed")
SUMMARY_HEADER = ("line", "email", "outcome", "reason")

# Header spellings (lower-case, without spaces, dashes, dots and underscores) -> lead field.
HEADER_ALIASES = {
    "email": "email",
    "emailaddress": "email",
    "mail": "email",
    "workemail": "email",
    "businessemail": "email",
    "emailid": "email",
    "firstname": "first_name",
    "first": "first_name",
    "givenname": "first_name",
    "forename": "first_name",
    "lastname": "last_name",
    "last": "last_name",
    "surname": "last_name",
    "familyname": "last_name",
    "company": "company",
    "companyname": "company",
    "organization": "company",
    "organisation": "company",
    "account": "company",
    "accountname": "company",
    "title": "title",
    "jobtitle": "title",
    "position": "title",
    "role": "title",
    "phone": "phone",
    "phonenumber": "phone",
    "mobile": "phone",
    "telephone": "phone",
    "website": "website",
    "url": "website",
    "companywebsite": "website",
    "domain": "website",
    "web": "website",
    "timezone": "time_zone",
    "tz": "time_zone",
}


# --- Mapping -----------------------------------------------------------------------------------


def _header_key(header: str) -> str:
    return "".join(ch for ch in header.lower() if ch.isalnum())


def mapping_guess(headers: tuple[str, ...] | list[str]) -> dict[str, str]:
    """Column index -> lead field guessed from the header names; other non-empty columns become
    custom fields named after their header; each lead field is taken once."""
    mapping: dict[str, str] = {}
    taken: set[str] = set()
    for index, header in enumerate(headers):
        target = HEADER_ALIASES.get(_header_key(header), "")
        if target and target not in taken:
            taken.add(target)
            mapping[str(index)] = target
            continue
        name = custom_field_name(header)
        if name and custom_field_problem(name) is None and f"{CUSTOM_PREFIX}{name}" not in taken:
            taken.add(f"{CUSTOM_PREFIX}{name}")
            mapping[str(index)] = f"{CUSTOM_PREFIX}{name}"
        else:
            mapping[str(index)] = ""
    return mapping


def mapping_problems(mapping: Mapping[str, str], width: int) -> dict[str, list[str]]:
    """Why a column mapping cannot run, by column index ("" for the whole mapping)."""
    problems: dict[str, list[str]] = {}
    seen: dict[str, str] = {}
    for index, target in mapping.items():
        if not index.isdigit() or int(index) >= width:
            problems.setdefault("", []).append(f"The file has no column {index}.")
            continue
        if not target:
            continue
        if target.startswith(CUSTOM_PREFIX):
            if problem := custom_field_problem(target.removeprefix(CUSTOM_PREFIX)):
                problems.setdefault(index, []).append(problem)
                continue
        elif target != "email" and target not in LEAD_FIELDS:
            problems.setdefault(index, []).append(f"“{target}” is not a lead field.")
            continue
        if target in seen:
            what = _target_label(target)
            problems.setdefault(index, []).append(f"{what} is already taken by another column.")
        seen[target] = index
    emails = [index for index, target in mapping.items() if target == "email"]
    if not emails:
        problems.setdefault("", []).append("Choose the column that holds the email address.")
    return problems


def _target_label(target: str) -> str:
    if target.startswith(CUSTOM_PREFIX):
        return f"The custom field {target.removeprefix(CUSTOM_PREFIX)}"
    return LEAD_FIELD_LABELS.get(target, target)


# --- Upload and start --------------------------------------------------------------------------


@dataclass(frozen=True)
class ImportPreview:
    headers: tuple[str, ...]
    rows: tuple[Row, ...]


def _upload_refused(message: str, code: str = "invalid_file") -> ApplicationError:
    return ApplicationError(message, code=code, fields={"file": [message]})


@transaction.atomic
def lead_import_upload(
    *, workspace: Workspace, actor: User | None, upload: UploadedFile
) -> LeadImport:
    """Store an uploaded CSV of leads with its headers and a guessed column mapping; refused
    with a reason when it is too large, empty or not CSV text."""
    size = upload.size or 0
    if size > IMPORT_MAX_BYTES:
        raise _upload_refused(
            f"The file is {size / 1024 / 1024:.1f} MB; an import takes at most "
            f"{IMPORT_MAX_BYTES // 1024 // 1024} MB. Split it into smaller files.",
            code="file_too_large",
        )
    if size == 0:
        raise _upload_refused("The file is empty.")
    upload.seek(0)
    try:
        found = preview(upload, rows=PREVIEW_ROWS)
    except CsvFormatError as error:
        raise _upload_refused(f"{error} Save it from your spreadsheet as CSV.") from error
    if not found.headers or not any(h.strip() for h in found.headers):
        raise _upload_refused("The file has no header row: its first line must name the columns.")
    upload.seek(0)
    lead_import = LeadImport(
        workspace=workspace,
        kind=ImportKind.LEADS,
        file_name=(upload.name or "leads.csv")[:255],
        file_size=size,
        encoding=found.encoding,
        delimiter=found.delimiter,
        headers=list(found.headers),
        mapping={"columns": mapping_guess(found.headers), "skip_role_addresses": False},
        created_by=actor,
        counts={key: 0 for key in COUNT_KEYS},
    )
    lead_import.file.save(f"{lead_import.public_id}.csv", upload, save=False)
    lead_import.save()
    return lead_import


def lead_import_preview(*, lead_import: LeadImport) -> ImportPreview:
    """The headers and the first rows of an uploaded file (read again from storage)."""
    with lead_import.file.open("rb") as handle:
        found = preview(handle, rows=PREVIEW_ROWS)
    return ImportPreview(found.headers, found.rows)


@transaction.atomic
def lead_import_start(
    *,
    lead_import: LeadImport,
    actor: User | None,
    mapping: Mapping[str, str],
    lead_list: LeadList | None = None,
    new_list_name: str = "",
    skip_role_addresses: bool = False,
) -> LeadImport:
    """Confirm the column mapping and the target list (an existing one, or a new one by name)
    and queue the import."""
    if lead_import.state != ImportState.UPLOADED:
        raise ApplicationError(
            "This import has already started.", code="import_started", status=409
        )
    columns = {str(k): str(v) for k, v in mapping.items()}
    problems = mapping_problems(columns, len(lead_import.headers))
    if problems:
        first = next(iter(problems.values()))[0]
        raise ApplicationError(
            f"The import did not start: {first}",
            code="invalid_mapping",
            fields={f"column_{k}" if k else "mapping": v for k, v in problems.items()},
        )
    if lead_list is not None and lead_list.workspace_id != lead_import.workspace_id:
        raise ApplicationError("No such list.", code="not_found", status=404)
    if lead_list is None and new_list_name.strip():
        lead_list = lead_list_create(
            workspace=lead_import.workspace, actor=actor, name=new_list_name
        )
    claimed = LeadImport.objects.filter(pk=lead_import.pk, state=ImportState.UPLOADED).update(
        state=ImportState.QUEUED,
        lead_list=lead_list,
        mapping={"columns": columns, "skip_role_addresses": skip_role_addresses},
    )
    if claimed != 1:
        raise ApplicationError(
            "This import has already started.", code="import_started", status=409
        )
    lead_import.refresh_from_db()
    audit_log_record(
        action="lead_import.start",
        actor=actor,
        obj=lead_import,
        workspace=lead_import.workspace,
        after={"file": lead_import.file_name, "list": lead_list.name if lead_list else ""},
    )
    pk = lead_import.pk
    transaction.on_commit(lambda: task_enqueue("campaigns.tasks.lead_import", pk))
    return lead_import


# --- The run -----------------------------------------------------------------------------------


def summary_name(lead_import: LeadImport) -> str:
    return f"imports/summaries/{lead_import.public_id}.csv"


def _safe_cell(value: str) -> str:
    """A cell a spreadsheet will not run as a formula."""
    return f"'{value}" if value[:1] in ("=", "+", "-", "@", "\t", "\r") else value


class _Progress:
    """Counts, the first problems and the summary file of one run."""

    def __init__(self, summary: IO[str]) -> None:
        self.counts = {key: 0 for key in COUNT_KEYS}
        self.problems: list[dict[str, Any]] = []
        self.summary = csv.writer(summary)
        self.summary.writerow(SUMMARY_HEADER)

    def record(self, outcomes: list[RowOutcome]) -> None:
        for o in outcomes:
            self.counts["rows"] += 1
            key = "role" if o.outcome == Outcome.ROLE_SKIPPED else o.outcome
            self.counts[key] += 1
            if o.role and o.outcome in (Outcome.ADDED, Outcome.MERGED):
                self.counts["role"] += 1
            reason = o.reason
            if o.role and o.outcome in (Outcome.ADDED, Outcome.MERGED):
                reason = " ".join(filter(None, ["A role address: imported and flagged.", reason]))
            self.summary.writerow([o.ref, _safe_cell(o.email), o.outcome, reason])
            problem = o.outcome in (Outcome.INVALID, Outcome.FAILED) or (
                o.outcome == Outcome.ADDED and bool(o.reason)
            )
            if problem and len(self.problems) < PROBLEMS_KEPT:
                self.problems.append({"line": o.ref, "message": o.reason or o.outcome})


def _fail(lead_import: LeadImport, message: str) -> None:
    LeadImport.objects.filter(pk=lead_import.pk).update(
        state=ImportState.FAILED, error=message, finished_at=timezone.now()
    )


def lead_import_run(*, import_id: int) -> None:
    """Import one uploaded CSV of leads, streamed from its stored file (claimed first: a second
    run of the same import does nothing)."""
    started = timezone.now()
    claimed = LeadImport.objects.filter(
        pk=import_id, kind=ImportKind.LEADS, state=ImportState.QUEUED
    ).update(state=ImportState.RUNNING, started_at=started, bytes_done=0)
    if claimed != 1:
        return
    lead_import = LeadImport.objects.select_related("workspace", "lead_list").get(pk=import_id)
    try:
        _run(lead_import, started)
    except Exception:
        logger.exception("lead import %s stopped", lead_import.public_id)
        _fail(
            lead_import,
            "The import stopped because of an error on our side; the rows before it were "
            "imported. Upload the file again to import the rest (duplicates are merged).",
        )


def _run(lead_import: LeadImport, started: datetime) -> None:
    columns: dict[str, str] = lead_import.mapping.get("columns", {})
    skip_roles = bool(lead_import.mapping.get("skip_role_addresses"))
    with (
        lead_import.file.open("rb") as handle,
        tempfile.TemporaryFile("w+", encoding="utf-8", newline="") as summary,
    ):
        try:
            reader = CsvReader(handle)
        except CsvFormatError as error:
            _fail(lead_import, f"{error} Save it from your spreadsheet as CSV and upload it again.")
            return
        if reader.header_problem:
            _fail(lead_import, f"The header row cannot be read: {reader.header_problem}")
            return
        progress = _Progress(summary)
        rows: list[LeadRow] = []
        failed: list[RowOutcome] = []
        for row in reader.rows():
            if row.problem is None:
                rows.append(_lead_row(row, columns))
            else:
                email = _email_of(row, columns)
                failed.append(RowOutcome(row.line, email, Outcome.FAILED, row.problem))
            if len(rows) + len(failed) >= IMPORT_BATCH:
                _flush(lead_import, rows, failed, skip_roles, started, progress)
                rows, failed = [], []
                _save_progress(lead_import, progress, reader.bytes_read)
        _flush(lead_import, rows, failed, skip_roles, started, progress)
        summary.seek(0)
        name = summary_name(lead_import)
        if default_storage.exists(name):
            default_storage.delete(name)
        default_storage.save(name, File(summary))
    LeadImport.objects.filter(pk=lead_import.pk).update(
        state=ImportState.DONE,
        bytes_done=lead_import.file_size,
        counts=progress.counts,
        problems=progress.problems,
        finished_at=timezone.now(),
    )


def _email_of(row: Row, columns: Mapping[str, str]) -> str:
    for index, target in columns.items():
        if target == "email" and int(index) < len(row.values):
            return row.values[int(index)].strip()
    return ""


def _lead_row(row: Row, columns: Mapping[str, str]) -> LeadRow:
    lead = LeadRow(ref=row.line, email="")
    for index, target in columns.items():
        if not target:
            continue
        value = row.values[int(index)]
        if target == "email":
            lead.email = value
        elif target.startswith(CUSTOM_PREFIX):
            lead.custom_fields[target.removeprefix(CUSTOM_PREFIX)] = value
        else:
            lead.fields[target] = value
    return lead


def _flush(
    lead_import: LeadImport,
    rows: list[LeadRow],
    failed: list[RowOutcome],
    skip_roles: bool,
    started: datetime,
    progress: _Progress,
) -> None:
    outcomes = list(failed)
    if rows:
        result = leads_upsert(
            workspace=lead_import.workspace,
            rows=rows,
            lead_list=lead_import.lead_list,
            skip_role_addresses=skip_roles,
            since=started,
        )
        outcomes.extend(result.outcomes)
    progress.record(sorted(outcomes, key=lambda o: o.ref))


def _save_progress(lead_import: LeadImport, progress: _Progress, bytes_done: int) -> None:
    LeadImport.objects.filter(pk=lead_import.pk).update(
        bytes_done=min(bytes_done, lead_import.file_size),
        counts=progress.counts,
        problems=progress.problems,
    )


# --- The summary -------------------------------------------------------------------------------


def lead_import_summary(*, lead_import: LeadImport) -> Iterator[bytes]:
    """The summary CSV (line, email, outcome, reason), in chunks; before the run wrote one
    (a failed import), the problems kept on the import."""
    name = summary_name(lead_import)
    if default_storage.exists(name):
        with default_storage.open(name, "rb") as handle:
            while chunk := handle.read(64 * 1024):
                yield chunk
        return
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(SUMMARY_HEADER)
    if lead_import.error:
        writer.writerow(["", "", "failed", lead_import.error])
    for problem in lead_import.problems:
        writer.writerow([problem.get("line", ""), "", "failed", problem.get("message", "")])
    yield out.getvalue().encode()


IMPORT_STALE = timedelta(hours=1)  # a 100,000-row file takes well under a minute
IMPORT_LOST = timedelta(minutes=10)
IMPORT_TASKS = {
    ImportKind.LEADS: "campaigns.tasks.lead_import",
    ImportKind.SUPPRESSIONS: "campaigns.tasks.suppression_import",
}


def imports_tidy(*, now: datetime | None = None) -> dict[str, int]:
    """Imports a worker left behind: one queued long ago (its task was lost, say in a broker
    outage) is queued again, which is safe because a run claims its import first; one running
    for over an hour (its worker died) is failed with what the customer can do."""
    now = now or timezone.now()
    stale = LeadImport.objects.filter(state=ImportState.RUNNING, started_at__lt=now - IMPORT_STALE)
    failed = stale.update(
        state=ImportState.FAILED,
        finished_at=now,
        error=(
            "The import stopped before it finished (the server running it went away). The rows "
            "before that point were imported; upload the file again to import the rest "
            "(duplicates are merged, not added twice)."
        ),
    )
    lost = list(
        LeadImport.objects.filter(
            state=ImportState.QUEUED, created_at__lt=now - IMPORT_LOST
        ).values_list("pk", "kind")
    )
    for pk, kind in lost:
        transaction.on_commit(partial(task_enqueue, IMPORT_TASKS[ImportKind(kind)], pk))
    return {"failed": failed, "queued_again": len(lost)}
