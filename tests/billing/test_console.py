"""The billing console: subscriptions read-only (flagged ones easy to find), complimentary plans
and credit adjustments only through reasoned, audit-logged actions, and the unit economics page."""

from datetime import timedelta

import pytest
from django.contrib.auth.models import Permission
from django.test import Client
from django.utils import timezone

from accounts.models import AuditLog, User, Workspace
from billing.models import BillingAccount, CatalogEntry, CreditAccount, CreditEntry, CreditKind
from billing.selectors import entitlements_get
from billing.services.credits import credits_adjust
from tests.factories import WorkspaceFactory

pytestmark = pytest.mark.django_db

REASON = "Ticket 5120: partner account"
SHAPE_PROBLEM = "Starter is sold only yearly, but this subscription is billed per month"


def account(name: str, plan: str, interval: str, status: str, **fields) -> BillingAccount:
    return BillingAccount.objects.create(
        workspace=WorkspaceFactory(name=name),
        plan=plan,
        interval=interval,
        status=status,
        subscription_id=f"sub_{name.lower().replace(' ', '_')}",
        stripe_customer_id=f"cus_{name.lower().replace(' ', '_')}",
        current_period_end=timezone.now() + timedelta(days=30),
        **fields,
    )


def act(client: Client, path: str, action: str, pk: int, **data):
    """Run a console action; with `apply`, as if confirmed on its page (follows the redirect)."""
    payload = {"action": action, "_selected_action": [pk], **data}
    return client.post(f"/admin/billing/{path}/", payload, follow="apply" in data)


def messages_of(response) -> list[tuple[str, str]]:
    return [(m.level_tag, str(m)) for m in response.context["messages"]]


@pytest.fixture(autouse=True)
def _evaluation_when_unpaid(settings) -> None:
    settings.BILLING_UNPAID_PLAN = "evaluation"


@pytest.fixture
def accounts(db) -> dict[str, BillingAccount]:
    """Paying workspaces on each price, plus ones the page must not count."""
    rows = {
        "starter-1": account("Initech", "starter", "year", "active"),
        "starter-2": account("Hooli", "starter", "year", "active"),
        "starter-3": account("Umbrella", "starter", "year", "trialing"),
        "pro-monthly-1": account("Globex", "pro", "month", "active"),
        "pro-monthly-2": account("Soylent", "pro", "month", "active"),
        "pro-monthly-late": account("Vandelay", "pro", "month", "past_due"),
        "pro-yearly": account("Stark", "pro", "year", "active"),
        "cancelled": account("Wayne", "pro", "month", "canceled"),
        "flagged": account(
            "Cyberdyne",
            "starter",
            "month",
            "active",
            flagged_reason=SHAPE_PROBLEM,
            flagged_at=timezone.now(),
        ),
    }
    return rows


# --- The unit economics page ------------------------------------------------------------------


def cells(line) -> dict[str, str]:
    return dict(line.cells)


def test_the_economics_page_counts_paying_workspaces_per_price_and_interval(
    staff_client, accounts, settings
):
    settings.BILLING_INFRA_CENTS_PER_WORKSPACE_MONTH = 25
    response = staff_client.get("/admin/billing/billingaccount/economics/")

    assert response.status_code == 200
    lines = {line.label: cells(line) for line in response.context["lines"]}
    assert list(lines) == ["Starter, billed yearly", "Pro, billed monthly", "Pro, billed yearly"]
    # Active and trialing count, past due too; cancelled and flagged do not.
    assert [row["Active"] for row in lines.values()] == ["3", "3", "1"]
    starter, pro_monthly, pro_yearly = lines.values()
    assert starter["Charges a year"] == "3" and pro_monthly["Charges a year"] == "36"
    assert starter["Revenue a year"] == "$36.00" and starter["Revenue a month"] == "$3.00"
    assert pro_monthly["Revenue a year"] == "$360.00"
    assert pro_monthly["Stripe fee per charge"] == "$0.59"  # $10 x 2.9 % + $0.30
    assert pro_monthly["Stripe fees a year"] == "$21.24"  # 36 charges of $0.59
    assert pro_monthly["Fees, % of revenue"] == "5.9 %"
    assert starter["Fees, % of revenue"] == "5.4 %"
    assert starter["Infrastructure a year"] == "$9.00"  # 3 x $0.25 x 12
    assert starter["Margin a year"] == "$25.06"  # $36 - $1.944 fees - $9
    assert pro_yearly["Margin a year"] == "$93.80"  # $100 - $3.20 - $3
    total = cells(response.context["total"])
    assert (total["Active"], total["Charges a year"]) == ("7", "40")
    assert total["Revenue a year"] == "$496.00"
    assert total["Margin a year"] == "$448.62"  # $496 - ($21.24 + $1.944 + $3.20) - $21 infra

    body = response.content.decode()
    assert "Unit economics" in body and "Pro, billed monthly" in body and "$496.00" in body


