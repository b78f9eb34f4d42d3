"""Idempotent demo data: an operator and two customer workspaces with their users."""

from datetime import datetime, time, timedelta
from email.message import EmailMessage
from email.utils import format_datetime, formataddr
from io import StringIO
from typing import TYPE_CHECKING

from allauth.account.models import EmailAddress
from django.core.management import call_command
from django.core.management.base import BaseCommand
from django.db import transaction
from django.test import override_settings
from django.utils import timezone

from accounts.models import Membership, Role, User, Workspace
from accounts.services import workspace_create
from billing.models import BillingAccount
from billing.services.credits import credits_grant_all
from billing.services.subscriptions import plan_comp_set
from config.errors import ApplicationError
from leaderboard.services.board import board_rebuild
from sending.models import Mailbox
from warming.models import GoldenSeed, WarmupSettings
from warming.services import warming_day_save

if TYPE_CHECKING:
    from campaigns.models import Lead
    from sending.models import Message, SendingDomain

DEMO_PASSWORD = "demo-password-1"
OPERATOR = "ops@demo.trustgate.test"
WORKSPACES = [
    ("Acme Outreach", [("owner@acme.test", Role.OWNER), ("rep@acme.test", Role.MEMBER)]),
    ("Globex Growth", [("owner@globex.test", Role.OWNER), ("admin@globex.test", Role.ADMIN)]),
]
# Demo sending domains (shown as verified; their DNS is not really published) and mailboxes.
# Each demo domain's traffic is simulated through the real MTA hook, so the demo shows every tier.
DOMAINS = {
    "Acme Outreach": [
        ("acme-outreach.com", "google", ["alex", "sam", "jordan"], ("good", 11)),
        ("acme-mail.io", "other", ["hello"], ("average", 3)),
    ],
    "Globex Growth": [
        ("globex-growth.com", "microsoft", ["sales", "team"], ("reckless", 5)),
        ("globex-blast.com", "other", ["promo"], ("spammer", 1)),
    ],
}
DEMO_MESSAGES = 600
DEMO_REASON = "Demo domain: its DNS is not really published; shown as verified."


def _demo_domain(
    workspace: Workspace, owner: User, name: str, provider: str
) -> "SendingDomain | None":
    """The demo domain `name`, claimed again if it was removed and back to verified if a DNS
    check demoted it (before demo domains were marked). Penalties the simulated traffic earned
    (cool-down, quarantine) stay: they are part of the demo."""
    from sending.models import DomainStatus, SendingDomain
    from sending.services.domains import domain_create
    from sending.services.status import domain_status_set
    from sending.services.verification import VERIFIED_RECHECK

    domain = (
        SendingDomain.objects.filter(workspace=workspace, name=name)
        .exclude(status=DomainStatus.RETIRED)
        .first()
    )
    if domain is None:
        try:
            domain = domain_create(workspace=workspace, actor=owner, name=name)
        except ApplicationError:
            return None  # claimed by another workspace since: leave it to its holder
    now = timezone.now()
    SendingDomain.objects.filter(pk=domain.pk).update(
        is_demo=True,
        provider=provider,
        verified_at=domain.verified_at or now,
        next_check_at=now + VERIFIED_RECHECK,
    )
    domain.refresh_from_db()
    if domain.status == DomainStatus.PENDING_DNS:
        domain_status_set(
            domain=domain,
            status=DomainStatus.VERIFIED,
            actor=None,
            reason=DEMO_REASON,
            now=now,
            action="domain.verify",
        )
    return domain


def _demo_domains(workspace: Workspace, owner: User) -> list[str]:
    """Create or repair the workspace's demo domains; the names that could not be had."""
    from sending.services.mailboxes import mailbox_create

    skipped = []
    for name, provider, locals_, (persona, seed) in DOMAINS.get(workspace.name, []):
        domain = _demo_domain(workspace, owner, name, provider)
        if domain is None:
            skipped.append(name)
            continue
        for local_part in locals_:
            if not domain.mailboxes.filter(local_part=local_part).exists():
                mailbox_create(
                    domain=domain,
                    actor=owner,
                    data={
                        "connection": "platform",
                        "local_part": local_part,
                        "display_name": local_part.title(),
                        "daily_limit": 40,
                    },
                )
        if not domain.events.exists():
            call_command(
                "simulate_traffic",
                domain=name,
                persona=persona,
                messages=DEMO_MESSAGES,
                seed=seed,
                stdout=StringIO(),
            )
    return skipped


