"""The inbox pages through the Django client: the two-pane list with its filters, the thread,
label toggles and read state (plain forms and HTMX), answers, labels, isolation, query counts."""

import pytest
from django.template import Context, Template
from django.urls import reverse

from inbox.models import Reply, ReplyLabel, SystemLabel
from inbox.services.inbox import reply_label_set, reply_labels_ensure
from sending.models import Message, MessageKind
from tests.inbox.inbox_fixtures import reply_to, sent, world

pytestmark = pytest.mark.django_db


@pytest.fixture
def acme(owner):
    return world(owner.workspace)


def _url(workspace, name="inbox", *args) -> str:
    return reverse(name, args=[workspace.public_id, *args])


def _rows(html: str) -> int:
    return html.count('<li id="row-')


def test_the_inbox_lists_replies_with_sender_subject_campaign_mailbox_and_unread_in_bold(
    acme, owner_client
):
    box = acme.mailboxes[0]
    unread = reply_to(
        sent(acme.campaign, "ana@globex.test", mailbox=box), from_name="Ana Lopez", minutes=5
    )
    reply_to(sent(acme.other_campaign, "bo@initech.test", mailbox=box), read=True, minutes=1)
    page = owner_client.get(_url(acme.workspace))
    html = page.content.decode()
    assert page.status_code == 200 and _rows(html) == 2
    assert f'id="row-{unread.public_id}" class="inbox-row unread"' in html
    assert "Ana Lopez" in html and "Re: Hello Acme" in html and "Spring outreach" in html
    assert box.address in html and "Sounds interesting, tell me more." in html
    assert "Pick a reply to read it" in html


def test_filters_narrow_the_list_and_bad_or_foreign_values_get_a_clear_error(
    acme, owner_client, stranger
):
    box1, box2 = acme.mailboxes
    reply_to(sent(acme.campaign, "ana@globex.test", mailbox=box1))
    other = reply_to(sent(acme.other_campaign, "bo@initech.test", mailbox=box2), kind="auto_reply")
    ws = acme.workspace
    html = owner_client.get(_url(ws), {"campaign": acme.other_campaign.public_id}).content.decode()
    assert _rows(html) == 1 and other.public_id in html
    assert _rows(owner_client.get(_url(ws), {"mailbox": box1.pk}).content.decode()) == 1
    assert _rows(owner_client.get(_url(ws), {"kind": "auto_reply"}).content.decode()) == 1
    assert _rows(owner_client.get(_url(ws), {"unread": "1", "kind": "human"}).content.decode()) == 1
    reply_labels_ensure(workspace=ws)
    meeting = ReplyLabel.objects.get(workspace=ws, system=SystemLabel.MEETING_BOOKED)
    empty = owner_client.get(_url(ws), {"label": meeting.pk}).content.decode()
    assert _rows(empty) == 0 and "No replies match" in empty

    theirs = world(stranger.workspace, "globex-mail.com")
    reply_to(sent(theirs.campaign, "ana@globex.test", mailbox=theirs.mailboxes[0]))
    for bad in (
        {"campaign": theirs.campaign.public_id},
        {"mailbox": theirs.mailboxes[0].pk},
        {"mailbox": "abc"},
        {"kind": "spam"},
    ):
        page = owner_client.get(_url(ws), bad)
        html = page.content.decode()
        assert page.status_code == 400 and 'data-testid="filter-errors"' in html, bad
        assert _rows(html) == 0


def test_pages_go_by_older_and_newer_without_counting(
    acme, owner_client, django_assert_max_num_queries
):
    box = acme.mailboxes[0]
    for i in range(30):
        reply_to(sent(acme.campaign, f"p{i}@corp.test", mailbox=box), minutes=i)
    ws = acme.workspace
    with django_assert_max_num_queries(16):
        first = owner_client.get(_url(ws)).content.decode()
    assert _rows(first) == 25 and 'data-testid="older"' in first and "COUNT(" not in first
    second = owner_client.get(_url(ws), {"page": 2}).content.decode()
    assert _rows(second) == 5 and "← Newer" in second and 'data-testid="older"' not in second