def test_the_economics_page_works_the_example_of_a_dollar_a_month_billed_two_ways(
    staff_client, settings
):
    settings.BILLING_INFRA_CENTS_PER_WORKSPACE_MONTH = 25
    response = staff_client.get("/admin/billing/billingaccount/economics/")

    assert response.status_code == 200
    example = {
        label: (yearly, monthly) for label, yearly, monthly in response.context["example"]["rows"]
    }
    assert example["Charges a year"] == ("1,000", "12,000")
    assert example["Revenue a year"] == ("$12,000.00", "$12,000.00")
    assert example["Stripe fees a year"] == ("$648.00", "$3,948.00")
    assert example["Fees, % of revenue"] == ("5.4 %", "32.9 %")
    assert example["Infrastructure a year"] == ("$3,000.00", "$3,000.00")
    assert example["Margin a year"] == ("$8,352.00", "$5,052.00")
    body = response.content.decode()
    assert "1,000 Starter customers at $1.00 a month" in body
    assert "costs $3,300.00 more in card fees" in body
    # No one pays yet: the prices still show what each charge loses.
    lines = {line.label: cells(line) for line in response.context["lines"]}
    assert lines["Starter, billed yearly"]["Active"] == "0"
    assert lines["Starter, billed yearly"]["Fees, % of revenue"] == "5.4 %"
    assert cells(response.context["total"])["Margin, %"] == "-"


def test_the_economics_page_follows_the_infrastructure_setting(staff_client, settings):
    settings.BILLING_INFRA_CENTS_PER_WORKSPACE_MONTH = 100
    response = staff_client.get("/admin/billing/billingaccount/economics/")
    example = {
        label: (yearly, monthly) for label, yearly, monthly in response.context["example"]["rows"]
    }
    assert example["Infrastructure a year"] == ("$12,000.00", "$12,000.00")
    assert example["Margin a year"] == ("-$648.00", "-$3,948.00")
    assert "$1.00 per workspace per month" in response.content.decode()


def test_the_economics_page_is_staff_only(owner_client, client):
    assert client.get("/admin/billing/billingaccount/economics/").status_code == 302
    response = owner_client.get("/admin/billing/billingaccount/economics/")
    assert response.status_code == 302
    assert response["Location"].startswith("/admin/login/")
    assert "Unit economics" not in owner_client.get("/admin/login/").content.decode()


def test_staff_without_the_billing_view_permission_are_refused_the_page(db):
    viewer = User.objects.create_user(email="viewer@ops.test", is_staff=True)
    client = Client()
    client.force_login(viewer)
    assert client.get("/admin/billing/billingaccount/economics/").status_code == 403
    viewer.user_permissions.add(Permission.objects.get(codename="view_billingaccount"))
    client.force_login(User.objects.get(pk=viewer.pk))
    assert client.get("/admin/billing/billingaccount/economics/").status_code == 200