DEMO_CAMPAIGN = "Intro: platform teams in Europe"
DEMO_FIRST_NAMES = ["Ana", "Ben", "Chloe", "Dario", "Eva", "Finn", "Greta", "Hugo", "Ines", "Jonas"]
DEMO_COMPANIES = ["Nordlicht", "Baltic Data", "Rivoli Labs", "Tagus Cloud", "Danube Ops"]
DEMO_LEAD_DOMAINS = ["nordlicht.de", "balticdata.ee", "rivoli-labs.fr", "tagus.pt", "danube.at"]
# The demo campaign's first step went out this long before the seed ran, its replies since.
DEMO_SENT_AGO = timedelta(hours=3)


def _demo_campaign(workspace: Workspace, owner: User) -> str:
    """A list of prospects (two of them role addresses), a blocked competitor domain and a
    campaign of two steps launched from the workspace's healthy domain, once."""
    from campaigns.models import Campaign, LeadList
    from campaigns.services.campaigns import (
        campaign_create,
        campaign_launch,
        campaign_settings_update,
        campaign_step_add,
        step_variant_save,
    )
    from campaigns.services.leads import LeadRow, lead_list_create, leads_upsert
    from campaigns.services.suppressions import suppressed_domain_block
    from sending.models import SuppressedDomain
    from sending.services.outbound import EXTERNAL_TIERS

    if Campaign.objects.filter(workspace=workspace, name=DEMO_CAMPAIGN).exists():
        return ""
    prospects = LeadList.objects.filter(workspace=workspace, name="Demo prospects").first()
    if prospects is None:
        prospects = lead_list_create(workspace=workspace, actor=owner, name="Demo prospects")
    rows = [
        LeadRow(
            ref=number,
            email=f"{first.lower()}.{number}@{DEMO_LEAD_DOMAINS[number % 5]}",
            fields={"first_name": first, "company": DEMO_COMPANIES[number % 5]},
            custom_fields={"city": ["Berlin", "Tallinn", "Lyon", "Lisbon", "Vienna"][number % 5]},
        )
        for number, first in enumerate(DEMO_FIRST_NAMES * 3, start=1)
    ]
    rows += [LeadRow(ref=90, email="info@nordlicht.de"), LeadRow(ref=91, email="sales@tagus.pt")]
    leads_upsert(workspace=workspace, rows=rows, lead_list=prospects)
    if not SuppressedDomain.objects.filter(
        workspace=workspace, domain="competitor-corp.com"
    ).exists():
        suppressed_domain_block(
            workspace=workspace, actor=owner, domain="competitor-corp.com", reason="A competitor"
        )
    campaign = campaign_create(workspace=workspace, actor=owner, name=DEMO_CAMPAIGN)
    senders = Mailbox.objects.filter(domain__workspace=workspace, domain__tier__in=EXTERNAL_TIERS)
    campaign = campaign_settings_update(
        campaign=campaign,
        actor=owner,
        data={
            "mailbox_ids": list(senders.values_list("pk", flat=True)),
            "lead_list_ids": [prospects.pk],
            "send_days": [0, 1, 2, 3, 4, 5, 6],
            "window_start": time(0, 0),
            "window_end": time(23, 59),
            "daily_new_leads": 10,
        },
    )
    first = campaign.steps.get(position=1)
    step_variant_save(
        step=first,
        actor=owner,
        variant=first.variants.get(label="A"),
        subject="{Quick question|A question} about {{ company }}",
        body=(
            'Hi {{ first_name | default: "there" }},\n\n{I noticed|I saw} that {{ company }} '
            "is hiring platform engineers in {{ city | default: 'Europe' }}. Would a short call "
            "next week make sense?\n\n{Best|Cheers},\n{{ sender_first_name }}\n\n"
            "Not interested? {{ unsubscribe_url }}\n"
        ),
    )
    step_variant_save(
        step=first,
        actor=owner,
        variant=None,
        subject="{{ company }} and deliverability",
        body=(
            "Hello {{ first_name | default: 'there' }},\n\nhow does {{ company }} keep its "
            "mail out of spam folders?\n\n{{ sender_first_name }}\n\n{{ unsubscribe_url }}\n"
        ),
    )
    follow_up = campaign_step_add(campaign=campaign, actor=owner, delay_days=3)
    step_variant_save(
        step=follow_up,
        actor=owner,
        variant=follow_up.variants.get(label="A"),
        subject="",
        body=(
            "{Just|Only} following up, {{ first_name | default: 'there' }}.\n\n"
            "{{ sender_first_name }}\n\n{{ unsubscribe_url }}\n"
        ),
    )
    try:
        campaign_launch(
            campaign=campaign,
            actor=owner,
            acknowledge_warnings=True,
            now=timezone.now() - DEMO_SENT_AGO,
        )
    except ApplicationError as error:
        return f"The demo campaign stays a draft: {error}"
    return ""


