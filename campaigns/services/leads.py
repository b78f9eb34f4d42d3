"""Leads and their lists: one upsert routine (CSV import and API bulk add), edits, deletion.

The upsert works a batch at a time with a fixed number of queries per batch (suppressions,
existing leads, insert, read back, update, list memberships), never one query per row. Rules:

- The address is normalised by `campaigns.lead_rules.address_normalize` (lower-case, punycode
  domain); one that is not a valid address is refused with the reason.
- Addresses suppressed for the workspace or the whole platform, or at a blocked domain, are
  skipped (the same matching as the outbound gate).
- Role addresses (info@, sales@ ...) are flagged, or skipped when the caller asks.
- A duplicate in the batch, or of an existing lead of the workspace, is merged into one lead:
  empty fields are filled, custom fields missing on the lead are added, nothing filled in is
  overwritten; the lead joins the list.
- A lead's time zone is the one given (checked against the zone database), else the one its
  country-code domain suggests (marked as guessed), else empty (the campaign's zone applies).
"""

import json
import re
import secrets
import zoneinfo
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from functools import cache, lru_cache
from typing import Any

from django.db import connection, transaction
from django.utils import timezone

from accounts.models import PUBLIC_ID_ALPHABET, User, Workspace
from accounts.services import audit_log_record
from campaigns.lead_rules import address_normalize, is_role_address, time_zone_guess
from campaigns.models import Campaign, Lead, LeadList, LeadListMembership, LeadStatus
from campaigns.services.enrolment import campaign_leads_enrol
from campaigns.services.suppressions import suppression_add
from config.errors import ApplicationError
from sending.models import Suppression
from sending.services.outbound import suppressions_find

UPSERT_BATCH = 2000
# The lead's own fields an import or the API may set (besides the address).
LEAD_FIELDS = ("first_name", "last_name", "company", "title", "phone", "website", "time_zone")
LEAD_FIELD_LABELS = {
    "email": "Email",
    "first_name": "First name",
    "last_name": "Last name",
    "company": "Company",
    "title": "Job title",
    "phone": "Phone",
    "website": "Website",
    "time_zone": "Time zone",
}
CUSTOM_FIELDS_MAX = 50
CUSTOM_VALUE_MAX = 1000
CUSTOM_NAME_MAX = 40
# Merge-field names a custom field may not take: they are the lead's own or the sender's.
RESERVED_FIELD_NAMES = frozenset(
    {
        "email",
        "full_name",
        "unsubscribe_url",
        "sender_email",
        "sender_name",
        "sender_first_name",
        *LEAD_FIELDS,
    }
)
LIST_NAME_MAX = 120
_CUSTOM_NAME = re.compile(r"^[a-z_][a-z0-9_]*$")


class Outcome:
    ADDED = "added"
    MERGED = "merged"
    INVALID = "invalid"
    ROLE_SKIPPED = "role_skipped"
    SUPPRESSED = "suppressed"
    FAILED = "failed"


@dataclass
class LeadRow:
    """One lead as given: `ref` is its line in a file or its index in an API payload."""

    ref: int
    email: str
    fields: dict[str, str] = field(default_factory=dict)
    custom_fields: dict[str, str] = field(default_factory=dict)


@dataclass
class RowOutcome:
    ref: int
    email: str
    outcome: str
    reason: str = ""
    role: bool = False
    lead_id: int | None = None


@dataclass
class UpsertResult:
    outcomes: list[RowOutcome]

    def lead_ids(self) -> list[int]:
        return list(dict.fromkeys(o.lead_id for o in self.outcomes if o.lead_id is not None).keys())

    def counts(self) -> dict[str, int]:
        counts = {
            "rows": len(self.outcomes),
            "added": 0,
            "merged": 0,
            "invalid": 0,
            "role": 0,
            "suppressed": 0,
            "failed": 0,
        }
        for outcome in self.outcomes:
            key = "role" if outcome.outcome == Outcome.ROLE_SKIPPED else outcome.outcome
            counts[key] += 1
            if outcome.role and outcome.outcome != Outcome.ROLE_SKIPPED:
                counts["role"] += 1
        return counts


# --- Field rules -------------------------------------------------------------------------------

