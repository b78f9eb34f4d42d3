"""What one variant of a step looks like for one lead, before anything is sent.

An enrolled lead is previewed with the seed its real message will use, so the spintax choices
shown are the ones it will get. Fields the lead cannot fill are listed and shown as [field].
"""

from dataclasses import dataclass, field

from django.conf import settings

from campaigns.models import Campaign, CampaignLead, CampaignStep, Lead, StepVariant
from campaigns.services.checks import campaign_leads_queryset, template_problems_located
from campaigns.services.rendering import lead_fields, render_seed, variant_for
from campaigns.templating import UNSUBSCRIBE_FIELD, compile_template
from config.errors import ApplicationError
from sending.models import Mailbox

SAMPLE_LEAD = {
    "email": "alex.morgan@example.com",
    "first_name": "Alex",
    "last_name": "Morgan",
    "full_name": "Alex Morgan",
    "company": "Example Ltd",
    "title": "Head of Sales",
    "phone": "+1 555 0100",
    "website": "example.com",
}
SAMPLE_SENDER = {
    "sender_email": "you@your-domain.com",
    "sender_name": "Your Name",
    "sender_first_name": "Your",
}


@dataclass(frozen=True)
class Preview:
    subject: str
    body: str
    missing_fields: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    # Whose values were used: the lead's address, or "" for the sample values.
    lead_email: str = ""
    sender: str = ""


def _unsubscribe_example() -> str:
    # Not a working link: clicking it in a preview must not unsubscribe anyone.
    return settings.SITE_URL.rstrip("/") + "/u/example/"


def campaign_preview(
    *,
    campaign: Campaign,
    step: CampaignStep,
    variant: StepVariant,
    lead: Lead | None,
) -> Preview:
    """The subject and body of `variant` for `lead` (None: the campaign's first lead, or
    sample values), with the fields it cannot fill and any template problems."""
    if step.campaign_id != campaign.pk or variant.step_id != step.pk:
        raise ApplicationError("That step is not part of this campaign.", status=404)
    if lead is not None and lead.workspace_id != campaign.workspace_id:
        raise ApplicationError("No such lead.", code="not_found", status=404)
    if lead is None:
        lead = campaign_leads_queryset(campaign).order_by("pk").first()
    mailbox = (
        Mailbox.objects.filter(campaigns=campaign).select_related("domain").order_by("pk").first()
    )
    enrolled = (
        CampaignLead.objects.filter(campaign=campaign, lead=lead).select_related("mailbox__domain")
        if lead is not None
        else None
    )
    row = enrolled.first() if enrolled is not None else None
    if row is not None and row.mailbox is not None:
        mailbox = row.mailbox
    if lead is not None:
        fields = lead_fields(lead=lead, mailbox=mailbox, unsubscribe_url=_unsubscribe_example())
        if mailbox is None:
            fields.update(SAMPLE_SENDER)
        seed = render_seed(campaign_lead_id=row.pk if row else lead.pk, step_position=step.position)
    else:
        fields = {**SAMPLE_LEAD, **SAMPLE_SENDER, UNSUBSCRIBE_FIELD: _unsubscribe_example()}
        if mailbox is not None:
            fields.update(_sender_fields(mailbox))
        seed = step.position
    problems = [f"Subject: {p}" for p in template_problems_located(variant.subject)]
    problems += [f"Body: {p}" for p in template_problems_located(variant.body)]
    if problems:
        return Preview(
            subject=variant.subject,
            body=variant.body,
            problems=problems,
            lead_email=lead.email if lead else "",
            sender=mailbox.address if mailbox else "",
        )
    missing: set[str] = set()
    body = _render(variant.body, fields, seed, missing)
    if variant.subject.strip():
        subject = _render(variant.subject, fields, seed, missing)
    else:
        subject = "Re: " + _thread_subject(campaign, row, fields, seed, missing)
    return Preview(
        subject=subject,
        body=body,
        missing_fields=sorted(missing),
        lead_email=lead.email if lead else "",
        sender=mailbox.address if mailbox else "",
    )


def _sender_fields(mailbox: Mailbox) -> dict[str, str]:
    found = {
        "sender_email": mailbox.address,
        "sender_name": mailbox.display_name,
        "sender_first_name": mailbox.display_name.split(" ")[0],
    }
    return {name: value for name, value in found.items() if value}


def _render(text: str, fields: dict[str, str], seed: int, missing: set[str]) -> str:
    compiled = compile_template(text)
    lacking = {name for name in compiled.fields_required if not fields.get(name)}
    missing |= lacking
    shown = {**fields, **{name: f"[{name}]" for name in lacking}}
    return compiled.render(shown, seed=seed)


def _thread_subject(
    campaign: Campaign,
    row: CampaignLead | None,
    fields: dict[str, str],
    seed: int,
    missing: set[str],
) -> str:
    """The first message's subject this lead gets (or got), which a follow-up replies to."""
    if row is not None and row.thread_subject:
        return row.thread_subject.removeprefix("Re: ")
    first = CampaignStep.objects.filter(campaign=campaign, position=1).first()
    if first is None:
        return ""
    variants = list(first.variants.all())
    if not variants:
        return ""
    chosen = variant_for(variants=variants, campaign_lead_id=row.pk) if row else variants[0]
    if not chosen.subject.strip() or template_problems_located(chosen.subject):
        return chosen.subject
    first_seed = render_seed(campaign_lead_id=row.pk, step_position=1) if row else seed
    return _render(chosen.subject, fields, first_seed, missing)
