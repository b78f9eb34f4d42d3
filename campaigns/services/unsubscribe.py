"""Unsubscribes from a campaign message's link or one-click POST (RFC 8058): at once, for good."""

from django.core import signing
from django.db import transaction
from django.utils import timezone

from campaigns.models import CampaignLead, CampaignLeadState, CampaignSend, LeadStatus
from campaigns.services.dispatch import UNSUBSCRIBE_SALT
from config.errors import ApplicationError
from reputation.models import EventKind
from reputation.services.events import event_record
from sending.models import Suppression


def campaign_lead_from_token(*, token: str) -> CampaignLead:
    """The campaign lead an unsubscribe link names; a forged or damaged link is refused."""
    try:
        pk = int(signing.Signer(salt=UNSUBSCRIBE_SALT).unsign(token))
    except (signing.BadSignature, ValueError) as error:
        raise ApplicationError(
            "This unsubscribe link is not valid. Copy the whole link from the email.",
            code="invalid_link",
            status=404,
        ) from error
    row = CampaignLead.objects.select_related("lead", "campaign__workspace").filter(pk=pk).first()
    if row is None:
        raise ApplicationError(
            "This unsubscribe link is no longer valid.", code="invalid_link", status=404
        )
    return row


@transaction.atomic
def lead_unsubscribe(*, token: str, how: str = "link") -> CampaignLead:
    """Suppress the lead's address for its workspace, stop every campaign's future steps to it
    and record the unsubscribe on the domain that sent it (once; a repeat changes nothing)."""
    row = campaign_lead_from_token(token=token)
    lead, workspace = row.lead, row.campaign.workspace
    Suppression.objects.get_or_create(
        workspace=workspace,
        address=lead.email,
        defaults={"reason": Suppression.Reason.UNSUBSCRIBE, "source": f"Unsubscribe {how}"},
    )
    now = timezone.now()
    if lead.status != LeadStatus.UNSUBSCRIBED:
        lead.status, lead.status_changed_at = LeadStatus.UNSUBSCRIBED, now
        lead.save(update_fields=["status", "status_changed_at"])
    CampaignLead.objects.filter(lead=lead, state=CampaignLeadState.WAITING).update(
        state=CampaignLeadState.STOPPED,
        state_reason="Unsubscribed.",
        next_at=None,
        waiting_for="",
    )
    last = (
        CampaignSend.objects.filter(campaign_lead=row, message__isnull=False)
        .select_related("message__domain", "message__mailbox")
        .order_by("-id")
        .first()
    )
    if last is not None and last.message is not None:
        message = last.message
        event_record(
            domain=message.domain,
            kind=EventKind.UNSUBSCRIBED,
            source_key=f"unsubscribe:{message.pk}",
            mailbox=message.mailbox,
            recipient=lead.email,
            message_kind=message.kind,
            detail=f"Unsubscribed by {how}",
        )
    return row
