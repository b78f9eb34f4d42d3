"""What KumoMTA's Traffic Shaping Automation daemon reports (pure: standard library only).

The daemon (kumo-tsa-daemon) suspends a path or a tenant when a receiver's answers match an
automation rule of shaping.toml (Yahoo's TS04 deferrals, Microsoft's throttling, ...). It serves
`/get_suspension_v1/suspended.json` (`ready_q`: source -> site suspensions, `sched_q`: tenant
and domain suspensions) and `/get_bounce_v1/bounced.json`. Anything malformed is skipped, never
raised: the console shows what it can read.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

SUSPENDED_PATH = "/get_suspension_v1/suspended.json"
BOUNCED_PATH = "/get_bounce_v1/bounced.json"
MAX_ENTRIES = 500  # per list: enough for a console page


@dataclass(frozen=True)
class TsaAction:
    kind: str  # "path suspended" | "tenant suspended" | "tenant bounced"
    scope: str  # "203.0.113.5 -> gmail-site" or "dom_x @ yahoo.com (campaign c)"
    tenant: str  # the tenant id when the action is about one, else ""
    reason: str
    expires: datetime | None


def _text(value: object, limit: int = 300) -> str:
    return value[:limit] if isinstance(value, str) else ""


def _when(value: object) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        return None


def _entries(value: object) -> list[dict[str, Any]]:
    if not isinstance(value, list):
        return []
    return [item for item in value[:MAX_ENTRIES] if isinstance(item, dict)]


def _tenant_scope(entry: dict[str, Any]) -> str:
    scope = f"{_text(entry.get('tenant')) or 'any tenant'} @ {_text(entry.get('domain'))}"
    campaign = _text(entry.get("campaign"))
    return f"{scope} (campaign {campaign})" if campaign else scope


def tsa_actions(suspended: object, bounced: object) -> list[TsaAction]:
    """The daemon's active actions from its two documents (already JSON-decoded)."""
    actions = []
    document = suspended if isinstance(suspended, dict) else {}
    for entry in _entries(document.get("ready_q")):
        actions.append(
            TsaAction(
                "path suspended",
                f"{_text(entry.get('source'))} -> {_text(entry.get('site_name'))}",
                "",
                _text(entry.get("reason")),
                _when(entry.get("expires")),
            )
        )
    for kind, entries in (
        ("tenant suspended", _entries(document.get("sched_q"))),
        ("tenant bounced", _entries(bounced)),
    ):
        for entry in entries:
            actions.append(
                TsaAction(
                    kind,
                    _tenant_scope(entry),
                    _text(entry.get("tenant"), 64),
                    _text(entry.get("reason")),
                    _when(entry.get("expires")),
                )
            )
    return actions
