"""The suppression lists: addresses and whole domains never mailed, by one workspace or (staff
only) by the whole platform; CSV import and the stop of waiting campaign leads they match.

Addresses are kept in the form the outbound gate compares (`campaigns.lead_rules.
address_normalize`: lower case, an international domain in punycode) and domains as lower-case
ASCII names, so what is listed here is exactly what `sending.services.outbound` refuses.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import IO, Any
from urllib.parse import urlsplit

from django.core.files.uploadedfile import UploadedFile
from django.db import transaction
from django.db.models import F, QuerySet, Value
from django.db.models.functions import StrIndex, Substr
from django.utils import timezone

from accounts.models import Membership, Role, User, Workspace
from accounts.services import audit_log_record
from campaigns.csv_reader import CsvFormatError, CsvReader, Row
from campaigns.lead_rules import address_normalize
from campaigns.models import (
    CampaignLead,
    CampaignLeadState,
    ImportKind,
    ImportState,
    LeadImport,
)
from config.celery import task_enqueue
from config.errors import ApplicationError, PermissionDenied
from sending.domain_names import LABEL, DomainNameError, domain_name_normalise, free_mail_provider
from sending.models import DomainStatus, SendingDomain, SuppressedDomain, Suppression

logger = logging.getLogger(__name__)

IMPORT_TASK = "campaigns.tasks.suppression_import"
IMPORT_MAX_BYTES = 50 * 1024 * 1024
IMPORT_BATCH = 1000
PROBLEMS_KEPT = 100
SOURCE_MAX = 120
DOMAIN_REASON_MAX = 200

# Removing these lets mail reach someone who said no: a person must confirm they agreed again.
CONSENT_REASONS = frozenset({Suppression.Reason.UNSUBSCRIBE, Suppression.Reason.COMPLAINT})

# What an import's reason column may say, read loosely ("Hard bounce", "spam", "opt-out").
_REASON_WORDS = {
    "hardbounce": Suppression.Reason.HARD_BOUNCE,
    "bounce": Suppression.Reason.HARD_BOUNCE,
    "bounced": Suppression.Reason.HARD_BOUNCE,
    "complaint": Suppression.Reason.COMPLAINT,
    "spamcomplaint": Suppression.Reason.COMPLAINT,
    "spam": Suppression.Reason.COMPLAINT,
    "complained": Suppression.Reason.COMPLAINT,
    "unsubscribe": Suppression.Reason.UNSUBSCRIBE,
    "unsubscribed": Suppression.Reason.UNSUBSCRIBE,
    "optout": Suppression.Reason.UNSUBSCRIBE,
    "optedout": Suppression.Reason.UNSUBSCRIBE,
    "manual": Suppression.Reason.MANUAL,
    "addedbyhand": Suppression.Reason.MANUAL,
}
_ADDRESS_HEADERS = frozenset({"email", "emails", "emailaddress", "address", "mail", "recipient"})
_DOMAIN_HEADERS = frozenset({"domain", "domains", "domainname", "blockeddomain", "website"})
_REASON_HEADERS = frozenset({"reason", "note", "notes", "comment", "why", "type"})
# A spreadsheet formula guard written by the export ('=...); the import takes it off again.
_FORMULA_START = ("=", "+", "-", "@")


def _words(text: str) -> str:
    return re.sub(r"[^a-z0-9]", "", text.lower())


# --- Normal forms ------------------------------------------------------------------------------


def suppression_address_clean(raw: str) -> str:
    """The address as the lists store it, or ApplicationError (on the `address` field)."""
    try:
        return address_normalize(raw or "")
    except ValueError as error:
        raise ApplicationError(
            f"“{(raw or '').strip()[:80]}” is not an email address: {error}",
            code="invalid_address",
            fields={"address": [f"Not an email address: {error}"]},
        ) from None


def _domain_refusal(message: str) -> ApplicationError:
    return ApplicationError(message, code="invalid_domain", fields={"domain": [message]})


def suppressed_domain_clean(raw: str) -> str:
    """The domain a customer means by "competitor.com", "@competitor.com", "www.competitor.com"
    or "https://competitor.com/about", as lower-case ASCII; garbage is refused in words."""
    text = (raw or "").strip().lower()
    if "://" in text:
        text = urlsplit(text).hostname or ""
    else:
        text = text.lstrip("@").split("/", 1)[0]
        if ":" in text and text.count(":") == 1:  # host:port
            text = text.split(":", 1)[0]
    text = text.strip().rstrip(".")
    if "@" in text:
        raise _domain_refusal(
            "That is an email address: enter only the domain after the @ (competitor.com), or "
            "add the address itself to the suppression list."
        )
    if text.startswith("www.") and text.count(".") >= 2:
        text = text[4:]  # nobody receives mail at www.
    if not text:
        raise _domain_refusal("Enter a domain name, such as competitor.com.")
    # Free-mail domains cannot be sending domains, but blocking them is the customer's choice.
    if free_mail_provider(text) is not None and all(LABEL.match(p) for p in text.split(".")):
        return text
    try:
        return domain_name_normalise(text)
    except DomainNameError as error:
        raise _domain_refusal(str(error)) from None


# --- Who may do what ---------------------------------------------------------------------------


def _require_member(*, workspace: Workspace | None, actor: User | None, role: str) -> None:
    """Platform entries are staff business; a workspace's need a membership with `role`."""
    if actor is None:
        return  # the platform itself (imports run as their uploader, checked at upload)
    if workspace is None:
        if not actor.is_staff:
            raise PermissionDenied("Only the platform's staff can change the platform's list.")
        return
    membership = Membership.objects.filter(workspace=workspace, user=actor).first()
    if membership is None or not membership.has_role(role):
        raise PermissionDenied(
            "Only owners and admins can take entries off the suppression list."
            if role != Role.MEMBER
            else "Only members of this workspace can change its suppression list."
        )