# The demo inbox: one reply to each of the demo campaign's first messages, in this order.
# key, minutes after the send, kind of message, label (a built-in one) and whether it was read.
DEMO_REPLIES = [
    ("interested", 35, "human", "interested", True),
    ("ooo", 2, "out_of_office", "", True),
    ("meeting", 70, "human", "meeting_booked", True),
    ("auto", 1, "auto_reply", "", True),
    ("question", 150, "human", "", False),
]
DEMO_OOO_DAYS = 9  # the out-of-office lead is back this many days after the send


def _demo_reply_raw(
    key: str, kind: str, message: "Message", lead: "Lead | None", at: datetime
) -> bytes:
    """The demo reply `key` to `message` as a mail client would send it."""
    first = lead.first_name if lead and lead.first_name else "there"
    sender_first = (message.sender_name or "there").split()[0]
    domain = message.recipient.rpartition("@")[2]
    subject = f"Re: {message.subject}"
    texts = {
        "interested": (
            f"Hi {sender_first},\n\ngood timing: we are growing the platform team this "
            "quarter. Could you send a few details on how you work with teams like ours?\n\n"
            f"{first}"
        ),
        "meeting": (
            f"Hi {sender_first},\n\nthanks for reaching out. Thursday at 10:00 CET works for "
            f"me; I have sent you an invite for a 30-minute call.\n\n{first}"
        ),
        "question": (
            f"Hello {sender_first},\n\nwhat would this cost for a team of twelve? We looked at "
            f"a similar tool last year and pricing was the sticking point.\n\n{first}"
        ),
        "ooo": (
            "Thank you for your message. I am out of the office with limited access to email "
            f"and back on {(at + timedelta(days=DEMO_OOO_DAYS)):%d %B %Y}.\n\n{first}"
        ),
        "auto": (
            "Thank you for your email. This mailbox is read during business hours; we answer "
            "within two working days."
        ),
    }
    raw = EmailMessage()
    raw["From"] = formataddr((lead.first_name if lead else "", message.recipient))
    raw["To"] = message.sender
    raw["Date"] = format_datetime(at)
    raw["Message-ID"] = f"<demo-{key}.{message.pk}@{domain}>"
    raw["In-Reply-To"] = f"<{message.message_id}>"
    raw["References"] = f"<{message.message_id}>"
    if kind == "out_of_office":
        subject = f"Out of office: {subject}"
    elif kind == "auto_reply":
        subject = f"Automatic reply: {subject}"
    if kind != "human":
        raw["Auto-Submitted"] = "auto-replied"
    raw["Subject"] = subject
    raw.set_content(texts[key] + "\n")
    return raw.as_bytes()


