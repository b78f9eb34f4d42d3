"""The agent on platform mailboxes: warm-up mail goes out through the MTA stand-in to the
platform's MX, lands in the platform's Dovecot (a spam filter files some into Junk), and the
agent logs in as the store's master user to rescue, read, answer and file it."""

import secrets

import pytest

from accounts.services import workspace_create
from reputation.models import Event, EventKind
from sending.models import DomainStatus, Mailbox, MessageState, SendingDomain
from sending.services.outbound import messages_hand_over
from tests.factories import UserFactory
from tests.warming.network import EVENING, MORNING, TOMORROW
from warming.models import Placement, Step, WarmupSend
from warming.services import warming_day_save
from warming.services.agent import warming_engage

pytestmark = pytest.mark.django_db


@pytest.fixture
def platform_network(agent_settings, platform_mta) -> list[Mailbox]:
    suffix = secrets.token_hex(3)
    mailboxes = []
    for name in ("west", "north", "south"):
        workspace = workspace_create(owner=UserFactory(), name=f"{name} co")
        domain = SendingDomain.objects.create(
            workspace=workspace,
            name=f"{name}-{suffix}.test",
            status=DomainStatus.VERIFIED,
            tier="premium",
            score_provisional=False,
            trust_score=90.0,
        )
        mailboxes.append(
            Mailbox.objects.create(
                domain=domain, local_part="kim", connection="platform", daily_limit=2
            )
        )
    return mailboxes


def test_platform_mailboxes_warm_each_other_through_the_platform_store(
    platform_network, platform_mail
):
    platform_mail.junk_rule = lambda sender, recipient, data: recipient.startswith("kim@north-")
    assert warming_day_save(day=TOMORROW, now=MORNING) is not None
    assert messages_hand_over(now=EVENING).claimed
    sends = list(WarmupSend.objects.select_related("message", "recipient__domain"))
    assert sends and all(s.message.state == MessageState.HANDED_OVER for s in sends)
    WarmupSend.objects.update(will_reply=True)

    run = warming_engage(now=EVENING)
    assert run.login_failures == 0 and run.read == len(sends)
    for send in WarmupSend.objects.filter(parent=None).select_related("recipient__domain"):
        to_north = send.recipient.domain.name.startswith("north-")
        assert send.step == Step.DONE
        assert send.placement == (Placement.SPAM if to_north else Placement.INBOX)
        where = platform_mail.find(send.recipient.address, send.message.message_id)
        assert list(where) == ["Archive"]
        assert "\\Seen" in where["Archive"].flags
        expected = {EventKind.OPENED, EventKind.REPLIED}
        if to_north:
            expected |= {EventKind.LANDED_IN_SPAM, EventKind.RESCUED}
        kinds = Event.objects.filter(source_key__startswith=f"warmup:{send.pk}:")
        assert set(kinds.values_list("kind", flat=True)) == expected
    # The answers go out through the MTA in the thread and are read on the other side.
    assert messages_hand_over(now=EVENING).claimed == len(sends)
    second = warming_engage(now=EVENING.replace(hour=23, minute=59))
    assert second.read == len(sends)
    assert not WarmupSend.objects.exclude(step=Step.DONE).exists()
