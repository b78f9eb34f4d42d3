"""`/api/v1/replies/` and `/api/v1/reply-labels/`: list with filters, retrieve, PATCH labels and
read state, answer in-thread, labels; another workspace's rows answer 404."""

import pytest

from inbox.models import ReplyLabel
from inbox.services.inbox import reply_labels_ensure
from sending.models import Message, MessageKind
from tests.conftest import token_client
from tests.inbox.inbox_fixtures import reply_to, sent, world

pytestmark = pytest.mark.django_db


@pytest.fixture
def acme(owner):
    return world(owner.workspace)


@pytest.fixture
def api(owner):
    return token_client(owner)


def test_it_lists_and_filters_replies_of_the_tokens_workspace_only(
    acme, api, stranger, django_assert_max_num_queries
):
    box1, box2 = acme.mailboxes
    for i in range(6):
        reply_to(sent(acme.campaign, f"p{i}@corp.test", mailbox=box1), minutes=i)
    ooo = reply_to(sent(acme.other_campaign, "bo@initech.test", mailbox=box2), kind="out_of_office")
    theirs = world(stranger.workspace, "globex-mail.com")
    reply_to(sent(theirs.campaign, "ana@globex.test", mailbox=theirs.mailboxes[0]))

    with django_assert_max_num_queries(12):
        listed = api.get("/api/v1/replies/")
    assert listed.status_code == 200 and listed.json()["count"] == 7
    first = listed.json()["results"][0]
    assert first["id"] == ooo.public_id and first["kind"] == "out_of_office"
    assert first["mailbox"] == box2.address and first["campaign"] == acme.other_campaign.public_id
    assert first["read"] is False and first["labels"] == []
    assert api.get("/api/v1/replies/", {"mailbox": box2.pk}).json()["count"] == 1
    assert api.get("/api/v1/replies/", {"campaign": acme.campaign.public_id}).json()["count"] == 6
    assert api.get("/api/v1/replies/", {"kind": "human", "unread": "true"}).json()["count"] == 6
    for bad, field in (
        ({"kind": "spam"}, "kind"),
        ({"mailbox": "x"}, "mailbox"),
        ({"campaign": theirs.campaign.public_id}, "campaign"),
        ({"mailbox": theirs.mailboxes[0].pk}, "mailbox"),
    ):
        refused = api.get("/api/v1/replies/", bad)
        assert refused.status_code == 400 and field in str(refused.json()), bad


def test_patch_sets_labels_and_read_state_and_another_workspace_gets_404(acme, api, stranger):
    reply = reply_to(sent(acme.campaign, "ana@globex.test", mailbox=acme.mailboxes[0]))
    labels = {lb.system: lb for lb in reply_labels_ensure(workspace=acme.workspace)}
    url = f"/api/v1/replies/{reply.public_id}/"
    assert api.get(url).json()["text"] == "Sounds interesting, tell me more."
    done = api.patch(
        url,
        {"labels": [labels["interested"].pk, labels["meeting_booked"].pk], "read": True},
        format="json",
    )
    assert done.status_code == 200
    assert [lb["system"] for lb in done.json()["labels"]] == ["interested", "meeting_booked"]
    assert done.json()["read"] is True
    # The whole set: what is not given comes off.
    again = api.patch(url, {"labels": [labels["meeting_booked"].pk]}, format="json").json()
    assert [lb["system"] for lb in again["labels"]] == ["meeting_booked"]
    assert api.patch(url, {"read": False}, format="json").json()["read"] is False
    theirs = reply_labels_ensure(workspace=stranger.workspace)[0]
    refused = api.patch(url, {"labels": [theirs.pk]}, format="json")
    assert refused.status_code == 400 and "No such label" in str(refused.json())
    assert api.patch(url, {}, format="json").status_code == 400
    assert [lb.system for lb in reply.labels.all()] == ["meeting_booked"]

    outsider = token_client(stranger)
    assert outsider.get(url).status_code == 404
    assert outsider.patch(url, {"read": True}, format="json").status_code == 404
    assert outsider.post(url + "send/", {"body": "hi"}, format="json").status_code == 404
    assert outsider.get("/api/v1/replies/").json()["count"] == 0
    reply.refresh_from_db()
    assert reply.read_at is None


def test_send_answers_in_thread_and_refuses_a_paused_mailbox(acme, api):
    reply = reply_to(sent(acme.campaign, "ana@globex.test", mailbox=acme.mailboxes[0]))
    url = f"/api/v1/replies/{reply.public_id}/send/"
    done = api.post(url, {"body": "Thanks, let us talk."}, format="json")
    assert done.status_code == 201
    assert done.json()["recipient"] == "ana@globex.test"
    assert done.json()["subject"] == "Re: Hello Acme"
    assert done.json()["sender"] == acme.mailboxes[0].address
    answer = Message.objects.get(kind=MessageKind.REPLY)
    assert answer.headers["In-Reply-To"] == f"<{reply.message_id}>"
    assert api.post(url, {"body": ""}, format="json").status_code == 400
    acme.mailboxes[0].__class__.objects.filter(pk=acme.mailboxes[0].pk).update(status="paused")
    refused = api.post(url, {"body": "Again"}, format="json")
    assert refused.status_code == 400 and refused.json()["error"]["code"] == "mailbox_not_active"
    assert Message.objects.filter(kind=MessageKind.REPLY).count() == 1


def test_reply_labels_list_create_rename_delete(acme, api, stranger):
    listed = api.get("/api/v1/reply-labels/").json()
    assert [lb["system"] for lb in listed["results"]] == [
        "interested",
        "not_interested",
        "meeting_booked",
        "out_of_office",
        "wrong_person",
    ]
    made = api.post("/api/v1/reply-labels/", {"name": "Pricing"}, format="json")
    assert made.status_code == 201 and made.json()["system"] == ""
    dup = api.post("/api/v1/reply-labels/", {"name": "PRICING"}, format="json")
    assert dup.status_code == 400 and dup.json()["error"]["code"] == "label_exists"
    pk = made.json()["id"]
    renamed = api.patch(f"/api/v1/reply-labels/{pk}/", {"name": "Budget"}, format="json")
    assert renamed.json()["name"] == "Budget"
    built_in = listed["results"][0]["id"]
    assert api.delete(f"/api/v1/reply-labels/{built_in}/").status_code == 400
    outsider = token_client(stranger)
    assert outsider.delete(f"/api/v1/reply-labels/{pk}/").status_code == 404
    assert api.delete(f"/api/v1/reply-labels/{pk}/").status_code == 204
    assert not ReplyLabel.objects.filter(pk=pk).exists()
    assert ReplyLabel.objects.filter(workspace=acme.workspace).count() == 5


def test_the_endpoints_are_in_the_openapi_schema(owner_client):
    schema = owner_client.get("/api/schema/", {"format": "json"})
    assert schema.status_code == 200
    paths = schema.json()["paths"]
    assert set(paths["/api/v1/replies/"]) == {"get"}
    assert {"get", "patch"} <= set(paths["/api/v1/replies/{id}/"])
    assert "post" in paths["/api/v1/replies/{id}/send/"]
    assert {"get", "post"} <= set(paths["/api/v1/reply-labels/"])
    listed = paths["/api/v1/replies/"]["get"]
    assert {p["name"] for p in listed["parameters"]} >= {"campaign", "mailbox", "label", "kind"}
