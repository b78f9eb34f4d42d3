"""Campaign dispatch benchmark: messages per second selected (window, caps, rotation), rendered
(merge fields and spintax), gated (tier, plan, suppressions, one credit each) and handed to the
HTTP injection stand-in, for one campaign of 100,000 leads over 300 mailboxes; against the naive
path (one dispatch decision per transaction: every lead claimed, gated, charged and reserved on
its own, then handed over on its own), in the same run. Run with `make bench`."""

import atexit
import os
import subprocess
import sys
import time
from datetime import time as clock
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.support import free_port, fresh_database  # noqa: E402

LEADS = int(os.environ.get("BENCH_LEADS", 100_000))
NAIVE_LEADS = max(LEADS // 100, 200)
MAILBOXES = 300
DOMAINS = 10
BODY = (
    'Hi {{ first_name | default: "there" }},\n\n{I noticed|I saw} that {{ company }} is '
    "{growing|hiring}. {Would a short call|Would 15 minutes} next week make sense?\n\n"
    "{Best|Cheers},\n{{ sender_first_name }}\n\nUnsubscribe: {{ unsubscribe_url }}\n"
)


def main() -> None:
    fresh_database("trustgate_bench_dispatch")
    import logging

    from django.conf import settings
    from django.utils import timezone

    from accounts.models import User
    from accounts.services import workspace_create
    from billing.models import BillingAccount, CreditAccount
    from campaigns.models import (
        Campaign,
        CampaignLead,
        CampaignStatus,
        CampaignStep,
        Lead,
        StepVariant,
    )
    from campaigns.services.dispatch import campaigns_dispatch
    from sending.models import Mailbox, Message, MessageState, SendingDomain
    from sending.services.outbound import messages_hand_over

    logging.getLogger("httpx").setLevel(logging.WARNING)
    port = free_port()
    node = subprocess.Popen(
        [sys.executable, "-m", "config.embedded_mta", str(port)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    atexit.register(node.terminate)
    settings.KUMO_INJECT_URL = node.stdout.readline().strip()
    settings.OUTBOUND_TRANSPORT = "kumo_http"
    settings.CAMPAIGN_MAILBOX_CEILING = 10**6
    settings.CAMPAIGN_DOMAIN_DAILY_CAP = 10**6
    settings.CAMPAIGN_PROVIDER_DAILY_CAPS = {}

    owner = User.objects.create_user(email="bench@bench.test")
    workspace = workspace_create(owner=owner, name="Bench")
    BillingAccount.objects.create(workspace=workspace, plan="pro", status="active")
    CreditAccount.objects.update_or_create(workspace=workspace, defaults={"earned": 10**7})
    domains = [
        SendingDomain.objects.create(
            workspace=workspace,
            name=f"bench-sender{d}.com",
            status="verified",
            tier="standard",
            trust_score=80,
            score_provisional=False,
        )
        for d in range(DOMAINS)
    ]
    mailboxes = Mailbox.objects.bulk_create(
        Mailbox(
            domain=domains[i % DOMAINS],
            local_part=f"rep{i}",
            display_name=f"Rep {i}",
            connection="platform",
            daily_limit=10**6,
        )
        for i in range(MAILBOXES)
    )

    def campaign_with_leads(name: str, count: int) -> Campaign:
        campaign = Campaign.objects.create(
            workspace=workspace,
            name=name,
            status=CampaignStatus.RUNNING,
            send_days=list(range(7)),
            window_start=clock(0, 0),
            window_end=clock(23, 59, 59),
            daily_limit=10**7,
            daily_new_leads=10**7,
        )
        step = CampaignStep.objects.create(campaign=campaign, position=1)
        for label, opener in (("A", "Quick question, {{ first_name }}"), ("B", "{{ company }}?")):
            StepVariant.objects.create(step=step, label=label, subject=opener, body=BODY)
        campaign.mailboxes.set(mailboxes)
        leads = Lead.objects.bulk_create(
            (
                Lead(
                    workspace=workspace,
                    email=f"{name}{i}@prospect{i % 997}.test",
                    first_name=f"Lee{i}",
                    company=f"Company {i}",
                )
                for i in range(count)
            ),
            batch_size=5000,
        )
        due = timezone.now()
        CampaignLead.objects.bulk_create(
            (CampaignLead(campaign=campaign, lead=lead, next_at=due) for lead in leads),
            batch_size=5000,
        )
        return campaign

    campaign_with_leads("warm", 300)
    campaigns_dispatch()
    messages_hand_over(limit=5000)
    Campaign.objects.update(status=CampaignStatus.COMPLETED)

    campaign_with_leads("fast", LEADS)
    started = time.perf_counter()
    sent = 0
    while True:
        summary = campaigns_dispatch(limit=5000)
        if not summary.claimed:
            break
        sent += summary.sent
        while messages_hand_over(limit=5000).claimed:
            pass
    fast = time.perf_counter() - started
    handed = Message.objects.filter(state=MessageState.HANDED_OVER, campaign_ref__gt="").count()
    assert sent == LEADS, sent
    fast_rate = LEADS / fast
    print(
        f"batched: {LEADS:,} leads over {MAILBOXES} mailboxes selected, rendered, gated and "
        f"injected in {fast:.2f} s = {fast_rate:,.0f} messages/s"
    )
    Campaign.objects.update(status=CampaignStatus.COMPLETED)

    campaign_with_leads("naive", NAIVE_LEADS)
    started = time.perf_counter()
    for _ in range(NAIVE_LEADS):
        campaigns_dispatch(limit=1)
        messages_hand_over(limit=1)
    naive = time.perf_counter() - started
    naive_rate = NAIVE_LEADS / naive
    print(
        f"naive: one decision, reservation and hand-over per message: {NAIVE_LEADS:,} in "
        f"{naive:.2f} s = {naive_rate:,.0f} messages/s"
    )
    handed = Message.objects.filter(state=MessageState.HANDED_OVER).count()
    assert handed == 300 + LEADS + NAIVE_LEADS, handed
    ratio = fast_rate / naive_rate
    print(f"ratio: {ratio:.1f}x faster")
    met = fast_rate >= 1000 and ratio >= 10
    print(f"target (>= 1,000 messages/s and >= 10x): {'met' if met else 'NOT met'}")


if __name__ == "__main__":
    main()