def test_the_page_makes_the_same_number_of_queries_for_5_or_40_replies(
    acme, owner_client, django_assert_max_num_queries
):
    ws = acme.workspace
    interested = reply_labels_ensure(workspace=ws)[0]
    for i in range(40):
        reply = reply_to(sent(acme.campaign, f"p{i}@corp.test", mailbox=acme.mailboxes[i % 2]))
        reply_label_set(reply=reply, actor=None, add=[interested])
    opened = Reply.objects.first()
    with django_assert_max_num_queries(20):
        page = owner_client.get(_url(ws, "inbox_reply", opened.public_id))
    assert page.status_code == 200 and _rows(page.content.decode()) == 25


def test_the_thread_shows_what_was_sent_and_the_reply_and_htmx_marks_it_read(acme, owner_client):
    send = sent(acme.campaign, "ana@globex.test", mailbox=acme.mailboxes[0])
    reply = reply_to(send, text="Yes — call me on Tuesday.")
    ws = acme.workspace
    html = owner_client.get(_url(ws, "inbox_reply", reply.public_id)).content.decode()
    assert "A quick note about your team." in html  # the message sent
    assert "Yes — call me on Tuesday." in html
    assert 'data-testid="auto-read"' in html and "inbox-detail" in html and "has-detail" in html
    for system in SystemLabel.values:
        assert f'data-label="{system}"' in html
    read = owner_client.post(
        _url(ws, "inbox_reply_read", reply.public_id), {"read": "1"}, HTTP_HX_REQUEST="true"
    )
    body = read.content.decode()
    assert read.status_code == 200
    assert 'id="read-toggle"' in body and 'data-testid="mark-unread"' in body
    assert f'id="row-{reply.public_id}" class="inbox-row current"' in body
    assert 'id="inbox-unread"' in body and "hidden" in body and 'hx-swap-oob="true"' in body
    reply.refresh_from_db()
    assert reply.read_at is not None
    # Mark unread without HTMX: back to the list, bold again.
    back = owner_client.post(_url(ws, "inbox_reply_read", reply.public_id), {"read": "0"})
    assert back.status_code == 302 and back["Location"] == _url(ws)
    assert 'class="inbox-row unread"' in owner_client.get(_url(ws)).content.decode()


def test_label_toggles_work_with_htmx_and_plain_forms(acme, owner_client, stranger):
    reply = reply_to(sent(acme.campaign, "ana@globex.test", mailbox=acme.mailboxes[0]))
    ws = acme.workspace
    labels = {lb.system: lb for lb in reply_labels_ensure(workspace=ws)}
    url = _url(ws, "inbox_reply_label", reply.public_id)
    part = owner_client.post(
        url, {"label": labels["interested"].pk, "on": "1"}, HTTP_HX_REQUEST="true"
    )
    html = part.content.decode()
    assert part.status_code == 200 and html.lstrip().startswith('<div class="reply-labels"')
    assert 'aria-pressed="true" data-label="interested"' in html
    plain = owner_client.post(url, {"label": labels["not_interested"].pk, "on": "1"})
    assert plain.status_code == 302
    assert [lb.system for lb in reply.labels.all()] == ["not_interested"]
    owner_client.post(url, {"label": labels["not_interested"].pk, "on": "0"})
    assert not reply.labels.exists()
    # Someone else's label, or nonsense: 404, nothing changes.
    theirs = reply_labels_ensure(workspace=stranger.workspace)[0]
    assert owner_client.post(url, {"label": theirs.pk, "on": "1"}).status_code == 404
    assert owner_client.post(url, {"label": "x", "on": "1"}).status_code == 404
    assert not reply.labels.exists()


def test_an_answer_from_the_page_is_queued_in_thread_and_a_refusal_is_shown(acme, owner_client):
    reply = reply_to(sent(acme.campaign, "ana@globex.test", mailbox=acme.mailboxes[0]))
    ws = acme.workspace
    url = _url(ws, "inbox_reply_send", reply.public_id)
    done = owner_client.post(url, {"body": "Happy to help."}, follow=True)
    assert done.status_code == 200
    assert "Your answer to ana@globex.test is on its way" in done.content.decode()
    answer = Message.objects.get(kind=MessageKind.REPLY)
    assert answer.headers["In-Reply-To"] == f"<{reply.message_id}>"
    assert 'data-testid="thread-answer"' in done.content.decode()

    acme.mailboxes[0].__class__.objects.filter(pk=acme.mailboxes[0].pk).update(status="paused")
    refused = owner_client.post(url, {"body": "Another one."})
    assert refused.status_code == 400
    assert "cannot answer while it is paused" in refused.content.decode()
    assert Message.objects.filter(kind=MessageKind.REPLY).count() == 1

    bounce = reply_to(sent(acme.campaign, "x@y.test", mailbox=acme.mailboxes[1]), kind="bounce")
    html = owner_client.get(_url(ws, "inbox_reply", bounce.public_id)).content.decode()
    assert 'data-testid="not-answerable"' in html and 'data-testid="reply-box"' not in html


