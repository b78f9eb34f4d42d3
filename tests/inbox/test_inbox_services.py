"""The inbox's reads and writes against PostgreSQL, Redis (the socket's channel layer) and a real
SMTP receiver (answers go out through the outbound path's SMTP relay transport)."""

import asyncio

import pytest
from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer

from accounts.models import AuditLog
from accounts.services import workspace_group
from campaigns.selectors.campaigns import campaign_stats
from config.errors import ApplicationError
from inbox.models import Reply, ReplyLabel, SystemLabel
from inbox.selectors import reply_answers, reply_list, unread_count
from inbox.services.inbox import (
    reply_label_create,
    reply_label_delete,
    reply_label_rename,
    reply_label_set,
    reply_labels_ensure,
    reply_mark_read,
    reply_mark_unread,
    reply_send,
    reply_subject,
)
from sending.models import Mailbox, Message, MessageKind
from sending.services.outbound import messages_hand_over
from tests.inbox.inbox_fixtures import reply_to, sent, world

pytestmark = pytest.mark.django_db


@pytest.fixture
def relay(settings, smtp_server):
    settings.OUTBOUND_TRANSPORT = "smtp_relay"
    settings.SMTP_RELAY_HOST, settings.SMTP_RELAY_PORT = smtp_server.host, smtp_server.port
    settings.SMTP_RELAY_IS_KUMOMTA = False
    smtp_server.messages.clear()
    return smtp_server


@pytest.fixture
def acme(owner):
    return world(owner.workspace)


def _label(workspace, system: str) -> ReplyLabel:
    reply_labels_ensure(workspace=workspace)
    return ReplyLabel.objects.get(workspace=workspace, system=system)


# --- selectors ---------------------------------------------------------------------------------


def test_it_lists_replies_newest_first_and_filters_by_campaign_mailbox_label_kind_and_unread(
    acme, stranger
):
    box1, box2 = acme.mailboxes
    first = reply_to(sent(acme.campaign, "ana@globex.test", mailbox=box1), minutes=10)
    second = reply_to(sent(acme.campaign, "bo@initech.test", mailbox=box2), minutes=20, read=True)
    ooo = reply_to(
        sent(acme.other_campaign, "cy@hooli.test", mailbox=box1), kind="out_of_office", minutes=30
    )
    theirs = world(stranger.workspace, "globex-mail.com")
    reply_to(sent(theirs.campaign, "ana@globex.test", mailbox=theirs.mailboxes[0]))
    ws = acme.workspace

    assert list(reply_list(workspace=ws)) == [ooo, second, first]
    assert list(reply_list(workspace=ws, campaign=acme.campaign)) == [second, first]
    assert list(reply_list(workspace=ws, mailbox=box1)) == [ooo, first]
    assert list(reply_list(workspace=ws, kind="out_of_office")) == [ooo]
    assert list(reply_list(workspace=ws, unread_only=True)) == [ooo, first]
    interested = _label(ws, SystemLabel.INTERESTED)
    reply_label_set(reply=second, actor=None, add=[interested])
    assert list(reply_list(workspace=ws, label=interested)) == [second]
    # Another workspace's campaign or mailbox as a filter finds nothing of theirs or ours.
    assert list(reply_list(workspace=ws, campaign=theirs.campaign)) == []
    assert list(reply_list(workspace=ws, mailbox=theirs.mailboxes[0])) == []
    # Unread: human replies only (the out-of-office is unread but not counted).
    assert unread_count(workspace=ws) == 1
    assert unread_count(workspace=stranger.workspace) == 1


def test_the_list_loads_in_two_queries_however_many_replies(acme, django_assert_num_queries):
    interested = _label(acme.workspace, SystemLabel.INTERESTED)
    for i in range(12):
        reply = reply_to(sent(acme.campaign, f"p{i}@corp{i}.test", mailbox=acme.mailboxes[i % 2]))
        reply_label_set(reply=reply, actor=None, add=[interested])
    with django_assert_num_queries(2):
        rows = list(reply_list(workspace=acme.workspace))
        shown = [
            (r.mailbox.address, r.campaign.name, r.lead.email, [lb.name for lb in r.labels.all()])
            for r in rows
        ]
    assert len(shown) == 12 and shown[0][3] == ["Interested"]


