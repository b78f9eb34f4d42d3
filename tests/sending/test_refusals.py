"""Every refusal on a page of sending/ and accounts/ reaches the user the same way: a message on
the page they came from (or beside the form's field), with nothing changed, never a 500."""

from collections.abc import Callable
from dataclasses import dataclass
from html import unescape
from typing import Any

import pytest
from django.test import Client

from accounts.models import ApiToken, Invitation, Membership
from accounts.services import api_token_create, invitation_create, invitation_revoke
from sending.models import DkimKey, Mailbox, SendingDomain
from sending.services.dkim import dkim_rotation_start
from sending.services.mailboxes import mailbox_create, mailbox_pause
from sending.services.status import domain_cooldown, domain_quarantine

pytestmark = pytest.mark.django_db

Fixture = Callable[[str], Any]


@dataclass
class Refusal:
    url: str
    page: str  # where the user pressed the button (the Referer)
    message: str
    state: Callable[[], object]  # must read the same after the refusal
    data: dict | None = None
    field: str = ""  # a form's refusal: shown beside this field, on the form's page


def _ws(get: Fixture) -> str:
    return get("owner").workspace.public_id


def _domain_state(domain: SendingDomain) -> Callable[[], object]:
    return lambda: (
        SendingDomain.objects.get(pk=domain.pk).status,
        list(DkimKey.objects.filter(domain=domain).values_list("selector", "state")),
        list(Mailbox.objects.filter(domain=domain).values_list("local_part", "status")),
    )


def quarantined_domain_removed(get: Fixture) -> Refusal:
    domain = get("domain")
    domain_quarantine(domain=domain, actor=None, reason="Complaints over the limit.")
    page = f"/w/{_ws(get)}/domains/{domain.public_id}/"
    return Refusal(
        page + "remove/", page, "cannot be removed until that ends", _domain_state(domain)
    )


def cooling_down_domain_removed(get: Fixture) -> Refusal:
    domain = get("domain")
    domain_cooldown(domain=domain, actor=None, reason="Bounce spike.")
    page = f"/w/{_ws(get)}/domains/{domain.public_id}/"
    return Refusal(
        page + "remove/", page, "cannot be removed until that ends", _domain_state(domain)
    )


def dkim_rotated_while_one_is_pending(get: Fixture) -> Refusal:
    domain, owner = get("domain"), get("owner")
    dkim_rotation_start(domain=domain, actor=owner.user)
    page = f"/w/{_ws(get)}/domains/{domain.public_id}/"
    return Refusal(
        page + "rotate-dkim/", page, "already waiting to be published", _domain_state(domain)
    )


def _mailbox(get: Fixture, **data: Any) -> Mailbox:
    return mailbox_create(
        domain=get("verified_domain"),
        actor=get("owner").user,
        data={"connection": "platform", "local_part": "alex", **data},
    )


def _mailbox_state(mailbox: Mailbox) -> Callable[[], object]:
    return lambda: list(
        Mailbox.objects.filter(pk=mailbox.pk).values_list("status", "status_reason")
    )


def mailbox_resumed_under_review(get: Fixture) -> Refusal:
    mailbox = _mailbox(get)
    mailbox_pause(mailbox=mailbox, actor=None, reason="Bounce spike.")
    page = f"/w/{_ws(get)}/mailboxes/{mailbox.pk}/"
    return Refusal(
        page + "status/",
        page,
        "waits for review by support",
        _mailbox_state(mailbox),
        data={"action": "resume"},
    )


def mailbox_resumed_on_a_quarantined_domain(get: Fixture) -> Refusal:
    mailbox = _mailbox(get)
    mailbox_pause(mailbox=mailbox, actor=get("owner").user, reason="Paused by you.")
    domain_quarantine(domain=mailbox.domain, actor=None, reason="Complaints.")
    page = f"/w/{_ws(get)}/mailboxes/{mailbox.pk}/"
    return Refusal(
        page + "status/",
        page,
        "cannot send right now (Quarantined)",
        _mailbox_state(mailbox),
        data={"action": "resume"},
    )


def mailbox_given_an_unknown_action(get: Fixture) -> Refusal:
    mailbox = _mailbox(get)
    page = f"/w/{_ws(get)}/mailboxes/{mailbox.pk}/"
    return Refusal(
        page + "status/", page, "Unknown action.", _mailbox_state(mailbox), data={"action": "x"}
    )


def platform_mailbox_tested(get: Fixture) -> Refusal:
    mailbox = _mailbox(get)
    page = f"/w/{_ws(get)}/mailboxes/{mailbox.pk}/"
    state = lambda: list(  # noqa: E731
        Mailbox.objects.filter(pk=mailbox.pk).values_list("connection_ok", "connection_checked_at")
    )
    return Refusal(page + "test/", page, "Platform mailboxes have no servers", state)


def mailbox_added_twice(get: Fixture) -> Refusal:
    mailbox = _mailbox(get)
    page = f"/w/{_ws(get)}/mailboxes/"
    data = {"domain": mailbox.domain.public_id, "local_part": "alex", "connection": "platform"}
    return Refusal(
        page, page, "already exists", Mailbox.objects.count, data=data, field="local_part"
    )