# A plain local part (letters, digits, _ + - and single dots inside): for these the full check
# of `address_normalize` only adds the domain's, which is the costly part and is done once per
# domain. Anything else takes the full check.
_PLAIN_LOCAL = re.compile(r"[A-Za-z0-9_+-]+(?:\.[A-Za-z0-9_+-]+)*\Z")
ADDRESS_MAX = 254
LOCAL_MAX = 64


@lru_cache(maxsize=8192)
def _domain_normalize(domain: str) -> str:
    return address_normalize(f"a@{domain}").rpartition("@")[2]


def address_clean(text: str) -> str:
    """`lead_rules.address_normalize`, with the domain's check done once per domain (an import
    has many addresses at few domains). Raises ValueError with the reason."""
    candidate = text.strip()
    local, at, domain = candidate.rpartition("@")
    if at and len(local) <= LOCAL_MAX and _PLAIN_LOCAL.match(local):
        try:
            normal_domain = _domain_normalize(domain)
        except ValueError:
            pass  # the full check words the reason for the whole address
        else:
            if len(local) + 1 + len(normal_domain) <= ADDRESS_MAX:
                return f"{local.lower()}@{normal_domain}"
    return address_normalize(candidate)


@cache
def _zones() -> frozenset[str]:
    return frozenset(zoneinfo.available_timezones())


def time_zone_valid(name: str) -> bool:
    """Whether `name` is a zone of the IANA database ("Europe/Berlin")."""
    return name in _zones()


def custom_field_name(text: str) -> str:
    """A column header as a merge-field name: "Pain point" -> "pain_point"."""
    name = re.sub(r"[^a-z0-9]+", "_", text.strip().lower()).strip("_")
    if name and name[0].isdigit():
        name = f"f_{name}"
    return name[:CUSTOM_NAME_MAX]


def custom_field_problem(name: str) -> str | None:
    """Why `name` cannot be a custom field's name, or None."""
    if not name:
        return "Give the custom field a name (letters, digits and underscores)."
    if not _CUSTOM_NAME.match(name) or len(name) > CUSTOM_NAME_MAX:
        return (
            f"“{name}” cannot be a merge field: use lower-case letters, digits and underscores "
            f"(at most {CUSTOM_NAME_MAX}), starting with a letter."
        )
    if name in RESERVED_FIELD_NAMES:
        return f"“{name}” is already one of the lead's own fields: map the column to it instead."
    return None


@cache
def _field_limit(name: str) -> int:
    model_field = Lead._meta.get_field(name)
    return int(getattr(model_field, "max_length", 0) or 0)


def _row_problem(row: LeadRow) -> str | None:
    for name, value in row.fields.items():
        if name == "time_zone":
            continue
        limit = _field_limit(name)
        if len(value) > limit:
            return f"{LEAD_FIELD_LABELS[name]} is longer than {limit} characters."
    if len(row.custom_fields) > CUSTOM_FIELDS_MAX:
        return f"More than {CUSTOM_FIELDS_MAX} custom fields."
    for name, value in row.custom_fields.items():
        if problem := custom_field_problem(name):
            return problem
        if len(value) > CUSTOM_VALUE_MAX:
            return f"The custom field {name} is longer than {CUSTOM_VALUE_MAX} characters."
    return None


def _clean(row: LeadRow) -> tuple[dict[str, str], dict[str, str], str]:
    """The row's non-empty fields, custom fields and a note about a time zone left out."""
    fields = {k: v.strip() for k, v in row.fields.items() if k in LEAD_FIELDS and v.strip()}
    custom = {k: v.strip() for k, v in row.custom_fields.items() if v.strip()}
    note = ""
    zone = fields.pop("time_zone", "")
    if zone:
        if time_zone_valid(zone):
            fields["time_zone"] = zone
        else:
            note = f"The time zone “{zone[:64]}” is not a known zone: it was left out."
    return fields, custom, note


# --- Upsert ------------------------------------------------------------------------------------


@dataclass
class _Pending:
    row: LeadRow
    email: str
    fields: dict[str, str]
    custom: dict[str, str]
    role: bool
    outcomes: list[RowOutcome] = field(default_factory=list)


