"""A planned day becomes warm-up messages in the outbound path, once."""

from datetime import UTC, datetime, time, timedelta

import pytest
from django.utils import timezone

from accounts.services import workspace_create
from sending.models import DomainStatus, Mailbox, Message, MessageKind, MessageState, SendingDomain
from tests.factories import UserFactory
from warming.content import WARMUP_HEADER, find_code
from warming.models import GoldenSeed, WarmupDay, WarmupSend
from warming.services import warming_day_save

pytestmark = pytest.mark.django_db


@pytest.fixture
def network():
    for i in range(4):
        workspace = workspace_create(owner=UserFactory(), name=f"Company {i}")
        domain = SendingDomain.objects.create(
            workspace=workspace,
            name=f"company{i}.com",
            status=DomainStatus.VERIFIED,
            tier="premium",
            score_provisional=False,
        )
        for local in ("alex", "sam"):
            Mailbox.objects.create(
                domain=domain, local_part=local, connection="platform", display_name=f"{local} {i}"
            )
    GoldenSeed.objects.create(address="seed@gmail.com", provider="google", daily_budget=2)


def test_a_day_is_planned_once_into_reserved_warm_up_messages(network):
    day = timezone.localdate() + timedelta(days=1)
    now = datetime.combine(day, time(0, 5), tzinfo=UTC)
    marker = warming_day_save(day=day, now=now)
    assert marker is not None and marker.sends > 0
    sends = list(WarmupSend.objects.select_related("message"))
    assert len(sends) == marker.sends
    from_mailboxes = [s for s in sends if s.sender_id]
    assert from_mailboxes and all(s.message is not None for s in from_mailboxes)
    for send in from_mailboxes:
        message = send.message
        assert message.kind == MessageKind.WARMUP and message.state == MessageState.RESERVED
        assert message.headers[WARMUP_HEADER] == send.code
        assert find_code(message.text_body) == send.code
        assert message.next_attempt_at == send.send_at >= now
        assert message.sender != message.recipient
    assert any(s.recipient_seed_id or s.sender_seed_id for s in sends)
    assert warming_day_save(day=day, now=now) is None  # planned once
    assert WarmupSend.objects.count() == len(sends)
    assert Message.objects.count() == len(from_mailboxes)


def test_sends_whose_working_day_has_passed_are_dropped_not_burst(network):
    day = timezone.localdate() + timedelta(days=1)
    late = datetime.combine(day, time(23, 0), tzinfo=UTC)
    marker = warming_day_save(day=day, now=late)
    assert marker is not None and marker.sends == 0 and marker.unplaced > 0
    assert not Message.objects.exists()
    assert WarmupDay.objects.get().day == day