# --- Stopping waiting campaign leads -----------------------------------------------------------


def _waiting(workspace: Workspace | None) -> QuerySet[CampaignLead]:
    rows = CampaignLead.objects.filter(state=CampaignLeadState.WAITING)
    if workspace is not None:
        rows = rows.filter(campaign__workspace=workspace)
    return rows


def _stop(rows: QuerySet[CampaignLead], reason: str) -> int:
    return rows.update(
        state=CampaignLeadState.STOPPED, state_reason=reason[:300], next_at=None, waiting_for=""
    )


def campaign_leads_stop_for_addresses(
    *, workspace: Workspace | None, addresses: Iterable[str], reason_label: str
) -> int:
    """Stop at once the waiting campaign leads of these addresses (one UPDATE); how many."""
    wanted = list(set(addresses))
    if not wanted:
        return 0
    rows = _waiting(workspace).filter(lead__email__in=wanted)
    return _stop(rows, f"On the suppression list ({reason_label}).")


def campaign_leads_stop_for_domains(*, workspace: Workspace | None, domains: Iterable[str]) -> int:
    """Stop at once the waiting campaign leads whose address is at one of these domains."""
    wanted = sorted(set(domains))
    if not wanted:
        return 0
    at = StrIndex(F("lead__email"), Value("@"))
    rows = (
        _waiting(workspace)
        .annotate(lead_domain=Substr(F("lead__email"), at + 1))
        .filter(lead_domain__in=wanted)
    )
    shown = wanted[0] if len(wanted) == 1 else "blocked"
    return _stop(rows, f"On the suppression list (the domain {shown} is blocked).")


# --- Addresses ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Added:
    """An entry and whether this call added it (False: it was already there)."""

    row: Any
    created: bool
    stopped: int = 0


def _reason_label(reason: str) -> str:
    return str(Suppression.Reason(reason).label).lower()


