"""A dispatcher worker killed mid-way never causes a second send: killed while it holds claimed
rows (nothing of its run is kept), or after the MTA took the messages and before the hand-over
was booked (the outbound path settles it from the MTA's own records and duplicate drop)."""

import os
import signal
import subprocess
import sys
import threading
import time
from datetime import timedelta
from pathlib import Path

import psycopg
import pytest
from django.conf import settings as django_settings
from django.db import connection
from django.utils import timezone

from billing.models import CreditAccount, CreditEntry
from campaigns.models import CampaignLead, CampaignLeadState, CampaignSend, CampaignStatus
from campaigns.services.dispatch import campaigns_dispatch
from sending.models import Message, MessageState
from sending.services.outbound import messages_hand_over, messages_reconcile
from tests.campaigns import builders
from tests.sending.test_outbound import mta, receiver  # noqa: F401  (shared fixtures)

ROOT = Path(__file__).resolve().parents[2]
LEADS = 6

WORKER = """
import django
django.setup()
from campaigns.services.dispatch import campaigns_dispatch
from sending.services.outbound import messages_hand_over
campaigns_dispatch()
while messages_hand_over().claimed:
    pass
"""


def _worker(settings) -> subprocess.Popen:
    db = settings.DATABASES["default"]
    env = dict(
        os.environ,
        DATABASE_URL=f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}",
        DJANGO_SETTINGS_MODULE="config.settings",
        KUMO_INJECT_URL=settings.KUMO_INJECT_URL,
        KUMO_INJECT_USERNAME=settings.KUMO_INJECT_USERNAME,
        KUMO_INJECT_PASSWORD=settings.KUMO_INJECT_PASSWORD,
        OUTBOUND_TRANSPORT="kumo_http",
        CELERY_TASK_ALWAYS_EAGER="true",
        EMBEDDED_SCHEDULER="false",
    )
    return subprocess.Popen(
        [sys.executable, "-c", WORKER],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


@pytest.fixture
def campaign(owner, receiver):  # noqa: F811
    receiver.server.messages.clear()  # the receiver outlives one test
    workspace = owner.workspace
    builders.paid(workspace, credits=100)
    domain = builders.sending_domain(workspace, "acme-sales.com")
    senders = builders.mailboxes(domain, 2)
    leads = builders.lead_list(workspace, [f"lead{i}@prospect{i}.test" for i in range(LEADS)])
    made = builders.campaign(
        workspace,
        steps=((0, (("Quick question", builders.BODY),)),),
        senders=senders,
        lists=[leads],
        status=CampaignStatus.RUNNING,
    )
    due = timezone.now() - timedelta(minutes=1)
    CampaignLead.objects.bulk_create(
        CampaignLead(campaign=made, lead=lead, next_at=due) for lead in leads.leads.all()
    )
    return made


def _each_sent_once(campaign, receiver) -> None:  # noqa: F811
    messages = list(Message.objects.filter(campaign_ref=campaign.public_id))
    assert len(messages) == LEADS
    assert {m.recipient for m in messages} == {f"lead{i}@prospect{i}.test" for i in range(LEADS)}
    for message in messages:
        assert receiver.count(message.message_id) == 1
    assert CampaignSend.objects.filter(campaign=campaign).count() == LEADS
    assert set(CampaignLead.objects.values_list("state", flat=True)) == {CampaignLeadState.FINISHED}
    spent = CreditEntry.objects.filter(workspace=campaign.workspace, amount__lt=0)
    assert spent.count() == LEADS
    assert CreditAccount.objects.get(workspace=campaign.workspace).balance == 100 - LEADS


@pytest.mark.django_db(transaction=True)
def test_a_dispatcher_killed_while_it_holds_claimed_rows_leaves_nothing_half_sent(
    campaign,
    mta,  # noqa: F811
    receiver,  # noqa: F811
    settings,
):
    # The test holds the workspace's credit row: the worker claims the due rows, renders them,
    # then waits on that lock inside its transaction, where it is killed.
    db = settings.DATABASES["default"]
    dsn = f"host={db['HOST']} port={db['PORT']} user={db['USER']} dbname={db['NAME']}"
    with psycopg.connect(dsn) as blocker:
        blocker.execute(
            "SELECT 1 FROM billing_creditaccount WHERE workspace_id = %s FOR UPDATE",
            [campaign.workspace_id],
        )
        worker = _worker(settings)
        try:
            _wait_for_lock_waiter(blocker, worker)
        finally:
            worker.send_signal(signal.SIGKILL)
            worker.wait(timeout=10)
        blocker.rollback()

    assert not CampaignSend.objects.exists() and not Message.objects.exists()
    assert CampaignLead.objects.filter(next_step=1, state=CampaignLeadState.WAITING).count() == (
        LEADS
    )
    # The killed session's locks go with it: the next run takes the rows and sends each once.
    assert campaigns_dispatch().sent == LEADS
    while messages_hand_over().claimed:
        pass
    assert campaigns_dispatch().sent == 0
    _each_sent_once(campaign, receiver)


@pytest.mark.django_db(transaction=True)
def test_a_dispatcher_killed_after_the_mta_took_the_messages_sends_nothing_twice(
    campaign,
    mta,  # noqa: F811
    receiver,  # noqa: F811
    settings,
):
    mta.stall = threading.Event()  # the node takes a batch, then its answer is held
    worker = _worker(settings)
    try:
        with receiver.server.arrived:
            assert receiver.server.arrived.wait_for(
                lambda: len(receiver.server.messages) >= 1, timeout=30
            ), worker.stderr.read().decode() if worker.poll() is not None else "no delivery"
    finally:
        worker.send_signal(signal.SIGKILL)
        worker.wait(timeout=10)
        mta.stall.set()
        mta.stall = None
    arrived = len(receiver.server.messages)
    # The dispatch was committed (sends, credits, next steps); no hand-over was booked.
    assert Message.objects.count() == LEADS
    assert set(Message.objects.values_list("state", flat=True)) <= {
        MessageState.SENDING,
        MessageState.RESERVED,
    }
    assert Message.objects.filter(state=MessageState.SENDING).count() >= arrived
    assert campaigns_dispatch().claimed == 0
    assert messages_hand_over().claimed <= LEADS - arrived  # claimed ones wait for their lease
    assert len(receiver.server.messages) <= LEADS

    # (When the node's records arrive first they prove what went: tests/sending covers that.)
    later = timezone.now() + timedelta(seconds=django_settings.OUTBOUND_HANDOVER_LEASE_SECONDS + 60)
    counts = messages_reconcile(now=later)
    assert counts["failed"] == 0
    assert counts["resent"] >= arrived  # offered again: the node drops the copies it has
    while messages_hand_over(now=later).claimed:
        pass
    assert set(Message.objects.values_list("state", flat=True)) <= {
        MessageState.HANDED_OVER,
        MessageState.DELIVERED,
    }
    _each_sent_once(campaign, receiver)


def _wait_for_lock_waiter(
    blocker: psycopg.Connection, worker: subprocess.Popen, timeout: float = 30
) -> None:
    """Until the worker waits on a lock the blocker holds."""
    deadline = time.monotonic() + timeout
    holder = blocker.info.backend_pid
    while time.monotonic() < deadline:
        if worker.poll() is not None:
            raise AssertionError(f"the worker ended: {worker.stderr.read().decode()}")
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE %s = ANY(pg_blocking_pids(pid))",
                [holder],
            )
            if cursor.fetchone()[0]:
                return
        time.sleep(0.05)
    raise AssertionError("the worker never reached the credit lock")