def test_custom_labels_are_added_renamed_and_deleted_on_the_labels_page(acme, owner_client):
    ws = acme.workspace
    page = owner_client.get(_url(ws, "inbox_labels"))
    assert page.status_code == 200 and "counts as a positive reply" in page.content.decode()
    added = owner_client.post(_url(ws, "inbox_labels"), {"name": "Pricing"})
    assert added.status_code == 302
    again = owner_client.post(_url(ws, "inbox_labels"), {"name": "pricing"})
    assert again.status_code == 400 and "already a label called" in again.content.decode()
    label = ReplyLabel.objects.get(workspace=ws, name="Pricing")
    owner_client.post(_url(ws, "inbox_label_change", label.pk), {"name": "Budget"})
    label.refresh_from_db()
    assert label.name == "Budget"
    built_in = ReplyLabel.objects.get(workspace=ws, system="interested")
    refused = owner_client.post(
        _url(ws, "inbox_label_change", built_in.pk), {"delete": "1"}, follow=True
    )
    assert "built-in label: it cannot be deleted" in refused.content.decode()
    owner_client.post(_url(ws, "inbox_label_change", label.pk), {"delete": "1"})
    assert not ReplyLabel.objects.filter(pk=label.pk).exists()


def test_another_workspace_sees_none_of_it(acme, stranger_client, owner_client, stranger):
    reply = reply_to(sent(acme.campaign, "ana@globex.test", mailbox=acme.mailboxes[0]))
    ws = acme.workspace
    assert stranger_client.get(_url(ws)).status_code == 404
    own = _url(stranger.workspace, "inbox_reply", reply.public_id)
    assert stranger_client.get(own).status_code == 404
    assert (
        stranger_client.post(
            _url(stranger.workspace, "inbox_reply_read", reply.public_id), {"read": "1"}
        ).status_code
        == 404
    )
    assert (
        stranger_client.post(
            _url(stranger.workspace, "inbox_reply_send", reply.public_id), {"body": "hi"}
        ).status_code
        == 404
    )
    theirs = stranger_client.get(_url(stranger.workspace)).content.decode()
    assert _rows(theirs) == 0 and reply.public_id not in theirs
    reply.refresh_from_db()
    assert reply.read_at is None and not Message.objects.filter(kind="reply").exists()
    assert owner_client.get(_url(ws, "inbox_reply", reply.public_id)).status_code == 200


def test_the_navigation_badge_counts_unread_human_replies_of_the_current_workspace(acme, stranger):
    box = acme.mailboxes[0]
    reply_to(sent(acme.campaign, "ana@globex.test", mailbox=box))
    reply_to(sent(acme.campaign, "bo@globex.test", mailbox=box))
    reply_to(sent(acme.campaign, "cy@globex.test", mailbox=box), kind="auto_reply")
    template = Template("{% load inbox_tags %}{% inbox_unread %}")
    html = template.render(Context({"current_workspace": acme.workspace}))
    assert 'id="inbox-unread"' in html and ">2</span>" in html and " hidden" not in html
    assert "js/inbox.js" in html
    none = template.render(Context({"current_workspace": stranger.workspace}))
    assert ">0</span>" in none and " hidden" in none
    assert template.render(Context({})) == ""


@pytest.mark.urls("config.urls")
def test_the_console_lists_replies_labels_and_polls(acme, staff_client):
    reply = reply_to(sent(acme.campaign, "ana@globex.test", mailbox=acme.mailboxes[0]))
    reply_labels_ensure(workspace=acme.workspace)
    listed = staff_client.get("/admin/inbox/reply/")
    assert listed.status_code == 200 and reply.public_id in listed.content.decode()
    assert staff_client.get(f"/admin/inbox/reply/{reply.pk}/change/").status_code == 200
    assert "Meeting booked" in staff_client.get("/admin/inbox/replylabel/").content.decode()
    assert staff_client.get("/admin/inbox/mailboxpoll/").status_code == 200