def _merge_into(target: dict[str, str], extra: Mapping[str, str]) -> None:
    for key, value in extra.items():
        if not target.get(key):
            target[key] = value


@transaction.atomic
def leads_upsert(
    *,
    workspace: Workspace,
    rows: Sequence[LeadRow],
    lead_list: LeadList | None = None,
    skip_role_addresses: bool = False,
    where: str = "line",
    since: datetime | None = None,
) -> UpsertResult:
    """Add or merge the rows into the workspace's leads (see the module docstring); one outcome
    per row, in order. `where` names a row's `ref` in reasons ("line", "item"); leads created
    at or after `since` count as added earlier by the same import."""
    outcomes: list[RowOutcome] = []
    for start in range(0, len(rows), UPSERT_BATCH):
        outcomes.extend(
            _upsert_batch(
                workspace=workspace,
                rows=rows[start : start + UPSERT_BATCH],
                lead_list=lead_list,
                skip_role_addresses=skip_role_addresses,
                where=where,
                since=since,
            )
        )
    return UpsertResult(outcomes)


def _upsert_batch(
    *,
    workspace: Workspace,
    rows: Sequence[LeadRow],
    lead_list: LeadList | None,
    skip_role_addresses: bool,
    where: str,
    since: datetime | None,
) -> list[RowOutcome]:
    now = timezone.now()
    outcomes: list[RowOutcome] = []
    pending: dict[str, _Pending] = {}  # normalised address -> the merged rows
    for row in rows:
        given = row.email.strip()
        try:
            email = address_clean(given)
        except ValueError as error:
            outcomes.append(RowOutcome(row.ref, given, Outcome.INVALID, str(error)))
            continue
        if problem := _row_problem(row):
            outcomes.append(RowOutcome(row.ref, email, Outcome.FAILED, problem))
            continue
        fields, custom, note = _clean(row)
        role = is_role_address(email)
        outcome = RowOutcome(row.ref, email, Outcome.ADDED, note, role=role)
        outcomes.append(outcome)
        seen = pending.get(email)
        if seen is None:
            pending[email] = _Pending(row, email, fields, custom, role, [outcome])
        else:
            _merge_into(seen.fields, fields)
            _merge_into(seen.custom, custom)
            seen.outcomes.append(outcome)
            outcome.outcome = Outcome.MERGED
            outcome.reason = _join(f"A duplicate of {where} {seen.row.ref}: merged.", note)

    suppressed = suppressions_find(pairs={(workspace.pk, email) for email in pending})
    for email in list(pending):
        reason = suppressed.get((workspace.pk, email))
        if reason is None and not (skip_role_addresses and pending[email].role):
            continue
        for outcome in pending.pop(email).outcomes:
            if reason is not None:
                outcome.outcome = Outcome.SUPPRESSED
                outcome.reason = _suppression_sentence(reason)
            else:
                outcome.outcome = Outcome.ROLE_SKIPPED
                outcome.reason = "A role address (reaches a team, not a person): skipped."

    existing = {
        lead.email: lead
        for lead in Lead.objects.filter(workspace=workspace, email__in=list(pending))
    }
    changed: list[Lead] = []
    new: list[_Pending] = []
    for email, item in pending.items():
        lead = existing.get(email)
        if lead is None:
            new.append(item)
            continue
        if _lead_fill(lead, item, now):
            changed.append(lead)
        for outcome in item.outcomes:
            outcome.lead_id = lead.pk
            if outcome.outcome == Outcome.ADDED:
                outcome.outcome = Outcome.MERGED
                if since is not None and lead.created_at >= since:
                    already = f"A duplicate of an earlier {where}: merged."
                else:
                    already = "Already a lead of this workspace: empty fields filled in."
                outcome.reason = _join(already, outcome.reason)
    if new:
        inserted = _leads_insert(workspace, new, now)
        missing = [item.email for item in new if item.email not in inserted]
        # A lead another request inserted meanwhile: this row merges into it.
        raced = dict(
            Lead.objects.filter(workspace=workspace, email__in=missing).values_list("email", "pk")
            if missing
            else []
        )
        for item in new:
            for outcome in item.outcomes:
                outcome.lead_id = inserted.get(item.email) or raced.get(item.email)
                if item.email in raced and outcome.outcome == Outcome.ADDED:
                    outcome.outcome = Outcome.MERGED
                    outcome.reason = _join("Added meanwhile by another request.", outcome.reason)
    if changed:
        Lead.objects.bulk_update(
            changed, [*LEAD_FIELDS, "time_zone_guessed", "custom_fields", "updated_at"]
        )
    if lead_list is not None:
        lead_ids = sorted({o.lead_id for o in outcomes if o.lead_id is not None})
        _memberships_insert(lead_list, lead_ids, now)
    return outcomes


