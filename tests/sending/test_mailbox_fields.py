"""One parser for mailbox settings: partial updates, the page and the API answer alike."""

import pytest
from django.urls import reverse

from sending.mailbox_fields import MailboxInputError, mailbox_input_parse
from sending.models import Mailbox
from sending.services.mailboxes import mailbox_create
from tests.conftest import UNTESTED_SERVERS, token_client

pytestmark = pytest.mark.django_db

SERVERS = UNTESTED_SERVERS


@pytest.fixture
def external(verified_domain, owner) -> Mailbox:
    mailbox = mailbox_create(
        domain=verified_domain,
        actor=owner.user,
        data={"connection": "external", "local_part": "alex", **SERVERS},
    )
    Mailbox.objects.filter(pk=mailbox.pk).update(connection_ok=True)
    return Mailbox.objects.get(pk=mailbox.pk)


def test_an_update_checks_only_the_fields_it_is_given():
    assert mailbox_input_parse({"daily_limit": "50"}, connection="external", creating=False) == {
        "daily_limit": 50
    }
    with pytest.raises(MailboxInputError) as refused:
        mailbox_input_parse({}, connection="external", creating=True)
    assert {"smtp_host", "imap_port", "smtp_password"} <= refused.value.fields.keys()


def test_an_empty_password_on_an_update_keeps_the_stored_one():
    parsed = mailbox_input_parse(
        {"smtp_password": "", "imap_host": "mail.example.org"},
        connection="external",
        creating=False,
    )
    assert parsed == {"imap_host": "mail.example.org"}


def test_api_patch_of_the_daily_limit_alone_is_a_complete_change(external, owner):
    answer = token_client(owner).patch(
        f"/api/v1/mailboxes/{external.pk}/", {"daily_limit": 50}, format="json"
    )
    assert answer.status_code == 200, answer.json()
    external.refresh_from_db()
    assert external.daily_limit == 50
    assert (external.smtp_host, external.connection_ok) == ("smtp.example.net", True)


def test_new_server_settings_take_the_mailbox_back_to_not_connected(external, owner):
    answer = token_client(owner).patch(
        f"/api/v1/mailboxes/{external.pk}/",
        {"smtp_port": 465, "smtp_security": "ssl"},
        format="json",
    )
    assert answer.status_code == 200, answer.json()
    external.refresh_from_db()
    assert (external.smtp_port, external.smtp_security) == (465, "ssl")
    assert external.connection_ok is None and external.connection_checked_at is None


def test_page_and_api_refuse_a_bad_port_with_the_same_message(external, owner, owner_client):
    api = token_client(owner).patch(
        f"/api/v1/mailboxes/{external.pk}/", {"imap_port": 70000}, format="json"
    )
    assert api.status_code == 400
    message = api.json()["error"]["fields"]["imap_port"][0]
    url = reverse("mailbox_detail", args=[owner.workspace.public_id, external.pk])
    page = owner_client.post(url, {**SERVERS, "daily_limit": "40", "imap_port": "70000"})
    assert page.status_code == 200
    assert page.context["form"].errors["imap_port"] == [message]
    external.refresh_from_db()
    assert external.imap_port == 993