def free_mail_domain_added(get: Fixture) -> Refusal:
    page = f"/w/{_ws(get)}/domains/"
    return Refusal(
        page,
        page,
        "gmail.com is a free-mail or mailbox provider's domain",
        SendingDomain.objects.count,
        data={"name": "gmail.com"},
        field="name",
    )


def _members(get: Fixture) -> Callable[[], object]:
    workspace = get("owner").workspace
    return lambda: sorted(
        Membership.objects.filter(workspace=workspace).values_list("user__email", "role")
    )


def last_owner_leaves(get: Fixture) -> Refusal:
    owner = get("owner")
    page = f"/w/{_ws(get)}/settings/"
    url = f"{page}members/{owner.pk}/remove/"
    return Refusal(url, page, "must keep at least one owner", _members(get))


def last_owner_demoted(get: Fixture) -> Refusal:
    owner = get("owner")
    get("teammate")
    page = f"/w/{_ws(get)}/settings/"
    url = f"{page}members/{owner.pk}/role/"
    return Refusal(url, page, "must keep at least one owner", _members(get), data={"role": "admin"})


def closed_invitation_revoked(get: Fixture) -> Refusal:
    owner = get("owner")
    issued = invitation_create(
        workspace=owner.workspace,
        inviter=owner.user,
        email="friend@acme.test",
        role="member",
        site_url="http://testserver/",
    )
    invitation = Invitation.objects.get(pk=issued.obj.pk)
    invitation_revoke(invitation=invitation, actor=owner.user)
    page = f"/w/{_ws(get)}/settings/"
    state = lambda: list(Invitation.objects.values_list("email", "revoked_at"))  # noqa: E731
    return Refusal(f"{page}invitations/{invitation.pk}/revoke/", page, "already closed", state)


def member_invited_again(get: Fixture) -> Refusal:
    teammate = get("teammate")
    page = f"/w/{_ws(get)}/settings/"
    return Refusal(
        f"{page}invitations/",
        page,
        "Already a member.",
        Invitation.objects.count,
        data={"email": teammate.user.email, "role": "member"},
        field="email",
    )


def token_over_the_limit(get: Fixture) -> Refusal:
    owner = get("owner")
    get("settings").API_TOKENS_PER_USER = 1
    api_token_create(user=owner.user, workspace=owner.workspace, name="first")
    page = f"/w/{_ws(get)}/settings/"
    return Refusal(
        f"{page}tokens/",
        page,
        "You already have 1 active tokens; revoke one first.",
        ApiToken.objects.count,
        data={"name": "second"},
    )


REFUSALS = [
    quarantined_domain_removed,
    cooling_down_domain_removed,
    dkim_rotated_while_one_is_pending,
    mailbox_resumed_under_review,
    mailbox_resumed_on_a_quarantined_domain,
    mailbox_given_an_unknown_action,
    platform_mailbox_tested,
    mailbox_added_twice,
    free_mail_domain_added,
    last_owner_leaves,
    last_owner_demoted,
    closed_invitation_revoked,
    member_invited_again,
    token_over_the_limit,
]


def text(response) -> str:
    return unescape(response.content.decode())


@pytest.mark.parametrize("setup", REFUSALS, ids=[f.__name__ for f in REFUSALS])
def test_a_refusal_is_a_message_on_the_page_and_changes_nothing(
    setup, request, owner_client: Client
):
    refusal = setup(request.getfixturevalue)
    before = refusal.state()
    page = "http://testserver" + refusal.page
    response = owner_client.post(refusal.url, refusal.data or {}, HTTP_REFERER=page)
    if refusal.field:
        assert response.status_code == 200
        body = text(response)
        error = body.split(f'id="id_{refusal.field}_error"', 1)[1].split("</ul>", 1)[0]
        assert refusal.message in error  # beside its field
    elif response.status_code == 200:  # a form page that shows the refusal on top
        assert refusal.message in text(response)
    else:
        assert response.status_code == 302
        assert response["Location"].split("#")[0] in (page, refusal.page)
        assert refusal.message in text(owner_client.get(response["Location"]))
    assert refusal.state() == before


def test_without_a_referer_a_refused_action_goes_back_to_its_page(request, owner_client):
    refusal = quarantined_domain_removed(request.getfixturevalue)
    response = owner_client.post(refusal.url)
    assert response.status_code == 302
    assert response["Location"] == refusal.page
    assert refusal.message in text(owner_client.get(refusal.page))


def test_an_htmx_refusal_reloads_the_page_with_the_message(request, owner_client):
    refusal = platform_mailbox_tested(request.getfixturevalue)
    page = "http://testserver" + refusal.page
    response = owner_client.post(refusal.url, HTTP_HX_REQUEST="true", HTTP_REFERER=page)
    assert response.status_code == 200
    assert response["HX-Redirect"] == page
    assert refusal.message in text(owner_client.get(page))