@transaction.atomic
def suppression_add(
    *,
    workspace: Workspace | None,
    actor: User | None,
    address: str,
    reason: str = Suppression.Reason.MANUAL,
    source: str = "",
) -> Added:
    """Put an address on the workspace's list (or the platform's: workspace None) and stop its
    waiting campaign leads; an address already there is left as it is."""
    _require_member(workspace=workspace, actor=actor, role=Role.MEMBER)
    normal = suppression_address_clean(address)
    if reason not in Suppression.Reason.values:
        raise ApplicationError(
            f"Unknown reason “{reason}”: use one of {', '.join(Suppression.Reason.values)}.",
            fields={"reason": ["Unknown reason."]},
        )
    row, created = Suppression.objects.get_or_create(
        workspace=workspace,
        address=normal,
        defaults={"reason": reason, "source": source.strip()[:SOURCE_MAX]},
    )
    if not created:
        return Added(row, False)
    stopped = campaign_leads_stop_for_addresses(
        workspace=workspace, addresses=[normal], reason_label=_reason_label(reason)
    )
    audit_log_record(
        action="suppression.add",
        actor=actor,
        obj=row,
        workspace=workspace,
        after={"email": normal, "reason": reason, "source": row.source, "stopped": stopped},
    )
    return Added(row, True, stopped)


@transaction.atomic
def suppression_remove(
    *, suppression: Suppression, actor: User | None, confirmed: bool = False, why: str = ""
) -> None:
    """Take an address off its list (owners and admins; staff for the platform's). An
    unsubscribe or complaint needs `confirmed`: mailing that person again risks complaints."""
    _require_member(workspace=suppression.workspace, actor=actor, role=Role.ADMIN)
    if suppression.reason in CONSENT_REASONS and not confirmed:
        what = (
            "unsubscribed"
            if suppression.reason == Suppression.Reason.UNSUBSCRIBE
            else ("reported your mail as spam")
        )
        raise ApplicationError(
            f"{suppression.address} {what}. Mailing them again risks spam complaints; confirm "
            "that they agreed to hear from you again before you remove them.",
            code="confirmation_required",
            fields={"confirm": ["Confirm that they agreed to hear from you again."]},
        )
    before = {
        "email": suppression.address,
        "reason": suppression.reason,
        "source": suppression.source,
    }
    audit_log_record(
        action="suppression.remove",
        actor=actor,
        obj=suppression,
        workspace=suppression.workspace,
        reason=why,
        before=before,
        after={"email": suppression.address},
    )
    suppression.delete()


# --- Domains -----------------------------------------------------------------------------------


@transaction.atomic
def suppressed_domain_block(
    *, workspace: Workspace | None, actor: User | None, domain: str, reason: str = ""
) -> Added:
    """Block a whole domain for the workspace (or the platform: workspace None) and stop the
    waiting campaign leads at it; a domain already blocked is left as it is."""
    _require_member(workspace=workspace, actor=actor, role=Role.MEMBER)
    name = suppressed_domain_clean(domain)
    if workspace is not None:
        own = (
            SendingDomain.objects.filter(workspace=workspace, name=name)
            .exclude(status=DomainStatus.RETIRED)
            .exists()
        )
        if own:
            raise _domain_refusal(
                f"{name} is one of your own sending domains: blocking it would stop your own "
                "mail. Remove the domain on the Domains page if you no longer send from it."
            )
    row, created = SuppressedDomain.objects.get_or_create(
        workspace=workspace,
        domain=name,
        defaults={"reason": reason.strip()[:DOMAIN_REASON_MAX], "created_by": actor},
    )
    if not created:
        return Added(row, False)
    stopped = campaign_leads_stop_for_domains(workspace=workspace, domains=[name])
    audit_log_record(
        action="suppressed_domain.block",
        actor=actor,
        obj=row,
        workspace=workspace,
        after={"name": name, "reason": row.reason, "stopped": stopped},
    )
    return Added(row, True, stopped)


@transaction.atomic
def suppressed_domain_unblock(
    *, suppressed_domain: SuppressedDomain, actor: User | None, why: str = ""
) -> None:
    """Mail may go to the domain again (owners and admins; staff for the platform's)."""
    _require_member(workspace=suppressed_domain.workspace, actor=actor, role=Role.ADMIN)
    audit_log_record(
        action="suppressed_domain.unblock",
        actor=actor,
        obj=suppressed_domain,
        workspace=suppressed_domain.workspace,
        reason=why,
        before={"name": suppressed_domain.domain, "reason": suppressed_domain.reason},
        after={"name": suppressed_domain.domain},
    )
    suppressed_domain.delete()