def test_the_console_links_the_page_and_counts_flagged_subscriptions(staff_client, accounts):
    body = staff_client.get("/admin/").content.decode()
    assert 'href="/admin/billing/billingaccount/economics/"' in body
    assert "<strong>Flagged subscriptions: 1</strong>" in body
    assert 'href="/admin/billing/billingaccount/?flagged=yes"' in body
    section = staff_client.get("/admin/billing/").content.decode()
    assert 'href="/admin/billing/billingaccount/economics/"' in section
    # The other pages' navigation links the page too, without counting.
    page = staff_client.get("/admin/billing/creditentry/").content.decode()
    assert "Unit economics" in page and "Flagged subscriptions" not in page


def test_the_index_says_when_nothing_is_flagged(staff_client):
    assert "Flagged subscriptions: none" in staff_client.get("/admin/").content.decode()


# --- Subscriptions ------------------------------------------------------------------------------


def test_the_flagged_filter_finds_flagged_subscriptions_with_their_reason(staff_client, accounts):
    flagged = staff_client.get("/admin/billing/billingaccount/", {"flagged": "yes"})
    assert [row.pk for row in flagged.context["cl"].result_list] == [accounts["flagged"].pk]
    body = flagged.content.decode()
    assert "Cyberdyne" in body and "Flagged" in body and SHAPE_PROBLEM in body

    clean = staff_client.get("/admin/billing/billingaccount/", {"flagged": "no"})
    shown = {row.pk for row in clean.context["cl"].result_list}
    assert accounts["flagged"].pk not in shown and len(shown) == len(accounts) - 1


def test_the_list_filters_by_plan_status_interval_and_searches_stripe_ids(staff_client, accounts):
    def shown(**query) -> set[str]:
        response = staff_client.get("/admin/billing/billingaccount/", query)
        assert response.status_code == 200
        return {row.workspace.name for row in response.context["cl"].result_list}

    assert shown(plan="pro", interval="year") == {"Stark"}
    assert shown(status="past_due") == {"Vandelay"}
    assert shown(plan="starter", status="trialing") == {"Umbrella"}
    assert shown(q="sub_globex") == {"Globex"}
    assert shown(q="cus_hooli") == {"Hooli"}
    assert shown(q="Soylent") == {"Soylent"}
    assert shown(q=accounts["pro-yearly"].workspace.public_id) == {"Stark"}


def test_the_subscription_list_does_not_query_per_row(
    staff_client, accounts, django_assert_max_num_queries
):
    for n in range(20):
        account(f"Extra {n}", "pro", "month", "active", comp_plan="starter" if n % 2 else "")
    with django_assert_max_num_queries(6):
        response = staff_client.get("/admin/billing/billingaccount/")
    assert response.status_code == 200
    assert len(response.context["cl"].result_list) == len(accounts) + 20


def test_a_subscription_is_read_only_and_links_its_stripe_objects(staff_client, accounts):
    row = accounts["flagged"]
    response = staff_client.post(
        f"/admin/billing/billingaccount/{row.pk}/change/",
        {"plan": "pro", "status": "active", "flagged_reason": "", "comp_plan": "pro"},
    )
    assert response.status_code == 403
    row.refresh_from_db()
    assert (row.plan, row.flagged_reason, row.comp_plan) == ("starter", SHAPE_PROBLEM, "")

    page = staff_client.get(f"/admin/billing/billingaccount/{row.pk}/change/")
    body = page.content.decode()
    assert 'name="plan"' not in body and SHAPE_PROBLEM in body
    assert "/admin/djstripe/subscription/?q=sub_cyberdyne" in body
    assert "/admin/djstripe/customer/?q=cus_cyberdyne" in body
    assert "the subscription is under review by support" in body
    offered = [name for name, _ in page.context["row_actions"]]
    assert offered == ["comp_grant"]  # nothing to withdraw yet
    assert staff_client.get("/admin/billing/billingaccount/add/").status_code == 403


def test_stripes_own_objects_stay_in_the_console(staff_client):
    assert staff_client.get("/admin/djstripe/subscription/").status_code == 200
    assert staff_client.get("/admin/djstripe/customer/").status_code == 200


