"""Small builders for campaign tests: domains in a tier, mailboxes, leads on a list, a campaign."""

from collections.abc import Sequence
from datetime import time

from accounts.models import Workspace
from billing.models import BillingAccount, CreditAccount
from campaigns.models import (
    Campaign,
    CampaignStep,
    Lead,
    LeadList,
    LeadListMembership,
    StepVariant,
)
from sending.models import Mailbox, SendingDomain

ALL_WEEK = [0, 1, 2, 3, 4, 5, 6]
BODY = 'Hi {{ first_name | default: "there" }},\n\n{Quick|Short} note.\n\n{{ unsubscribe_url }}\n'


def sending_domain(
    workspace: Workspace, name: str, *, tier: str = "standard", score: float = 80.0, **kw
) -> SendingDomain:
    """A verified domain already scored into `tier` (no DNS needed)."""
    return SendingDomain.objects.create(
        workspace=workspace,
        name=name,
        status=kw.pop("status", "verified"),
        tier=tier,
        trust_score=score,
        score_provisional=False,
        **kw,
    )


def mailboxes(domain: SendingDomain, count: int, **kw) -> list[Mailbox]:
    return [
        Mailbox.objects.create(
            domain=domain,
            local_part=f"rep{i + 1}",
            display_name=f"Rep {i + 1}",
            connection=kw.get("connection", "platform"),
            daily_limit=kw.get("daily_limit", 40),
            provider=kw.get("provider", "unknown"),
        )
        for i in range(count)
    ]


def lead_list(
    workspace: Workspace, emails: Sequence[str], name: str = "Prospects", **kw
) -> LeadList:
    """A list of active leads, one per address (first names from the local part)."""
    leads_list, _ = LeadList.objects.get_or_create(workspace=workspace, name=name)
    for email in emails:
        lead, _ = Lead.objects.get_or_create(
            workspace=workspace,
            email=email.lower(),
            defaults={"first_name": email.split("@")[0].split(".")[0].title(), **kw},
        )
        LeadListMembership.objects.get_or_create(lead_list=leads_list, lead=lead)
    return leads_list


def paid(workspace: Workspace, *, credits: int = 1000, plan: str = "pro") -> None:
    """A paying workspace with `credits` earned credits."""
    BillingAccount.objects.update_or_create(
        workspace=workspace, defaults={"plan": plan, "status": "active"}
    )
    CreditAccount.objects.update_or_create(workspace=workspace, defaults={"earned": credits})


def campaign(
    workspace: Workspace,
    *,
    steps: Sequence[tuple[int, Sequence[tuple[str, str]]]] = (
        (0, (("Hello {{ company }}", BODY),)),
    ),
    senders: Sequence[Mailbox] = (),
    lists: Sequence[LeadList] = (),
    **kw,
) -> Campaign:
    """A campaign with `steps` as (delay_days, [(subject, body) per variant]), all week, all day
    (override with keyword fields)."""
    kw.setdefault("send_days", ALL_WEEK)
    kw.setdefault("window_start", time(0, 0))
    kw.setdefault("window_end", time(23, 59))
    kw.setdefault("daily_limit", 10000)
    kw.setdefault("daily_new_leads", 10000)
    made = Campaign.objects.create(workspace=workspace, name=kw.pop("name", "Outreach"), **kw)
    for position, (delay, variants) in enumerate(steps, start=1):
        step = CampaignStep.objects.create(campaign=made, position=position, delay_days=delay)
        for label, (subject, body) in zip("ABCDEFGH", variants, strict=False):
            StepVariant.objects.create(step=step, label=label, subject=subject, body=body)
    made.mailboxes.set(senders)
    made.lead_lists.set(lists)
    return made
