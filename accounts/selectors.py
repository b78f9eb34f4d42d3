"""Reads for accounts: every query a customer can trigger is scoped to their memberships."""

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from django.db.models import F, QuerySet
from django.urls import reverse

from accounts.crypto import secret_hash
from accounts.models import ApiToken, AuditLog, Invitation, Membership, User, Workspace


def workspace_list(*, user: User) -> QuerySet[Workspace]:
    """The user's workspaces, each annotated with the user's `role` in it."""
    return (
        Workspace.objects.filter(memberships__user=user)
        .annotate(role=F("memberships__role"))
        .order_by("name", "id")
    )


def membership_list_for_user(*, user: User) -> QuerySet[Membership]:
    return (
        Membership.objects.filter(user=user)
        .select_related("workspace")
        .order_by("workspace__name", "workspace_id")
    )


def membership_get(*, user: User, workspace_public_id: str) -> Membership | None:
    """The user's membership in a workspace, or None (callers answer 404, never 403)."""
    if not user.is_authenticated:
        return None
    return (
        Membership.objects.select_related("workspace")
        .filter(user=user, workspace__public_id=workspace_public_id)
        .first()
    )


def membership_list(*, workspace: Workspace) -> QuerySet[Membership]:
    return workspace.memberships.select_related("user").order_by("created_at")


def invitation_list_open(*, workspace: Workspace) -> QuerySet[Invitation]:
    return workspace.invitations.filter(
        accepted_at__isnull=True, revoked_at__isnull=True
    ).select_related("invited_by")


def api_token_list(*, workspace: Workspace, user: User, all_users: bool) -> QuerySet[ApiToken]:
    tokens = workspace.api_tokens.filter(revoked_at__isnull=True).select_related("user")
    return tokens if all_users else tokens.filter(user=user)


def audit_log_list(*, workspace: Workspace, limit: int = 50) -> QuerySet[AuditLog]:
    return workspace.audit_logs.select_related("actor")[:limit]


def invitation_get_by_token(token: str) -> Invitation | None:
    return (
        Invitation.objects.select_related("workspace", "invited_by")
        .filter(token_hash=secret_hash(token))
        .first()
    )


def invitation_list_for_user(*, user: User) -> QuerySet[Invitation]:
    """Open invitations addressed to the user's (verified) email."""
    return Invitation.objects.filter(
        email__iexact=user.email, accepted_at__isnull=True, revoked_at__isnull=True
    ).select_related("workspace", "invited_by")


@dataclass(frozen=True)
class OnboardingStep:
    """One step of the dashboard's getting-started checklist."""

    key: str
    title: str
    done: bool
    link_text: str  # what to do next, as the link's words
    url: str
    help: str = ""


def onboarding_steps(*, workspace: Workspace) -> list[OnboardingStep]:
    """The getting-started checklist, each step ticked from what the workspace really has."""
    from sending.models import ConnectionType, DomainStatus, Mailbox, MailboxStatus

    ws = workspace.public_id
    domains = list(
        workspace.sending_domains.exclude(status=DomainStatus.RETIRED)
        .order_by("created_at", "id")
        .values("public_id", "name", "status", "verified_at", "trust_score")
    )
    mailboxes = list(
        Mailbox.objects.filter(domain__workspace=workspace)
        .exclude(domain__status=DomainStatus.RETIRED)
        .order_by("created_at", "id")
        .values(
            "pk",
            "local_part",
            "domain__name",
            "connection",
            "connection_ok",
            "warmup_enabled",
            "status",
        )
    )
    has_team = (
        workspace.memberships.count() > 1
        or workspace.invitations.filter(revoked_at__isnull=True).exists()
    )
    # Verified once and not since demoted for broken DNS (a cool-down does not undo the step).
    verified = [d for d in domains if d["verified_at"] and d["status"] != DomainStatus.PENDING_DNS]
    unverified = next((d for d in domains if d["status"] == DomainStatus.PENDING_DNS), None)
    # Platform mailboxes send through our MTA: there is no server of theirs to test.
    connected = [
        m for m in mailboxes if m["connection"] == ConnectionType.PLATFORM or m["connection_ok"]
    ]
    untested = next((m for m in mailboxes if m not in connected), None)
    to_verify = f"Publish the records of {unverified['name']}" if unverified else "Open domains"
    idle = next(
        (m for m in connected if not m["warmup_enabled"] or m["status"] != MailboxStatus.ACTIVE),
        None,
    )
    to_warm = "Open mailboxes"
    if idle:
        address = f"{idle['local_part']}@{idle['domain__name']}"
        to_warm = (
            f"Turn warm-up on for {address}" if not idle["warmup_enabled"] else f"Open {address}"
        )
    best = max(domains, key=lambda d: d["trust_score"] or 0, default=None)

    def domain_url(domain: Mapping[str, Any] | None) -> str:
        if domain is None:
            return reverse("domains", args=[ws])
        return reverse("domain_detail", args=[ws, domain["public_id"]])

    def mailbox_url(mailbox: Mapping[str, Any] | None) -> str:
        if mailbox is None:
            return reverse("mailboxes", args=[ws])
        return reverse("mailbox_detail", args=[ws, mailbox["pk"]])

    return [
        OnboardingStep(
            key="domain",
            title="Add a sending domain",
            done=bool(domains),
            link_text="Add a domain",
            url=reverse("domains", args=[ws]),
        ),
        OnboardingStep(
            key="verify",
            title="Publish its DNS records and verify it",
            done=bool(verified),
            link_text=to_verify,
            url=domain_url(unverified),
            help="Copy the records to your DNS host, then press “Check now”.",
        ),
        OnboardingStep(
            key="mailbox",
            title="Add a mailbox",
            done=bool(mailboxes),
            link_text="Add a mailbox",
            url=reverse("mailboxes", args=[ws]),
            help="A platform mailbox, or your own Google Workspace, Microsoft 365 or IMAP account.",
        ),
        OnboardingStep(
            key="connect",
            title="Connect the mailbox",
            done=bool(connected),
            link_text=(
                f"Test {untested['local_part']}@{untested['domain__name']}"
                if untested
                else "Open mailboxes"
            ),
            url=mailbox_url(untested),
            help="Your own servers must pass the connection test; platform mailboxes need none.",
        ),
        OnboardingStep(
            key="warming",
            title="Enrol a mailbox in warming",
            done=any(
                m["warmup_enabled"] and m["status"] == MailboxStatus.ACTIVE for m in connected
            ),
            link_text=to_warm,
            url=mailbox_url(idle),
            help="A connected, active mailbox with warm-up on sends and receives warm-up mail.",
        ),
        OnboardingStep(
            key="team",
            title="Invite a teammate",
            done=has_team,
            link_text="Invite someone",
            url=reverse("workspace_settings", args=[ws]) + "#members",
        ),
        OnboardingStep(
            key="score",
            title="Reach a trust score of 70 to unlock external sending",
            done=any((d["trust_score"] or 0) >= 70 for d in domains),
            link_text="See the score",
            url=domain_url(best),
            help="Warming raises the score over the coming days.",
        ),
    ]