def test_every_billing_action_asks_for_a_reason_first(staff_client, accounts, owner):
    comped = accounts["cancelled"]
    BillingAccount.objects.filter(pk=comped.pk).update(comp_plan="pro")
    credits = CreditAccount.objects.create(workspace=owner.workspace, earned=5)
    cases = [
        ("billingaccount", "comp_grant", comped.pk, "Wayne", 'name="plan"'),
        ("billingaccount", "comp_withdraw", comped.pk, "Wayne", ""),
        ("creditaccount", "credits_adjust", credits.pk, owner.workspace.name, 'name="amount"'),
    ]
    for path, action, pk, shown, extra in cases:
        response = act(staff_client, path, action, pk)
        assert response.status_code == 200, action
        assert "admin/action_reason.html" in [t.name for t in response.templates], action
        body = response.content.decode()
        assert '<textarea name="reason"' in body, action
        assert f'<input type="hidden" name="action" value="{action}">' in body, action
        assert f'name="_selected_action" value="{pk}"' in body, action
        assert shown in body and extra in body, action
    assert not AuditLog.objects.filter(actor=staff_client.staff).exists()
    assert BillingAccount.objects.get(pk=comped.pk).comp_plan == "pro"
    assert CreditAccount.objects.get(pk=credits.pk).earned == 5


def test_granting_a_complimentary_plan_applies_it_and_is_audit_logged(staff_client, accounts):
    row = accounts["cancelled"]
    assert entitlements_get(workspace=Workspace.objects.get(pk=row.workspace_id)).plan.code != "pro"

    response = act(
        staff_client, "billingaccount", "comp_grant", row.pk, apply="1", plan="pro", reason=REASON
    )

    assert messages_of(response) == [("success", "Wayne: complimentary Pro granted.")]
    row.refresh_from_db()
    assert (row.comp_plan, row.comp_reason) == ("pro", REASON)
    now = entitlements_get(workspace=Workspace.objects.get(pk=row.workspace_id))
    assert (now.plan.code, now.note) == ("pro", "granted by support")
    log = AuditLog.objects.get(action="billing.comp_plan")
    assert (log.actor, log.reason, log.after) == (staff_client.staff, REASON, {"comp_plan": "pro"})
    assert log.workspace_id == row.workspace_id
    assert (
        "Pro"
        in staff_client.get("/admin/billing/billingaccount/", {"comp_plan": "pro"}).content.decode()
    )


def test_a_grant_needs_a_reason_and_a_plan_from_the_catalog(staff_client, accounts):
    row = accounts["cancelled"]
    for data in ({"plan": "pro", "reason": "  "}, {"plan": "evaluation", "reason": REASON}):
        response = act(staff_client, "billingaccount", "comp_grant", row.pk, apply="1", **data)
        assert response.status_code == 200
        assert response.context["form"].errors
    row.refresh_from_db()
    assert row.comp_plan == ""
    assert not AuditLog.objects.filter(action="billing.comp_plan").exists()


def test_withdrawing_a_complimentary_plan_is_audit_logged(staff_client, accounts):
    row = accounts["cancelled"]
    act(
        staff_client,
        "billingaccount",
        "comp_grant",
        row.pk,
        apply="1",
        plan="starter",
        reason=REASON,
    )

    response = act(
        staff_client, "billingaccount", "comp_withdraw", row.pk, apply="1", reason="Trial over"
    )

    assert messages_of(response) == [("success", "1 complimentary plan(s) withdrawn.")]
    row.refresh_from_db()
    assert row.comp_plan == ""
    log = AuditLog.objects.filter(action="billing.comp_plan").order_by("-id").first()
    assert (log.actor, log.reason, log.before) == (
        staff_client.staff,
        "Trial over",
        {"comp_plan": "starter"},
    )
    again = staff_client.post(
        "/admin/billing/billingaccount/",
        {"action": "comp_withdraw", "_selected_action": [row.pk]},
        follow=True,
    )
    assert messages_of(again) == [
        ("warning", "None of the selected workspaces has a complimentary plan.")
    ]


# --- Credits -------------------------------------------------------------------------------------


@pytest.fixture
def credit_account(owner) -> CreditAccount:
    return CreditAccount.objects.create(workspace=owner.workspace, granted=10, earned=20)