def _join(*parts: str) -> str:
    return " ".join(part for part in parts if part)


def _suppression_sentence(reason: str) -> str:
    if reason.startswith("domain_blocked"):
        domain = reason.partition("(")[2].rstrip(")")
        return f"Its domain {domain} is blocked on the suppression list: skipped."
    words = reason.replace("_", " ")
    return f"On the suppression list ({words}): skipped."


def _public_ids(count: int) -> list[str]:
    """`count` lead public ids, in the format of `lead_public_id_new` (16 random characters of
    a-z0-9), one random draw each instead of sixteen."""
    alphabet, size = PUBLIC_ID_ALPHABET, len(PUBLIC_ID_ALPHABET)
    ids = []
    for _ in range(count):
        number = secrets.randbelow(size**16)
        chars = []
        for _ in range(16):
            number, digit = divmod(number, size)
            chars.append(alphabet[digit])
        ids.append("lead_" + "".join(chars))
    return ids


def _new_values(item: _Pending) -> dict[str, Any]:
    zone = item.fields.get("time_zone", "")
    guessed = False
    if not zone:
        zone = time_zone_guess(item.email) or ""
        guessed = bool(zone)
    values: dict[str, Any] = {name: item.fields.get(name, "") for name in LEAD_FIELDS}
    values.update(
        email=item.email,
        time_zone=zone,
        time_zone_guessed=guessed,
        custom_fields=dict(item.custom),
        role_address=item.role,
    )
    return values


_INSERT_COLUMNS = (
    "public_id",
    "email",
    *LEAD_FIELDS,
    "time_zone_guessed",
    "custom_fields",
    "role_address",
)
_ARRAY_TYPES = {"time_zone_guessed": "boolean[]", "role_address": "boolean[]"}


def _leads_insert(workspace: Workspace, items: list[_Pending], now: datetime) -> dict[str, int]:
    """Insert new leads, skipping an address inserted meanwhile; address -> id of those
    inserted. On PostgreSQL one INSERT ... SELECT FROM unnest(...) (building thousands of model
    rows costs more than the insert itself)."""
    rows = [_new_values(item) for item in items]
    public_ids = _public_ids(len(rows))
    if connection.vendor != "postgresql":
        leads = [
            Lead(
                workspace=workspace,
                public_id=public_id,
                created_at=now,
                updated_at=now,
                status_changed_at=now,
                **values,
            )
            for public_id, values in zip(public_ids, rows, strict=True)
        ]
        Lead.objects.bulk_create(leads, ignore_conflicts=True)
        mine = dict(zip(public_ids, [lead.email for lead in leads], strict=True))
        found = Lead.objects.filter(public_id__in=public_ids).values_list("public_id", "pk")
        return {mine[public_id]: pk for public_id, pk in found}
    arrays: list[list[Any]] = [public_ids]
    for column in _INSERT_COLUMNS[1:]:
        if column == "custom_fields":
            arrays.append([json.dumps(values[column]) for values in rows])
        else:
            arrays.append([values[column] for values in rows])
    unnest = ", ".join(f"%s::{_ARRAY_TYPES.get(c, 'text[]')}" for c in _INSERT_COLUMNS)
    alias = ", ".join(f"u_{c}" for c in _INSERT_COLUMNS)
    selected = ", ".join(
        f"u_{c}::jsonb" if c == "custom_fields" else f"u_{c}" for c in _INSERT_COLUMNS
    )
    columns = ", ".join(connection.ops.quote_name(c) for c in _INSERT_COLUMNS)
    table = connection.ops.quote_name(Lead._meta.db_table)
    # Only quoted identifiers are interpolated; every value is a parameter.
    sql = (
        f"INSERT INTO {table} (workspace_id, status, status_changed_at, created_at, updated_at, "  # noqa: S608
        f"{columns}) SELECT %s, %s, %s, %s, %s, {selected} FROM unnest({unnest}) AS u({alias}) "
        "ON CONFLICT DO NOTHING RETURNING email, id"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [workspace.pk, LeadStatus.ACTIVE, now, now, now, *arrays])
        return dict(cursor.fetchall())