def _demo_inbox(workspace: Workspace, owner: User) -> None:
    """Replies to the demo campaign's first messages, stored and applied as the reply poll
    does (leads stopped or held), labelled and read but one; once each. The campaign's first
    sends are made by the dispatcher, as its first tick would, when it has sent nothing yet."""
    from campaigns.models import Campaign, CampaignSend, CampaignStatus
    from campaigns.services.dispatch import campaigns_dispatch
    from inbox.models import Reply
    from inbox.services.inbox import reply_label_set, reply_labels_ensure, reply_mark_read
    from inbox.services.poll import reply_record

    campaign = Campaign.objects.filter(workspace=workspace, name=DEMO_CAMPAIGN).first()
    if campaign is None or campaign.launched_at is None:
        return
    now = timezone.now()
    sends = CampaignSend.objects.filter(campaign=campaign, message__isnull=False)
    if not sends.exists() and campaign.status == CampaignStatus.RUNNING:
        campaigns_dispatch(now=max(campaign.launched_at, now - DEMO_SENT_AGO))
    firsts = list(
        sends.filter(step__position=1)
        .select_related("message__mailbox__domain", "campaign_lead__lead")
        .order_by("pk")[: len(DEMO_REPLIES)]
    )
    labels = {label.system: label for label in reply_labels_ensure(workspace=workspace)}
    for (key, minutes, kind, label, read), send in zip(DEMO_REPLIES, firsts, strict=False):
        message = send.message
        if message is None or message.mailbox is None:
            continue
        if Reply.objects.filter(
            workspace=workspace, message_id__startswith=f"demo-{key}."
        ).exists():
            continue
        at = min(message.created_at + timedelta(minutes=minutes), now)
        raw = _demo_reply_raw(key, kind, message, send.campaign_lead.lead, at)
        reply = reply_record(mailbox=message.mailbox, raw=raw, uid=None, now=now)
        if reply is None:
            continue
        if label:
            reply_label_set(reply=reply, actor=owner, add=[labels[label]])
        if read:
            reply_mark_read(reply=reply, now=now)


DEMO_WEBHOOK_URL = "https://hooks.example.com/trustgate"
DEMO_WEBHOOK_EVENTS = [
    "message.replied",
    "message.bounced",
    "lead.unsubscribed",
    "lead.out_of_office",
]


def _demo_webhook(workspace: Workspace, owner: User) -> None:
    """An endpoint at an example URL, once, turned off: nothing receives events there, and an
    active endpoint would have every event of the workspace queue a delivery that fails."""
    from webhooks.models import WebhookEndpoint
    from webhooks.services.endpoints import endpoint_create, endpoint_disable

    if WebhookEndpoint.objects.filter(workspace=workspace, url=DEMO_WEBHOOK_URL).exists():
        return
    endpoint, _secret = endpoint_create(
        workspace=workspace,
        actor=owner,
        url=DEMO_WEBHOOK_URL,
        events=DEMO_WEBHOOK_EVENTS,
        description="Demo endpoint: an example URL that receives nothing.",
    )
    endpoint_disable(
        endpoint=endpoint,
        actor=owner,
        reason="Demo endpoint: point it at your own receiver, then turn it back on.",
    )


def _demo_leaderboard(workspace: Workspace, owner: User) -> None:
    """The demo workspaces take part in the leaderboard, once: a workspace whose owner left it
    (or joined) in the demo is not put back."""
    from leaderboard.models import ConsentRecord
    from leaderboard.services.consent import TERMS_VERSION, leaderboard_opt_in

    if ConsentRecord.objects.filter(workspace=workspace).exists():
        return
    leaderboard_opt_in(workspace=workspace, actor=owner, terms_version=TERMS_VERSION)


def _user(email: str, *, staff: bool = False) -> User:
    user = User.objects.filter(email=email).first()
    if user is None:
        user = User.objects.create_user(email=email, password=DEMO_PASSWORD)
    if staff and not (user.is_staff and user.is_superuser):
        user.is_staff = user.is_superuser = True
        user.save(update_fields=["is_staff", "is_superuser"])
    EmailAddress.objects.update_or_create(
        user=user, email=email, defaults={"verified": True, "primary": True}
    )
    return user


DEMO_SOURCES = [
    # name, address (documentation range), EHLO, days since warm-up start, state, pools
    ("mta-1", "198.51.100.10", "mta-1.trustgate.example", 120, "active", ["premium"]),
    ("mta-2", "198.51.100.11", "mta-2.trustgate.example", 20, "active", ["premium", "standard"]),
    ("mta-3", "198.51.100.12", "mta-3.trustgate.example", 3, "active", ["standard"]),
    ("mta-4", "198.51.100.13", "mta-4.trustgate.example", 60, "active", ["rehab"]),
    ("mta-5", "198.51.100.14", "mta-5.trustgate.example", 0, "standby", []),
]