def test_adjusting_credits_adds_them_with_the_reason_in_the_ledger(staff_client, credit_account):
    response = act(
        staff_client,
        "creditaccount",
        "credits_adjust",
        credit_account.pk,
        apply="1",
        amount="25",
        reason=REASON,
    )

    name = credit_account.workspace.name
    assert messages_of(response) == [("success", f"{name}: +25 credits; the balance is now 55.")]
    credit_account.refresh_from_db()
    assert (credit_account.granted, credit_account.earned) == (10, 45)
    entry = CreditEntry.objects.get(workspace=credit_account.workspace)
    assert (entry.kind, entry.amount, entry.balance_after, entry.reason, entry.actor) == (
        CreditKind.ADJUST,
        25,
        55,
        REASON,
        staff_client.staff,
    )
    assert AuditLog.objects.get(action="credits.adjust").actor == staff_client.staff


def test_a_refused_negative_adjustment_is_shown_as_an_error_and_changes_nothing(
    staff_client, credit_account
):
    response = act(
        staff_client,
        "creditaccount",
        "credits_adjust",
        credit_account.pk,
        apply="1",
        amount="-31",
        reason=REASON,
    )

    [(level, text)] = messages_of(response)
    assert level == "error"
    assert "would take the balance below zero: it is 30" in text
    credit_account.refresh_from_db()
    assert credit_account.balance == 30
    assert not CreditEntry.objects.exists()
    assert not AuditLog.objects.filter(action="credits.adjust").exists()

    taken = act(
        staff_client,
        "creditaccount",
        "credits_adjust",
        credit_account.pk,
        apply="1",
        amount="-30",
        reason=REASON,
    )
    assert messages_of(taken)[0][0] == "success"
    credit_account.refresh_from_db()
    assert credit_account.balance == 0


def test_an_adjustment_of_nothing_is_refused_on_its_page(staff_client, credit_account):
    for amount in ("0", "", "ten", "9999999"):
        response = act(
            staff_client,
            "creditaccount",
            "credits_adjust",
            credit_account.pk,
            apply="1",
            amount=amount,
            reason=REASON,
        )
        assert response.status_code == 200, amount
        assert "amount" in response.context["form"].errors, amount
    assert not CreditEntry.objects.exists()


def test_the_credit_lists_show_balances_and_a_read_only_ledger(
    staff_client, credit_account, stranger, django_assert_max_num_queries
):
    staff = staff_client.staff
    credits_adjust(workspace=credit_account.workspace, amount=5, actor=staff, reason="Goodwill")
    CreditAccount.objects.create(workspace=stranger.workspace, earned=3)
    credits_adjust(workspace=stranger.workspace, amount=7, actor=staff, reason="Outage credit")

    accounts_page = staff_client.get("/admin/billing/creditaccount/")
    balances = {row.workspace.name: row.balance for row in accounts_page.context["cl"].result_list}
    assert balances == {credit_account.workspace.name: 35, stranger.workspace.name: 10}

    with django_assert_max_num_queries(6):
        ledger = staff_client.get("/admin/billing/creditentry/", {"kind": "adjust"})
    body = ledger.content.decode()
    assert "Goodwill" in body and "Outage credit" in body and staff.email in body
    found = staff_client.get("/admin/billing/creditentry/", {"q": stranger.workspace.public_id})
    assert [e.reason for e in found.context["cl"].result_list] == ["Outage credit"]
    entry = CreditEntry.objects.first()
    assert staff_client.get(f"/admin/billing/creditentry/{entry.pk}/delete/").status_code == 403
    assert staff_client.get("/admin/billing/creditentry/add/").status_code == 403
    assert (
        staff_client.post(f"/admin/billing/creditentry/{entry.pk}/change/", {}).status_code == 403
    )


def test_the_catalog_is_listed_read_only(staff_client):
    CatalogEntry.objects.create(key="pro_monthly", stripe_id="price_123")
    body = staff_client.get("/admin/billing/catalogentry/", {"q": "pro"}).content.decode()
    assert "price_123" in body
    assert staff_client.get("/admin/billing/catalogentry/add/").status_code == 403