def _memberships_insert(lead_list: LeadList, lead_ids: list[int], now: datetime) -> None:
    if not lead_ids:
        return
    if connection.vendor != "postgresql":
        LeadListMembership.objects.bulk_create(
            [LeadListMembership(lead_list=lead_list, lead_id=pk) for pk in lead_ids],
            ignore_conflicts=True,
        )
        return
    table = connection.ops.quote_name(LeadListMembership._meta.db_table)
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {table} (lead_list_id, lead_id, created_at) "
            "SELECT %s, unnest(%s::bigint[]), %s ON CONFLICT DO NOTHING",
            [lead_list.pk, lead_ids, now],
        )


def _lead_fill(lead: Lead, item: _Pending, now: datetime) -> bool:
    """Fill the lead's empty fields and missing custom fields; whether anything changed."""
    changed = False
    for name, value in item.fields.items():
        if name == "time_zone":
            # A given zone beats an empty or guessed one, never one given before.
            if not lead.time_zone or lead.time_zone_guessed:
                lead.time_zone, lead.time_zone_guessed = value, False
                changed = True
        elif not getattr(lead, name):
            setattr(lead, name, value)
            changed = True
    custom = dict(lead.custom_fields or {})
    for name, value in item.custom.items():
        if not custom.get(name):
            custom[name] = value
            changed = True
    if changed:
        lead.custom_fields = custom
        lead.updated_at = now
    return changed


# --- Bulk add to a campaign --------------------------------------------------------------------


@dataclass
class CampaignLeadsAdded:
    result: UpsertResult
    enrolled: int


@transaction.atomic
def campaign_leads_add(
    *,
    campaign: Campaign,
    actor: User | None,
    rows: Sequence[LeadRow],
    lead_list: LeadList | None = None,
    skip_role_addresses: bool = False,
) -> CampaignLeadsAdded:
    """Upsert the rows as the workspace's leads (and into `lead_list`), then enrol them in the
    campaign (active leads only; a lead already in it stays where it is)."""
    if lead_list is not None and lead_list.workspace_id != campaign.workspace_id:
        raise ApplicationError("No such list.", code="not_found", status=404)
    result = leads_upsert(
        workspace=campaign.workspace,
        rows=rows,
        lead_list=lead_list,
        skip_role_addresses=skip_role_addresses,
        where="item",
    )
    enrolled = campaign_leads_enrol(campaign=campaign, lead_ids=result.lead_ids())
    return CampaignLeadsAdded(result, enrolled)


# --- Lists -------------------------------------------------------------------------------------


def _list_name_clean(workspace: Workspace, name: str, *, exclude: int | None = None) -> str:
    name = " ".join(name.split())
    if not name:
        raise ApplicationError("Give the list a name.", fields={"name": ["Give the list a name."]})
    if len(name) > LIST_NAME_MAX:
        message = f"A list name has at most {LIST_NAME_MAX} characters."
        raise ApplicationError(message, fields={"name": [message]})
    taken = LeadList.objects.filter(workspace=workspace, name__iexact=name)
    if exclude is not None:
        taken = taken.exclude(pk=exclude)
    if taken.exists():
        message = f"There is already a list called “{name}”."
        raise ApplicationError(message, code="duplicate", fields={"name": [message]})
    return name


@transaction.atomic
def lead_list_create(*, workspace: Workspace, actor: User | None, name: str) -> LeadList:
    """Create a named list of leads in the workspace (names are unique, case aside)."""
    return LeadList.objects.create(workspace=workspace, name=_list_name_clean(workspace, name))


@transaction.atomic
def lead_list_rename(*, lead_list: LeadList, actor: User | None, name: str) -> LeadList:
    """Rename a list."""
    lead_list.name = _list_name_clean(lead_list.workspace, name, exclude=lead_list.pk)
    lead_list.save(update_fields=["name"])
    return lead_list