# --- labels --------------------------------------------------------------------------------------


def test_the_five_built_in_labels_come_once_and_cannot_be_renamed_or_deleted(acme, owner):
    ws = acme.workspace
    first = reply_labels_ensure(workspace=ws)
    again = reply_labels_ensure(workspace=ws)
    assert [lb.system for lb in first] == list(SystemLabel.values)
    assert [lb.pk for lb in again] == [lb.pk for lb in first]
    built_in = first[0]
    with pytest.raises(ApplicationError, match="built-in label: it cannot be renamed"):
        reply_label_rename(label=built_in, actor=owner.user, name="Hot")
    with pytest.raises(ApplicationError, match="cannot be deleted"):
        reply_label_delete(label=built_in, actor=owner.user)
    assert ReplyLabel.objects.filter(workspace=ws).count() == 5


def test_custom_labels_are_unique_per_workspace_ignoring_case(acme, owner, stranger):
    ws = acme.workspace
    label = reply_label_create(workspace=ws, actor=owner.user, name="  Call  back ")
    assert label.name == "Call back"
    with pytest.raises(ApplicationError, match="already a label called"):
        reply_label_create(workspace=ws, actor=owner.user, name="call BACK")
    with pytest.raises(ApplicationError, match="already a label called"):
        reply_label_create(workspace=ws, actor=owner.user, name="interested")
    with pytest.raises(ApplicationError, match="needs a name"):
        reply_label_create(workspace=ws, actor=owner.user, name="   ")
    with pytest.raises(ApplicationError, match="too long"):
        reply_label_create(workspace=ws, actor=owner.user, name="x" * 61)
    # Another workspace may use the same name.
    reply_label_create(workspace=stranger.workspace, actor=stranger.user, name="Call back")
    other = reply_label_create(workspace=ws, actor=owner.user, name="Later")
    with pytest.raises(ApplicationError, match="already a label called"):
        reply_label_rename(label=other, actor=owner.user, name="CALL BACK")
    reply_label_rename(label=other, actor=owner.user, name="Next quarter")
    assert sorted(
        ReplyLabel.objects.filter(workspace=ws, system="").values_list("name", flat=True)
    ) == ["Call back", "Next quarter"]
    actions = list(
        AuditLog.objects.filter(workspace=ws).order_by("id").values_list("action", flat=True)
    )
    assert actions == ["reply_label.create", "reply_label.create", "reply_label.rename"]


def test_labels_toggle_interested_and_not_interested_exclude_each_other(acme, owner, stranger):
    reply = reply_to(sent(acme.campaign, "ana@globex.test", mailbox=acme.mailboxes[0]))
    ws = acme.workspace
    interested = _label(ws, SystemLabel.INTERESTED)
    not_interested = _label(ws, SystemLabel.NOT_INTERESTED)
    meeting = _label(ws, SystemLabel.MEETING_BOOKED)

    after = reply_label_set(reply=reply, actor=owner.user, add=[not_interested, meeting])
    assert {lb.system for lb in after} == {"not_interested", "meeting_booked"}
    after = reply_label_set(reply=reply, actor=owner.user, add=[interested])
    assert {lb.system for lb in after} == {"interested", "meeting_booked"}
    after = reply_label_set(reply=reply, actor=owner.user, remove=[meeting])
    assert [lb.system for lb in after] == ["interested"]
    log = AuditLog.objects.filter(action="reply.label").order_by("id").last()
    assert log.after == {"added": [], "removed": ["Meeting booked"]}
    assert log.actor == owner.user and log.workspace == ws

    theirs = _label(stranger.workspace, SystemLabel.INTERESTED)
    with pytest.raises(ApplicationError, match="No such label"):
        reply_label_set(reply=reply, actor=owner.user, add=[theirs])
    assert [lb.system for lb in reply.labels.all()] == ["interested"]
    # A label deleted later simply leaves the replies.
    own = reply_label_create(workspace=ws, actor=owner.user, name="Pricing")
    reply_label_set(reply=reply, actor=owner.user, add=[own])
    reply_label_delete(label=own, actor=owner.user)
    assert [lb.system for lb in Reply.objects.get(pk=reply.pk).labels.all()] == ["interested"]