# --- CSV import --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Columns:
    """Which column holds what: an address, a domain, either (one column), a reason."""

    address: int | None = None
    domain: int | None = None
    either: int | None = None
    reason: int | None = None
    header_is_data: bool = False

    def as_mapping(self, headers: tuple[str, ...] | list[str]) -> dict[str, str]:
        named = {"address": self.address, "domain": self.domain, "either": self.either}
        named["reason"] = self.reason
        mapping = {key: headers[i] for key, i in named.items() if i is not None}
        if self.header_is_data:
            mapping["header_is_data"] = "yes"
        return mapping


def _looks_like_value(text: str) -> bool:
    text = text.strip()
    return bool(text) and " " not in text and "." in text


def columns_detect(headers: tuple[str, ...]) -> Columns:
    """Find the address, domain and reason columns by their names; a file of one column (or
    whose first row is already an address) needs no header at all."""
    names = [_words(h) for h in headers]
    address = next((i for i, n in enumerate(names) if n in _ADDRESS_HEADERS), None)
    domain = next((i for i, n in enumerate(names) if n in _DOMAIN_HEADERS), None)
    reason = next((i for i, n in enumerate(names) if n in _REASON_HEADERS), None)
    if address is not None or domain is not None:
        return Columns(address=address, domain=domain, reason=reason)
    if len(headers) == 1:
        return Columns(either=0, header_is_data=_looks_like_value(headers[0]))
    # No header: the first row is already data, and its first address marks the value column.
    for i, cell in enumerate(headers):
        if "@" in cell and _looks_like_value(cell):
            return Columns(either=i, header_is_data=True)
    shown = ", ".join(f"“{h}”" for h in headers[:8]) or "none"
    raise ApplicationError(
        "No column of addresses or domains was found. Name one column “email” (addresses) or "
        f"“domain” (whole domains), or upload a file with a single column. Columns: {shown}.",
        code="no_column",
        fields={"file": ["No “email” or “domain” column in this file."]},
    )


def suppression_import_create(
    *, workspace: Workspace, actor: User, upload: UploadedFile
) -> LeadImport:
    """Store an uploaded CSV of suppressions and queue its import (checked for a usable column
    first, so a wrong file is refused at once, beside the upload field)."""
    _require_member(workspace=workspace, actor=actor, role=Role.MEMBER)
    size = upload.size or 0
    if size == 0:
        raise ApplicationError(
            "The file is empty.", code="empty_file", fields={"file": ["The file is empty."]}
        )
    if size > IMPORT_MAX_BYTES:
        message = f"The file is larger than {IMPORT_MAX_BYTES // (1024 * 1024)} MB: split it."
        raise ApplicationError(message, code="file_too_large", fields={"file": [message]})
    upload.seek(0)
    try:
        reader = CsvReader(upload)
    except CsvFormatError as error:
        raise ApplicationError(str(error), code="not_csv", fields={"file": [str(error)]}) from None
    if not reader.headers:
        message = "The file has no rows."
        raise ApplicationError(message, code="empty_file", fields={"file": [message]})
    columns = columns_detect(reader.headers)
    upload.seek(0)
    with transaction.atomic():
        job = LeadImport(
            workspace=workspace,
            kind=ImportKind.SUPPRESSIONS,
            file_name=(upload.name or "suppressions.csv")[:255],
            file_size=size,
            encoding=reader.encoding,
            delimiter=reader.delimiter,
            headers=list(reader.headers),
            mapping=columns.as_mapping(reader.headers),
            state=ImportState.QUEUED,
            created_by=actor,
        )
        job.file.save(f"suppressions-{job.public_id}.csv", upload, save=False)
        job.save()
        transaction.on_commit(lambda: task_enqueue(IMPORT_TASK, job.pk))
    return job


