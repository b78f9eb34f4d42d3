"""Reads for sending domains and mailboxes, always scoped to one workspace."""

from django.db.models import Count, Prefetch, Q, QuerySet

from accounts.models import Workspace
from sending.models import (
    DkimKey,
    DomainStatus,
    Mailbox,
    MailboxImport,
    SendingDomain,
    SendsThrough,
)


def domain_list(*, workspace: Workspace) -> QuerySet[SendingDomain]:
    return (
        SendingDomain.objects.filter(workspace=workspace)
        .exclude(status=DomainStatus.RETIRED)
        .annotate(mailbox_count=Count("mailboxes"))
        .order_by("name")
    )


def domain_get(*, workspace: Workspace, public_id: str) -> SendingDomain | None:
    return (
        SendingDomain.objects.filter(workspace=workspace, public_id=public_id)
        .exclude(status=DomainStatus.RETIRED)
        .select_related("workspace")
        .prefetch_related(Prefetch("dkim_keys", queryset=DkimKey.objects.order_by("created_at")))
        .first()
    )


def domain_list_verified(*, workspace: Workspace) -> QuerySet[SendingDomain]:
    return domain_list(workspace=workspace).filter(status=DomainStatus.VERIFIED)


def domain_list_for_mailboxes(*, workspace: Workspace) -> QuerySet[SendingDomain]:
    """Domains that take new mailboxes: verified ones, and those that send through their own
    servers while they wait for DNS (external mailboxes can be connected and tested early)."""
    return domain_list(workspace=workspace).filter(
        Q(status=DomainStatus.VERIFIED)
        | Q(status=DomainStatus.PENDING_DNS, sends_through=SendsThrough.OWN_SERVERS)
    )


def mailbox_list(*, workspace: Workspace) -> QuerySet[Mailbox]:
    return (
        Mailbox.objects.filter(domain__workspace=workspace)
        .exclude(domain__status=DomainStatus.RETIRED)
        .select_related("domain", "grant")
        .order_by("domain__name", "local_part")
    )


def mailbox_get(*, workspace: Workspace, pk: int) -> Mailbox | None:
    return mailbox_list(workspace=workspace).filter(pk=pk).first()


def domain_status_counts(*, workspace: Workspace) -> dict[str, int]:
    rows = domain_list(workspace=workspace).values("status").annotate(n=Count("id"))
    return {row["status"]: row["n"] for row in rows}


def mailbox_import_list(*, workspace: Workspace) -> QuerySet[MailboxImport]:
    return MailboxImport.objects.filter(workspace=workspace).defer("results", "rows_encrypted")


def mailbox_import_get(*, workspace: Workspace, pk: int) -> MailboxImport | None:
    return (
        MailboxImport.objects.filter(workspace=workspace, pk=pk)
        .defer("rows_encrypted")
        .select_related("created_by")
        .first()
    )


def mailbox_ids_existing(*, workspace: Workspace, ids: list[int]) -> set[int]:
    """Which of the mailboxes an import created still exist (the rest were deleted since)."""
    found = Mailbox.objects.filter(domain__workspace=workspace, pk__in=ids)
    return set(found.values_list("pk", flat=True))