# --- read state and the live count ---------------------------------------------------------------


def test_mark_read_and_unread_push_the_new_count_to_the_workspace_socket(
    acme, django_capture_on_commit_callbacks
):
    reply = reply_to(sent(acme.campaign, "ana@globex.test", mailbox=acme.mailboxes[0]))
    reply_to(sent(acme.campaign, "bo@initech.test", mailbox=acme.mailboxes[0]))
    layer = get_channel_layer()
    channel = async_to_sync(layer.new_channel)()
    async_to_sync(layer.group_add)(workspace_group(acme.workspace), channel)

    async def receive() -> dict:
        return await asyncio.wait_for(layer.receive(channel), timeout=5)

    with django_capture_on_commit_callbacks(execute=True):
        assert reply_mark_read(reply=reply) is True
    pushed = async_to_sync(receive)()
    assert pushed["event"] == "inbox_unread" and pushed["payload"] == {"unread": 1}

    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        assert reply_mark_read(reply=reply) is False  # already read: nothing changes
    assert callbacks == []

    with django_capture_on_commit_callbacks(execute=True):
        assert reply_mark_unread(reply=reply) is True
    assert async_to_sync(receive)()["payload"] == {"unread": 2}
    reply.refresh_from_db()
    assert reply.read_at is None
    async_to_sync(layer.group_discard)(workspace_group(acme.workspace), channel)


# --- answering -----------------------------------------------------------------------------------


def test_an_answer_goes_in_thread_from_the_same_mailbox_through_smtp(acme, owner, relay):
    box = acme.mailboxes[1]
    first = sent(acme.campaign, "ana@globex.test", mailbox=box, subject="Hello Acme")
    follow = sent(acme.campaign, "ana@globex.test", mailbox=box, step=2, variant="A")
    follow.message.subject = "Re: Hello Acme"
    follow.message.save()
    reply = reply_to(
        follow, subject="RE: Re: Hello Acme", text="Yes please.\nCall me Tuesday.", from_name="Ana"
    )

    message = reply_send(reply=reply, actor=owner.user, body="Great, Tuesday at 10 works.")
    assert message.kind == MessageKind.REPLY and message.mailbox == box
    messages_hand_over(message_ids=[message.pk])
    got = relay.wait_for("ana@globex.test")
    assert got["Subject"] == "Re: Hello Acme"
    assert got["In-Reply-To"] == f"<{reply.message_id}>"
    assert got["References"].split() == [
        f"<{first.message.message_id}>",
        f"<{follow.message.message_id}>",
        f"<{reply.message_id}>",
    ]
    assert box.address in got["From"]
    body = relay.body(got).replace("\r\n", "\n")
    assert body.startswith("Great, Tuesday at 10 works.\n\nOn Mon 02 Nov 2026")
    assert "Ana wrote:" in body and "> Yes please.\n> Call me Tuesday." in body
    reply.refresh_from_db()
    assert reply.read_at is not None
    assert reply_answers(reply=reply) == [Message.objects.get(pk=message.pk)]
    log = AuditLog.objects.get(action="reply.send")
    assert log.after["to"] == "ana@globex.test" and log.actor == owner.user