def _columns_of(job: LeadImport) -> Columns:
    headers = list(job.headers)
    mapping = job.mapping or {}

    def index(key: str) -> int | None:
        name = mapping.get(key)
        return headers.index(name) if name in headers else None

    return Columns(
        address=index("address"),
        domain=index("domain"),
        either=index("either"),
        reason=index("reason"),
        header_is_data=mapping.get("header_is_data") == "yes",
    )


def _cell(values: tuple[str, ...], index: int | None) -> str:
    if index is None or index >= len(values):
        return ""
    text = values[index].strip()
    if text[:1] == "'" and text[1:2] in _FORMULA_START:
        text = text[1:]
    return text


@dataclass
class _Batch:
    """Rows read but not yet written: value -> (line, reason text)."""

    addresses: dict[str, tuple[int, str]] = field(default_factory=dict)
    domains: dict[str, tuple[int, str]] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.addresses) + len(self.domains)


@dataclass
class _Tally:
    rows: int = 0
    added_addresses: int = 0
    added_domains: int = 0
    already: int = 0
    invalid: int = 0
    stopped: int = 0
    problems: list[dict[str, Any]] = field(default_factory=list)

    def problem(self, line: int, message: str) -> None:
        self.invalid += 1
        if len(self.problems) < PROBLEMS_KEPT:
            self.problems.append({"line": line, "message": message})

    def counts(self) -> dict[str, int]:
        return {
            "rows": self.rows,
            "added": self.added_addresses + self.added_domains,
            "added_addresses": self.added_addresses,
            "added_domains": self.added_domains,
            "already": self.already,
            "invalid": self.invalid,
            "stopped": self.stopped,
        }


class _Importer:
    def __init__(self, job: LeadImport) -> None:
        self.job = job
        self.workspace = job.workspace
        self.columns = _columns_of(job)
        self.tally = _Tally()
        self.batch = _Batch()
        self.source = f"Import: {job.file_name}"[:SOURCE_MAX]
        self.own_domains = set(
            SendingDomain.objects.filter(workspace=self.workspace)
            .exclude(status=DomainStatus.RETIRED)
            .values_list("name", flat=True)
        )

    def read(self, row: Row) -> None:
        if row.problem is not None and not row.values:
            self.tally.rows += 1
            self.tally.problem(row.line, row.problem)
            return
        cols = self.columns
        values = row.values
        address_text = _cell(values, cols.address)
        domain_text = _cell(values, cols.domain)
        either = _cell(values, cols.either)
        if either:
            # One column of both: an @ with something before it is an address.
            if "@" in either.lstrip("@"):
                address_text = either
            else:
                domain_text = either
        if not address_text and not domain_text:
            return  # a blank row
        self.tally.rows += 1
        if row.problem is not None:
            self.tally.problem(row.line, row.problem)
            return
        reason = _cell(values, cols.reason)
        if address_text:
            self._address(row.line, address_text, reason)
        if domain_text:
            self._domain(row.line, domain_text, reason)

    def _address(self, line: int, text: str, reason: str) -> None:
        try:
            normal = suppression_address_clean(text)
        except ApplicationError as error:
            self.tally.problem(line, error.message)
            return
        if normal in self.batch.addresses:
            self.tally.already += 1
            return
        self.batch.addresses[normal] = (line, reason)

    def _domain(self, line: int, text: str, reason: str) -> None:
        try:
            name = suppressed_domain_clean(text)
        except ApplicationError as error:
            self.tally.problem(line, f"“{text[:80]}”: {error.message}")
            return
        if name in self.own_domains:
            self.tally.problem(line, f"{name} is one of your own sending domains: not blocked.")
            return
        if name in self.batch.domains:
            self.tally.already += 1
            return
        self.batch.domains[name] = (line, reason)

    def _reason_of(self, text: str) -> tuple[str, str]:
        """(reason code, source) for an address row's reason cell."""
        code = _REASON_WORDS.get(_words(text))
        if code is not None or not text:
            return code or Suppression.Reason.MANUAL, self.source
        return Suppression.Reason.MANUAL, f"{self.source}: {text}"[:SOURCE_MAX]

    @transaction.atomic
    def flush(self, bytes_done: int) -> None:
        batch, self.batch = self.batch, _Batch()
        if batch.addresses:
            existing = set(
                Suppression.objects.filter(
                    workspace=self.workspace, address__in=list(batch.addresses)
                ).values_list("address", flat=True)
            )
            new = [a for a in batch.addresses if a not in existing]
            rows = []
            for address in new:
                code, source = self._reason_of(batch.addresses[address][1])
                rows.append(
                    Suppression(
                        workspace=self.workspace, address=address, reason=code, source=source
                    )
                )
            made = Suppression.objects.bulk_create(rows, ignore_conflicts=True)
            self.tally.added_addresses += len(made)
            self.tally.already += len(existing)
            self.tally.stopped += campaign_leads_stop_for_addresses(
                workspace=self.workspace, addresses=new, reason_label="imported"
            )
        if batch.domains:
            existing = set(
                SuppressedDomain.objects.filter(
                    workspace=self.workspace, domain__in=list(batch.domains)
                ).values_list("domain", flat=True)
            )
            new = [d for d in batch.domains if d not in existing]
            domain_rows = [
                SuppressedDomain(
                    workspace=self.workspace,
                    domain=name,
                    reason=(batch.domains[name][1] or self.source)[:DOMAIN_REASON_MAX],
                    created_by=self.job.created_by,
                )
                for name in new
            ]
            made_domains = SuppressedDomain.objects.bulk_create(domain_rows, ignore_conflicts=True)
            self.tally.added_domains += len(made_domains)
            self.tally.already += len(existing)
            self.tally.stopped += campaign_leads_stop_for_domains(
                workspace=self.workspace, domains=new
            )
        LeadImport.objects.filter(pk=self.job.pk).update(
            bytes_done=bytes_done, counts=self.tally.counts(), problems=self.tally.problems
        )


