"""Putting leads into a campaign: one `CampaignLead` row per (campaign, lead), created once."""

from collections.abc import Iterable
from datetime import datetime

from django.db import transaction
from django.utils import timezone

from campaigns.models import Campaign, CampaignLead, CampaignStatus, Lead, LeadStatus

ENROL_BATCH = 2000


@transaction.atomic
def campaign_leads_enrol(
    *, campaign: Campaign, lead_ids: Iterable[int], now: datetime | None = None
) -> int:
    """Enrol the workspace's active leads among `lead_ids` in the campaign; a lead already in
    it is left where it is. Returns how many rows were added. The first step is due at once
    (or at the scheduled start); the dispatcher still decides when it may really go out."""
    now = now or timezone.now()
    due = campaign.start_at if campaign.start_at and campaign.start_at > now else now
    if campaign.status == CampaignStatus.COMPLETED:
        # More leads give a finished campaign work again.
        Campaign.objects.filter(pk=campaign.pk).update(
            status=CampaignStatus.RUNNING, finished_at=None
        )
        campaign.status, campaign.finished_at = CampaignStatus.RUNNING, None
    ids = list(dict.fromkeys(lead_ids))
    added = 0
    for start in range(0, len(ids), ENROL_BATCH):
        chunk = ids[start : start + ENROL_BATCH]
        active = Lead.objects.filter(
            pk__in=chunk, workspace_id=campaign.workspace_id, status=LeadStatus.ACTIVE
        ).values_list("pk", flat=True)
        rows = [CampaignLead(campaign=campaign, lead_id=pk, next_at=due) for pk in active]
        before = CampaignLead.objects.filter(campaign=campaign, lead_id__in=chunk).count()
        CampaignLead.objects.bulk_create(rows, ignore_conflicts=True, batch_size=ENROL_BATCH)
        added += CampaignLead.objects.filter(campaign=campaign, lead_id__in=chunk).count() - before
    return added


def campaign_lists_enrol(*, campaign: Campaign, now: datetime | None = None) -> int:
    """Enrol every active lead of the campaign's lists (at launch, or when a list is added)."""
    lead_ids = Lead.objects.filter(
        lists__in=campaign.lead_lists.all(), workspace_id=campaign.workspace_id
    ).values_list("pk", flat=True)
    return campaign_leads_enrol(campaign=campaign, lead_ids=lead_ids.distinct(), now=now)
