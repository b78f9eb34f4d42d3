"""Plan limits hold server-side: the (n+1)th domain or mailbox is refused in pages and the API."""

import pytest
from rest_framework.test import APIClient

from accounts.models import AuditLog, Invitation, User
from accounts.services import api_token_create
from billing.models import BillingAccount
from billing.plans import EVALUATION, PRO
from billing.services.subscriptions import plan_comp_set
from sending.models import DomainStatus, Mailbox, SendingDomain
from tests.conftest import token_client

pytestmark = pytest.mark.django_db


@pytest.fixture
def staff_user(db) -> User:
    return User.objects.create_user(email="support@ops.test", is_staff=True)


@pytest.fixture
def evaluation(settings):
    settings.BILLING_UNPAID_PLAN = "evaluation"


def test_the_evaluation_level_refuses_a_second_domain_on_the_page(evaluation, owner, owner_client):
    ws = owner.workspace.public_id
    assert owner_client.post(f"/w/{ws}/domains/", {"name": "first-outreach.com"}).status_code == 302
    response = owner_client.post(f"/w/{ws}/domains/", {"name": "second-outreach.com"})
    body = response.content.decode()
    assert response.status_code == 200
    assert f"allows {EVALUATION.domains} domain" in body
    assert f'href="/w/{ws}/billing/"' in body  # the upgrade link, beside the form
    assert list(SendingDomain.objects.values_list("name", flat=True)) == ["first-outreach.com"]


def test_the_third_mailbox_is_refused_on_a_plan_allowing_two(
    evaluation, verified_domain, owner, owner_client
):
    ws = owner.workspace.public_id
    for local in ("alex", "blake"):
        form = {"domain": verified_domain.public_id, "connection": "platform", "local_part": local}
        assert owner_client.post(f"/w/{ws}/mailboxes/", form).status_code == 302
    form = {"domain": verified_domain.public_id, "connection": "platform", "local_part": "casey"}
    response = owner_client.post(f"/w/{ws}/mailboxes/", form)
    body = response.content.decode()
    assert response.status_code == 200
    assert "allows 2 mailboxes, and you have 2" in body
    assert f'href="/w/{ws}/billing/"' in body
    assert sorted(Mailbox.objects.values_list("local_part", flat=True)) == ["alex", "blake"]


def test_the_api_refuses_the_mailbox_past_the_plan_limit_with_an_upgrade_link(
    evaluation, verified_domain, owner, staff_user
):
    plan_comp_set(workspace=owner.workspace, actor=staff_user, plan="pro", reason="test")
    Mailbox.objects.bulk_create(
        Mailbox(domain=verified_domain, local_part=f"m{i}") for i in range(PRO.mailboxes)
    )
    api = token_client(owner)
    answer = api.post(
        "/api/v1/mailboxes/",
        {"domain": verified_domain.public_id, "connection": "platform", "local_part": "one-more"},
        format="json",
    )
    assert answer.status_code == 402, answer.json()
    error = answer.json()["error"]
    assert error["code"] == "plan_limit"
    assert f"allows {PRO.mailboxes} mailboxes" in error["message"]
    assert error["link"]["url"] == f"/w/{owner.workspace.public_id}/billing/"
    assert Mailbox.objects.count() == PRO.mailboxes


def test_the_api_refuses_the_domain_past_the_plan_limit(evaluation, owner, staff_user):
    plan_comp_set(workspace=owner.workspace, actor=staff_user, plan="pro", reason="test")
    SendingDomain.objects.bulk_create(
        SendingDomain(workspace=owner.workspace, name=f"d{i}.example.com")
        for i in range(PRO.domains)
    )
    # A retired domain frees its place.
    SendingDomain.objects.filter(name="d0.example.com").update(status=DomainStatus.RETIRED)
    api = token_client(owner)
    assert (
        api.post("/api/v1/domains/", {"name": "ok.example.org"}, format="json").status_code == 201
    )
    answer = api.post("/api/v1/domains/", {"name": "over.example.org"}, format="json")
    assert answer.status_code == 402
    assert answer.json()["error"]["code"] == "plan_limit"
    assert not SendingDomain.objects.filter(name="over.example.org").exists()


def test_a_plan_without_the_api_refuses_its_tokens_with_a_reason(evaluation, owner):
    issued = api_token_create(user=owner.user, workspace=owner.workspace, name="ci")
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {issued.secret}")
    answer = api.get("/api/v1/domains/")
    assert answer.status_code == 403
    assert "API access is not part of the Evaluation plan" in answer.json()["error"]["message"]
    assert "Pro" in answer.json()["error"]["message"]


def test_a_comp_plan_is_audit_logged_and_lifts_the_limits(evaluation, owner, staff_user):
    account = plan_comp_set(
        workspace=owner.workspace, actor=staff_user, plan="starter", reason="Partner"
    )
    assert BillingAccount.objects.get(pk=account.pk).comp_plan == "starter"
    log = AuditLog.objects.get(action="billing.comp_plan")
    assert (log.actor, log.reason, log.after) == (staff_user, "Partner", {"comp_plan": "starter"})


def test_an_invitation_past_the_plans_seats_is_refused_beside_the_form(
    evaluation, teammate, owner, owner_client
):
    ws = owner.workspace.public_id
    response = owner_client.post(
        f"/w/{ws}/settings/invitations/", {"email": "third@example.com", "role": "member"}
    )
    body = response.content.decode()
    assert "allows 2 members, and you have 2" in body
    assert not Invitation.objects.exists()
