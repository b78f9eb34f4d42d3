"""A bounce reaches `event_record` only for a message the platform sent (a delivery report
found in the sender's mailbox); anything else about bounces comes from the MTA."""

import pytest

from config.errors import ApplicationError
from reputation.models import Event, EventKind
from reputation.services.events import event_record
from tests.sending.test_outbound import alex, reserve  # noqa: F401  (fixtures)


def test_a_bounce_needs_the_sent_message_and_is_tied_to_it(alex):  # noqa: F811
    (message,) = reserve(alex)
    with pytest.raises(ApplicationError, match="come from the MTA"):
        event_record(domain=alex.domain, kind=EventKind.BOUNCE_HARD, source_key="b:1")
    event = event_record(
        domain=alex.domain,
        kind=EventKind.BOUNCE_HARD,
        source_key="b:1",
        recipient=message.recipient,
        outbound=message,
    )
    assert event is not None and Event.objects.get(outbound=message).kind == EventKind.BOUNCE_HARD
    # The same report read again records nothing more.
    assert (
        event_record(
            domain=alex.domain, kind=EventKind.BOUNCE_HARD, source_key="b:1", outbound=message
        )
        is None
    )
