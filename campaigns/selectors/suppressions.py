"""Reads of the suppression lists: a workspace's entries, the platform's (without revealing who
caused them), whether an address may be mailed, imports and the export's rows."""

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime

from django.db.models import CharField, Count, F, Q, QuerySet, Value

from accounts.models import Workspace
from campaigns.lead_rules import address_normalize
from campaigns.models import ImportKind, LeadImport
from sending.models import SuppressedDomain, Suppression

EXPORT_CHUNK = 2000
_FORMULA_START = ("=", "+", "-", "@")


def suppression_list(*, workspace: Workspace, search: str = "") -> QuerySet[Suppression]:
    """The workspace's own addresses, newest first; `search` matches part of the address."""
    rows = Suppression.objects.filter(workspace=workspace)
    if search.strip():
        rows = rows.filter(address__icontains=search.strip().lower())
    return rows.order_by("-created_at", "-id")


def suppression_get(*, workspace: Workspace, pk: int) -> Suppression | None:
    return Suppression.objects.filter(workspace=workspace, pk=pk).first()


def suppressed_domain_list(
    *, workspace: Workspace | None, search: str = ""
) -> QuerySet[SuppressedDomain]:
    """Blocked domains of a workspace, or of the platform (workspace None), by name."""
    rows = (
        SuppressedDomain.objects.filter(workspace__isnull=True)
        if workspace is None
        else SuppressedDomain.objects.filter(workspace=workspace)
    )
    if search.strip():
        rows = rows.filter(domain__icontains=search.strip().lower())
    return rows.select_related("created_by").order_by("domain")


def suppressed_domain_get(*, workspace: Workspace, pk: int) -> SuppressedDomain | None:
    return SuppressedDomain.objects.filter(workspace=workspace, pk=pk).first()


def suppression_counts(*, workspace: Workspace) -> dict[str, int]:
    """How many addresses by reason, blocked domains, and platform-wide entries (four small
    aggregate queries over indexed columns)."""
    by_reason = dict(
        Suppression.objects.filter(workspace=workspace)
        .values_list("reason")
        .annotate(n=Count("id"))
        .values_list("reason", "n")
    )
    counts = {reason: by_reason.get(reason, 0) for reason in Suppression.Reason.values}
    counts["addresses"] = sum(by_reason.values())
    counts["domains"] = SuppressedDomain.objects.filter(workspace=workspace).count()
    counts["platform_addresses"] = Suppression.objects.filter(workspace__isnull=True).count()
    counts["platform_domains"] = SuppressedDomain.objects.filter(workspace__isnull=True).count()
    return counts


@dataclass(frozen=True)
class Verdict:
    """Why an address may not be mailed: by whom ("workspace" or "platform") and the reason
    in words. Never names another workspace."""

    by: str
    what: str
    since: datetime


@dataclass(frozen=True)
class Check:
    address: str
    verdicts: tuple[Verdict, ...]

    @property
    def suppressed(self) -> bool:
        return bool(self.verdicts)


def suppression_check(*, workspace: Workspace, address: str) -> Check:
    """Whether `address` may be mailed from the workspace, and every reason why not (its own
    list, the platform's list, a blocked domain of either). ValueError on a bad address."""
    normal = address_normalize(address)
    domain = normal.rpartition("@")[2]
    mine = Q(workspace=workspace)
    platform = Q(workspace__isnull=True)
    verdicts = []
    for row in Suppression.objects.filter(mine | platform, address=normal).order_by("id"):
        by = "platform" if row.workspace_id is None else "workspace"
        verdicts.append(Verdict(by, str(row.get_reason_display()), row.created_at))
    for blocked in SuppressedDomain.objects.filter(mine | platform, domain=domain).order_by("id"):
        by = "platform" if blocked.workspace_id is None else "workspace"
        verdicts.append(Verdict(by, f"the whole domain {domain} is blocked", blocked.created_at))
    return Check(normal, tuple(verdicts))


def suppression_import_list(*, workspace: Workspace, limit: int = 5) -> list[LeadImport]:
    """The workspace's latest suppression imports."""
    return list(
        LeadImport.objects.filter(workspace=workspace, kind=ImportKind.SUPPRESSIONS)
        .select_related("created_by")
        .order_by("-created_at", "-id")[:limit]
    )


def suppression_import_get(*, workspace: Workspace, public_id: str) -> LeadImport | None:
    return (
        LeadImport.objects.filter(
            workspace=workspace, kind=ImportKind.SUPPRESSIONS, public_id=public_id
        )
        .select_related("created_by")
        .first()
    )


def _safe(text: str) -> str:
    """A cell a spreadsheet will not run as a formula."""
    return f"'{text}" if text.startswith(_FORMULA_START) else text


EXPORT_HEADER = ("kind", "value", "reason", "note", "added_at")


def suppression_export_rows(*, workspace: Workspace) -> Iterator[tuple[str, str, str, str, str]]:
    """The workspace's addresses then its blocked domains, as export rows, read in chunks (a
    server-side cursor: the whole list is never in memory)."""
    labels = dict(Suppression.Reason.choices)
    addresses = (
        Suppression.objects.filter(workspace=workspace)
        .order_by("address")
        .values_list("address", "reason", "source", "created_at")
    )
    for address, reason, source, created_at in addresses.iterator(chunk_size=EXPORT_CHUNK):
        yield (
            "address",
            _safe(address),
            str(labels.get(reason, reason)),
            _safe(source),
            created_at.isoformat(timespec="seconds"),
        )
    domains = (
        SuppressedDomain.objects.filter(workspace=workspace)
        .order_by("domain")
        .values_list("domain", "reason", "created_at")
    )
    for domain, reason, created_at in domains.iterator(chunk_size=EXPORT_CHUNK):
        yield (
            "domain",
            _safe(domain),
            "Domain blocked",
            _safe(reason),
            created_at.isoformat(timespec="seconds"),
        )


ENTRY_FIELDS = ("kind", "ident", "ws", "value", "reason_code", "note", "added_at")


def suppression_entries(*, workspace_ids: QuerySet, kind: str = "", search: str = "") -> QuerySet:
    """Addresses and blocked domains of the given workspaces as one list of dicts (ENTRY_FIELDS),
    newest first: for the API. Every column is an annotation, in the same order on both sides of
    the union, so the columns line up."""
    term = search.strip().lower()
    addresses = Suppression.objects.filter(workspace_id__in=workspace_ids)
    domains = SuppressedDomain.objects.filter(workspace_id__in=workspace_ids)
    if term:
        addresses = addresses.filter(address__icontains=term)
        domains = domains.filter(domain__icontains=term)
    text = CharField()
    address_rows = addresses.annotate(
        kind=Value("address", output_field=text),
        ident=F("pk"),
        ws=F("workspace__public_id"),
        value=F("address"),
        reason_code=F("reason"),
        note=F("source"),
        added_at=F("created_at"),
    ).values(*ENTRY_FIELDS)
    domain_rows = domains.annotate(
        kind=Value("domain", output_field=text),
        ident=F("pk"),
        ws=F("workspace__public_id"),
        value=F("domain"),
        reason_code=Value(Suppression.Reason.MANUAL.value, output_field=text),
        note=F("reason"),
        added_at=F("created_at"),
    ).values(*ENTRY_FIELDS)
    if kind == "address":
        return address_rows.order_by("-added_at", "-ident")
    if kind == "domain":
        return domain_rows.order_by("-added_at", "-ident")
    return address_rows.union(domain_rows, all=True).order_by("-added_at", "-ident")