def _demo_pools() -> None:

    from reputation.models import EgressSource, Pool, PoolMembership

    for name in Pool.Name.values:
        Pool.objects.get_or_create(name=name)
    today = timezone.localdate()
    for name, address, ehlo, age, state, pools in DEMO_SOURCES:
        source, _ = EgressSource.objects.get_or_create(
            name=name,
            defaults={
                "source_address": address,
                "ehlo_domain": ehlo,
                "state": state,
                "warmup_started_on": today - timedelta(days=age),
            },
        )
        for pool in pools:
            PoolMembership.objects.get_or_create(pool=Pool.objects.get(name=pool), source=source)


DEMO_SEEDS = [
    ("Morgan Lee", "google"),
    ("Priya Shah", "microsoft"),
    ("Tom Becker", "google"),
    ("Ana Costa", "other"),
]


class Command(BaseCommand):
    help = "Load demo data (safe to run again)."

    # The demo's automatic actions email alerts; keep them off the console (after commit too).
    @override_settings(EMAIL_BACKEND="django.core.mail.backends.locmem.EmailBackend")
    @transaction.atomic
    def handle(self, *args, **options) -> None:
        operator = _user(OPERATOR, staff=True)
        logins = [(OPERATOR, "operator (staff, /admin/)")]
        for name, people in WORKSPACES:
            owner_email = people[0][0]
            owner = _user(owner_email)
            workspace = Workspace.objects.filter(name=name, memberships__user=owner).first()
            if workspace is None:
                workspace = workspace_create(owner=owner, name=name)
            for email, role in people[1:]:
                Membership.objects.get_or_create(
                    workspace=workspace, user=_user(email), defaults={"role": role}
                )
            if (
                not BillingAccount.objects.filter(workspace=workspace)
                .exclude(comp_plan="")
                .exists()
            ):
                # The demo shows a workspace on a plan (its domains and mailboxes exceed the
                # evaluation level) without payments set up.
                plan_comp_set(
                    workspace=workspace, actor=operator, plan="pro", reason="Demo workspace"
                )
            for name in _demo_domains(workspace, owner):
                self.stdout.write(f"Skipped the demo domain {name}: another workspace holds it.")
            if workspace.name == WORKSPACES[0][0]:
                campaigner = (workspace, owner)
            _demo_leaderboard(workspace, owner)
            logins += [(email, f"{role} of {name}") for email, role in people]
        _demo_pools()
        # Today's campaign credits, as the hourly grant would give them (idempotent per day).
        credits_grant_all(day=timezone.now().date())
        if note := _demo_campaign(*campaigner):
            self.stdout.write(note)
        _demo_inbox(*campaigner)
        _demo_webhook(*campaigner)
        # The board as the periodic rebuild leaves it (a server started later rebuilds its own
        # copy on the first visit when its Redis is a process-local stand-in).
        board_rebuild()
        # Golden seeds, so that the demo's healthy mailboxes (all in one workspace) have partners.
        for number, (name, provider) in enumerate(DEMO_SEEDS, start=1):
            GoldenSeed.objects.get_or_create(
                address=f"seed{number}@seeds.trustgate.test",
                defaults={"display_name": name, "provider": provider, "daily_budget": 10},
            )
        # The demo's mailboxes work from the hour the demo was set up until midnight (UTC),
        # so that warm-up mail moves from the first minutes on (a customer's keep office
        # hours); the customer can change it on the Warming page.
        opens = time(min(timezone.now().hour, 22), 0)
        for mailbox in Mailbox.objects.filter(domain__is_demo=True, warmup__isnull=True):
            WarmupSettings.objects.create(
                mailbox=mailbox,
                started_on=timezone.localdate(mailbox.created_at),
                window_start=opens,
                window_end=time(23, 59),
            )
        # Today's and tomorrow's warm-up plans, as the hourly tick makes them (each day once).
        for day in (timezone.now().date(), timezone.now().date() + timedelta(days=1)):
            warming_day_save(day=day)
        from reputation.core.pool_map import pool_map_export

        transaction.on_commit(pool_map_export)
        self.stdout.write(f"Demo logins (password for all: {DEMO_PASSWORD}):")
        for email, what in logins:
            self.stdout.write(f"  {email:<26} {what}")