@transaction.atomic
def lead_list_delete(*, lead_list: LeadList, actor: User | None) -> None:
    """Delete a list; its leads stay in the workspace (and in other lists and campaigns)."""
    audit_log_record(
        action="lead_list.delete", actor=actor, obj=lead_list, workspace=lead_list.workspace
    )
    lead_list.delete()


# --- One lead ----------------------------------------------------------------------------------


@transaction.atomic
def lead_update(*, lead: Lead, actor: User | None, data: Mapping[str, Any]) -> Lead:
    """Change a lead's fields, custom fields, status (out of office needs its return date),
    time zone or lists; keys absent from `data` stay as they are. The address is the lead's
    identity and does not change."""
    errors: dict[str, list[str]] = {}
    now = timezone.now()
    for name in LEAD_FIELDS:
        if name not in data or name == "time_zone":
            continue
        value = (data[name] or "").strip()
        if len(value) > _field_limit(name):
            errors[name] = [f"At most {_field_limit(name)} characters."]
        setattr(lead, name, value)
    if "time_zone" in data:
        zone = (data["time_zone"] or "").strip()
        if zone and not time_zone_valid(zone):
            errors["time_zone"] = [
                f"“{zone[:64]}” is not a time zone: write it like Europe/Berlin."
            ]
        lead.time_zone, lead.time_zone_guessed = zone, False
    if "custom_fields" in data:
        custom = data["custom_fields"] or {}
        problems = [
            problem
            for problem in (
                custom_field_problem(str(k))
                or (
                    f"The custom field {k} is longer than {CUSTOM_VALUE_MAX} characters."
                    if len(str(v)) > CUSTOM_VALUE_MAX
                    else None
                )
                for k, v in custom.items()
            )
            if problem
        ]
        if len(custom) > CUSTOM_FIELDS_MAX:
            problems.append(f"At most {CUSTOM_FIELDS_MAX} custom fields.")
        if problems:
            errors["custom_fields"] = problems
        lead.custom_fields = {str(k): str(v) for k, v in custom.items() if str(v).strip()}
    status = data.get("status", lead.status)
    until: date | None = data.get("out_of_office_until", lead.out_of_office_until)
    if status not in LeadStatus.values:
        errors["status"] = [f"Choose one of: {', '.join(LeadStatus.values)}."]
    elif status == LeadStatus.OUT_OF_OFFICE and until is None:
        errors["out_of_office_until"] = ["Out of office needs the date the lead is back."]
    if errors:
        first = next(iter(errors.values()))[0]
        raise ApplicationError(f"The lead was not saved: {first}", fields=errors)
    changed = status != lead.status
    if changed:
        lead.status, lead.status_changed_at = status, now
    lead.out_of_office_until = until if status == LeadStatus.OUT_OF_OFFICE else None
    lead.updated_at = now
    lead.save()
    if changed and status in SUPPRESSING_STATUSES:
        # Marked by hand as opted out: never mailed again by any campaign, like a link click.
        suppression_add(
            workspace=lead.workspace,
            actor=actor,
            address=lead.email,
            reason=SUPPRESSING_STATUSES[status],
            source="Lead marked by hand",
        )
    if "lists" in data:
        lists: Iterable[LeadList] = data["lists"] or []
        wanted = {item.pk for item in lists if item.workspace_id == lead.workspace_id}
        LeadListMembership.objects.filter(lead=lead).exclude(lead_list_id__in=wanted).delete()
        LeadListMembership.objects.bulk_create(
            [LeadListMembership(lead=lead, lead_list_id=pk) for pk in wanted],
            ignore_conflicts=True,
        )
    return lead


SUPPRESSING_STATUSES = {
    LeadStatus.UNSUBSCRIBED: Suppression.Reason.UNSUBSCRIBE,
    LeadStatus.COMPLAINED: Suppression.Reason.COMPLAINT,
}


@transaction.atomic
def lead_delete(*, lead: Lead, actor: User | None) -> None:
    """Delete a lead with its place in lists and campaigns (its sent messages stay on record)."""
    audit_log_record(action="lead.delete", actor=actor, obj=lead, workspace=lead.workspace)
    lead.delete()
