"""Reads for leads, lead lists and lead imports, always scoped to one workspace."""

from django.db.models import Count, Prefetch, Q, QuerySet

from accounts.models import Workspace
from campaigns.models import (
    Campaign,
    CampaignLead,
    ImportKind,
    Lead,
    LeadImport,
    LeadList,
    LeadStatus,
)


def lead_list(
    *,
    workspace: Workspace,
    search: str = "",
    list_public_id: str = "",
    status: str = "",
) -> QuerySet[Lead]:
    """The workspace's leads, newest first, with their lists; filtered by a search over
    address, name and company, a list and a status."""
    return lead_filter(
        Lead.objects.filter(workspace=workspace),
        search=search,
        list_public_id=list_public_id,
        status=status,
    )


def lead_filter(
    leads: QuerySet[Lead], *, search: str = "", list_public_id: str = "", status: str = ""
) -> QuerySet[Lead]:
    """`leads` filtered (see `lead_list`), newest first, with their lists."""
    search = search.strip()
    if search:
        leads = leads.filter(
            Q(email__icontains=search)
            | Q(first_name__icontains=search)
            | Q(last_name__icontains=search)
            | Q(company__icontains=search)
        )
    if list_public_id:
        leads = leads.filter(lists__public_id=list_public_id)
    if status in LeadStatus.values:
        leads = leads.filter(status=status)
    return leads.prefetch_related(
        Prefetch("lists", queryset=LeadList.objects.only("id", "public_id", "name"))
    ).order_by("-id")


def lead_get(*, workspace: Workspace, public_id: str) -> Lead | None:
    return (
        Lead.objects.filter(workspace=workspace, public_id=public_id)
        .prefetch_related("lists")
        .first()
    )


def lead_campaigns(*, lead: Lead) -> QuerySet[CampaignLead]:
    """The lead's place in each campaign it is in."""
    return lead.campaign_leads.select_related("campaign").order_by("-created_at")


def lead_list_list(*, workspace: Workspace) -> QuerySet[LeadList]:
    """The workspace's lists by name, with how many leads each holds."""
    return lead_list_counts(LeadList.objects.filter(workspace=workspace))


def lead_list_counts(lists: QuerySet[LeadList]) -> QuerySet[LeadList]:
    """`lists` with `lead_count`, how many leads each holds."""
    return lists.annotate(lead_count=Count("memberships"))


def lead_list_get(*, workspace: Workspace, public_id: str) -> LeadList | None:
    return LeadList.objects.filter(workspace=workspace, public_id=public_id).first()


def lead_import_list(*, workspace: Workspace, limit: int = 10) -> QuerySet[LeadImport]:
    """The workspace's latest lead imports."""
    return LeadImport.objects.filter(workspace=workspace, kind=ImportKind.LEADS).select_related(
        "lead_list"
    )[:limit]


def lead_import_get(*, workspace: Workspace, public_id: str) -> LeadImport | None:
    return (
        LeadImport.objects.filter(workspace=workspace, kind=ImportKind.LEADS, public_id=public_id)
        .select_related("lead_list", "workspace")
        .first()
    )


def campaign_get_for_workspaces(*, workspace_ids: QuerySet, public_id: str) -> Campaign | None:
    """A campaign by public id among the given workspaces (those an API token may see)."""
    return (
        Campaign.objects.filter(workspace_id__in=workspace_ids, public_id=public_id)
        .select_related("workspace")
        .first()
    )


def campaign_lead_list(*, campaign: Campaign) -> QuerySet[CampaignLead]:
    """The campaign's leads with their state, newest enrolment first."""
    return campaign.leads.select_related("lead").order_by("-id")
