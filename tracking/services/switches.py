"""Per-campaign tracking switches (the campaign builder's "track opens" / "track clicks")."""

from django.db import transaction
from django.utils import timezone

from accounts.models import User
from accounts.services import audit_log_record
from campaigns.models import Campaign
from tracking.models import CampaignTracking


@transaction.atomic
def campaign_tracking_set(
    *, campaign: Campaign, opens: bool, clicks: bool, actor: User | None
) -> CampaignTracking:
    """Switch open and click tracking on or off for the campaign's next messages."""
    row, created = CampaignTracking.objects.select_for_update().get_or_create(
        campaign=campaign, defaults={"opens": opens, "clicks": clicks}
    )
    before = (
        {"opens": True, "clicks": True} if created else {"opens": row.opens, "clicks": row.clicks}
    )
    if not created and (row.opens, row.clicks) == (opens, clicks):
        return row
    row.opens, row.clicks, row.updated_at = opens, clicks, timezone.now()
    row.save(update_fields=["opens", "clicks", "updated_at"])
    if before != {"opens": opens, "clicks": clicks}:
        audit_log_record(
            action="campaign.tracking",
            actor=actor,
            obj=campaign,
            workspace=campaign.workspace,
            before=before,
            after={"opens": opens, "clicks": clicks},
        )
    return row