def _claim(import_id: int) -> LeadImport | None:
    claimed = LeadImport.objects.filter(
        pk=import_id, kind=ImportKind.SUPPRESSIONS, state=ImportState.QUEUED
    ).update(state=ImportState.RUNNING, started_at=timezone.now())
    if claimed != 1:
        return None
    return LeadImport.objects.select_related("workspace", "created_by").get(pk=import_id)


def _read_all(importer: _Importer, fileobj: IO[bytes]) -> None:
    reader = CsvReader(fileobj)
    LeadImport.objects.filter(pk=importer.job.pk).update(
        encoding=reader.encoding, delimiter=reader.delimiter
    )
    if importer.columns.header_is_data:
        importer.read(Row(1, reader.headers, reader.header_problem))
    for row in reader.rows():
        importer.read(row)
        if len(importer.batch) >= IMPORT_BATCH:
            importer.flush(reader.bytes_read)
    importer.flush(reader.bytes_read)


def suppression_import_run(*, import_id: int) -> None:
    """Import one uploaded CSV of suppressions, streamed from its stored file (claimed first:
    a second run of the same import does nothing)."""
    job = _claim(import_id)
    if job is None:
        return
    importer = _Importer(job)
    try:
        with job.file.open("rb") as fileobj:
            _read_all(importer, fileobj)
    except CsvFormatError as error:
        _finish(job, importer, ImportState.FAILED, str(error))
        return
    except Exception:
        logger.exception("suppression import %s failed", job.public_id)
        _finish(job, importer, ImportState.FAILED, "The import stopped on an unexpected error.")
        raise
    _finish(job, importer, ImportState.DONE, "")


@transaction.atomic
def _finish(job: LeadImport, importer: _Importer, state: str, error: str) -> None:
    counts = importer.tally.counts()
    LeadImport.objects.filter(pk=job.pk).update(
        state=state,
        error=error,
        counts=counts,
        problems=importer.tally.problems,
        finished_at=timezone.now(),
        bytes_done=job.file_size if state == ImportState.DONE else F("bytes_done"),
    )
    job.refresh_from_db()
    audit_log_record(
        action="suppression.import",
        actor=job.created_by,
        obj=job,
        workspace=job.workspace,
        reason=error,
        after={"name": job.file_name, "state": state, **counts},
    )
