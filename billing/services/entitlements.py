"""Limits every other app enforces: room for one more domain, mailbox or seat; external sending."""

from datetime import datetime

from django.urls import reverse
from django.utils import timezone

from accounts.models import Workspace
from billing.plans import PLANS, Entitlements, Standing
from billing.selectors import entitlements_get, usage_get
from config.errors import ApplicationError

NOUNS = {
    "domains": ("domain", "domains"),
    "mailboxes": ("mailbox", "mailboxes"),
    "seats": ("member", "members"),
}


def upgrade_link(workspace: Workspace) -> tuple[str, str]:
    return ("See plans and upgrade", reverse("billing", args=[workspace.public_id]))


def seat_require_room(*, workspace: Workspace, inviting: bool) -> None:
    """Refuse an invitation (open invitations hold a seat) or a join past the plan's seats."""
    pending = workspace.invitations.filter(
        accepted_at=None, revoked_at=None, expires_at__gt=timezone.now()
    ).count()
    entitlement_require_room(
        workspace=workspace, resource="seats", adding=1 + (pending if inviting else 0)
    )


def entitlement_require_room(*, workspace: Workspace, resource: str, adding: int = 1) -> None:
    """Refuse (with an upgrade link) when `adding` more of `resource` would pass the plan's limit.

    Callers run this inside the transaction that creates the row, after locking the workspace
    (`Workspace.objects.select_for_update()`), so two concurrent creations cannot both pass."""
    entitlements = entitlements_get(workspace=workspace)
    limit = entitlements.limit(resource)
    used = usage_get(workspace=workspace)[resource]
    if used + adding <= limit:
        return
    one, many = NOUNS[resource]
    allowed = f"{limit} {one if limit == 1 else many}"
    better = _bigger_plan(entitlements, resource)
    message = f"Your {entitlements.plan.name} plan allows {allowed}, and you have {used}."
    if entitlements.note:
        message += f" ({entitlements.note[0].upper()}{entitlements.note[1:]}.)"
    if better:
        message += f" {better}"
    raise ApplicationError(message, code="plan_limit", status=402, link=upgrade_link(workspace))


def _bigger_plan(entitlements: Entitlements, resource: str) -> str:
    """'Starter ($12 a year) allows 2 domains.' for the next plan up, or ''."""
    current = entitlements.limit(resource)
    bigger = [p for p in PLANS.values() if p.sold and int(getattr(p, resource)) > current]
    if not bigger:
        return ""
    plan, (one, many) = bigger[0], NOUNS[resource]
    limit = int(getattr(plan, resource))
    prices = " or ".join(f"${price.dollars} a {price.interval}" for price in plan.prices)
    return f"{plan.name} ({prices}) allows {limit} {one if limit == 1 else many}."


def external_sending_refusal(*, workspace: Workspace, now: datetime | None = None) -> str:
    """Why the workspace may not send to real prospects now, or "" when it may."""
    entitlements = entitlements_get(workspace=workspace, now=now)
    if entitlements.external_sending:
        return ""
    if entitlements.standing == Standing.LAPSED:
        return (
            "Payment is overdue and the 7-day grace period has ended: campaigns are stopped "
            "until the invoice is paid. Nothing is deleted."
        )
    if entitlements.note:
        return f"Campaigns need a paid plan ({entitlements.note})."
    return "Campaigns need a paid plan: the evaluation level warms mailboxes only."


def api_access_refusal(*, workspace: Workspace) -> str:
    """Why the workspace's API tokens are refused, or "" when the plan includes the API."""
    entitlements = entitlements_get(workspace=workspace)
    if entitlements.plan.api_access:
        return ""
    with_api = [p.name for p in PLANS.values() if p.sold and p.api_access]
    return (
        f"API access is not part of the {entitlements.plan.name} plan; "
        f"it comes with {', '.join(with_api)}."
    )