def test_a_rehab_domain_may_answer_someone_who_wrote_first(owner, relay):
    rehab = world(owner.workspace, "acme-rehab.com", tier="rehab", score=40.0)
    reply = reply_to(sent(rehab.campaign, "ana@globex.test", mailbox=rehab.mailboxes[0]))
    message = reply_send(reply=reply, actor=owner.user, body="Thanks for writing back.")
    messages_hand_over(message_ids=[message.pk])
    assert relay.wait_for("ana@globex.test")["Subject"] == "Re: Hello Acme"


@pytest.mark.parametrize(
    ("change", "error"),
    [
        ("paused", "rep1@acme-sales.com cannot answer while it is paused: resume it first"),
        ("deleted", "mailbox this reply arrived in was deleted"),
        ("cooldown", "its domain acme-sales.com is cool-down"),
        ("quarantine", "is in quarantine"),
        ("bounce", "delivery failure cannot be answered"),
        ("unsubscribe", "unsubscribe request cannot be answered"),
        ("empty", "Write something to send"),
    ],
)
def test_an_answer_is_refused_clearly_and_nothing_is_queued(acme, owner, relay, change, error):
    box = acme.mailboxes[0]
    kind = change if change in ("bounce", "unsubscribe") else "human"
    reply = reply_to(sent(acme.campaign, "ana@globex.test", mailbox=box), kind=kind)
    if change == "paused":
        Mailbox.objects.filter(pk=box.pk).update(status="paused")
    elif change == "deleted":
        box.delete()
    elif change == "cooldown":
        box.domain.__class__.objects.filter(pk=box.domain_id).update(status="cooldown")
    elif change == "quarantine":
        box.domain.__class__.objects.filter(pk=box.domain_id).update(tier="quarantine")
    reply = Reply.objects.select_related("mailbox__domain").get(pk=reply.pk)
    before = Message.objects.count()
    with pytest.raises(ApplicationError, match=error):
        reply_send(reply=reply, actor=owner.user, body="" if change == "empty" else "Hello")
    assert Message.objects.count() == before
    assert not AuditLog.objects.filter(action="reply.send").exists()


def test_reply_subject_never_doubles_the_prefix():
    assert reply_subject("Hello") == "Re: Hello"
    assert reply_subject("Re: Hello") == "Re: Hello"
    assert reply_subject("RE: re:  Hello") == "Re: Hello"
    assert reply_subject("AW: Hallo") == "Re: Hallo"
    assert reply_subject("Rebate offer") == "Re: Rebate offer"
    assert reply_subject("") == "Re:"


# --- numbers -------------------------------------------------------------------------------------


def test_positive_replies_count_once_per_message_by_step_and_variant(acme, stranger):
    c, box = acme.campaign, acme.mailboxes[0]
    interested = _label(acme.workspace, SystemLabel.INTERESTED)
    a1 = sent(c, "a1@x.test", mailbox=box, variant="A")
    a2 = sent(c, "a2@x.test", mailbox=box, variant="A")
    b1 = sent(c, "b1@x.test", mailbox=box, variant="B")
    sent(c, "b2@x.test", mailbox=box, variant="B")  # no reply
    f1 = sent(c, "a1@x.test", mailbox=box, step=2, variant="A")
    for reply in (reply_to(a1), reply_to(a1, minutes=90), reply_to(b1)):
        reply_label_set(reply=reply, actor=None, add=[interested])
    reply_to(a2)
    ooo = reply_to(f1, kind="out_of_office")  # not a person's reply
    reply_label_set(reply=ooo, actor=None, add=[interested])
    other = reply_to(sent(acme.other_campaign, "z@x.test", mailbox=box))  # another campaign
    reply_label_set(reply=other, actor=None, add=[interested])

    stats = campaign_stats(campaign=c)
    step1, step2 = stats.steps
    a, b = step1.variants
    assert stats.totals.positive == 2
    assert (a.numbers.positive, b.numbers.positive) == (1, 1)
    assert step2.numbers.positive == 0
    assert a.numbers.positive_rate == 50.0
