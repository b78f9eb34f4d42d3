"""Billing as a customer meets it, in headless Chromium at 1280 and 390 pixels: the plans of the
evaluation level and Starter's yearly-only price, buying through (the local) Stripe Checkout, the
grace banner of a failed payment with the credit history, the domain limit's way to the plans,
the landing page's "Start for $12 a year" and the console's unit economics.

The app runs in pytest-django's live server, a thread of this process: the settings the tests
change (billing on, the evaluation level for unpaid workspaces, the local Stripe's key) and
stripe-python's `api_base` reach it as they are. Screenshots go to test-artifacts/billing-*.png.
"""

import re
from datetime import timedelta
from typing import Any

import pytest
from django.conf import settings as django_settings
from django.test import Client
from django.utils import dateformat, timezone
from playwright.sync_api import Browser, Page, expect

from accounts.models import User
from billing.models import BillingAccount
from billing.plans import EVALUATION, STARTER
from billing.services.credits import credits_earn, credits_grant_daily, credits_spend
from tests.accounts.test_signup import CONFIRM_LINK
from tests.factories import PASSWORD, WorkspaceFactory
from tests.test_browser import ARTIFACTS
from tests.test_browser_phone import DESKTOP, snap_widths

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

# A credit change taken away, written with a hyphen or a true minus sign.
MINUS = "^[-\u2212]{}$"


def signed_in(browser: Browser, user: User, base_url: str, viewport: dict) -> Page:
    """A tab of a fresh context carrying `user`'s session cookie."""
    client = Client()
    client.force_login(user)
    name = django_settings.SESSION_COOKIE_NAME
    context = browser.new_context(viewport=viewport)
    context.add_cookies([{"name": name, "value": client.cookies[name].value, "url": base_url}])
    page = context.new_page()
    page.set_default_timeout(10_000)
    return page


def snap(page: Page, name: str) -> dict[str, int]:
    return snap_widths(page, f"billing-{name}")


def test_an_evaluating_owner_compares_plans_and_buys_starter_on_stripe_checkout(
    live_server, chromium, billing, owner
):
    url = f"{live_server.url}/w/{owner.workspace.public_id}/billing/"
    checkout_prefix = billing.url + "/checkout/"

    def steps(browser: Browser) -> dict[str, Any]:
        page = signed_in(browser, owner.user, live_server.url, DESKTOP)
        page.goto(url)
        expect(page.get_by_role("heading", level=1)).to_have_text("Billing")
        plan = page.get_by_test_id("billing-plan")
        expect(plan.get_by_role("heading")).to_have_text("Your plan: Evaluation")
        expect(plan).to_contain_text(f"Domains: 0 of {EVALUATION.domains}")
        expect(plan).to_contain_text(f"Mailboxes: 0 of {EVALUATION.mailboxes}")
        expect(plan).to_contain_text("Campaigns to real prospects: no")
        expect(page.get_by_test_id("billing-credits").get_by_role("heading")).to_have_text(
            "Credits: 0"
        )
        plans = page.get_by_test_id("billing-plans")
        expect(plans.get_by_role("heading", level=3)).to_have_text(["Starter", "Pro"])
        expect(page.get_by_test_id("starter-annual")).to_contain_text(
            "Starter is sold only yearly: one $12 charge a year"
        )
        expect(page.get_by_test_id("buy-starter_yearly")).to_have_text("$12 a year")
        expect(page.get_by_test_id("buy-pro_monthly")).to_have_text("$10 a month")
        expect(page.get_by_test_id("buy-pro_yearly")).to_have_text("$100 a year")
        expect(page.get_by_test_id("billing-history")).to_contain_text(
            "No credits granted or spent yet."
        )
        overflow = snap(page, "evaluation")

        # Playwright's page.route does not see the target of a redirect (the app answers the
        # form with a 302 to Stripe), so the navigation is watched instead. The local Stripe's
        # hosted page is a bare stand-in (the session id as text): only its URL counts here.
        asked: list[str] = []
        page.on(
            "request",
            lambda request: (
                asked.append(request.url) if request.url.startswith(checkout_prefix) else None
            ),
        )
        with page.expect_response(lambda r: r.url.startswith(checkout_prefix)):
            page.get_by_role("button", name="$12 a year").click()
        expect(page).to_have_url(re.compile("^" + re.escape(checkout_prefix)))
        landed = page.url
        page.screenshot(path=str(ARTIFACTS / "billing-checkout-landing-1280.png"))
        page.context.close()
        return {"asked": asked, "landed": landed, "overflow": overflow}

    seen = chromium.run(steps)
    (session_id,) = billing.checkout_sessions
    session = billing.checkout_sessions[session_id]
    assert seen["landed"] == session["url"] == checkout_prefix + session_id
    assert seen["asked"] == [session["url"]]
    (created,) = billing.requests_to("/v1/checkout/sessions", "POST")
    assert created.params["line_items"][0]["quantity"] == "1"
    assert created.params["client_reference_id"] == owner.workspace.public_id
    assert seen["overflow"] == {"1280": 0, "390": 0}


@pytest.fixture
def past_due_pro(billing, owner) -> BillingAccount:
    """Pro billed monthly, its last renewal failed two days ago; a day of credit history."""
    workspace = owner.workspace
    BillingAccount.objects.update_or_create(
        workspace=workspace,
        defaults={
            "plan": "pro",
            "interval": "month",
            "status": "past_due",
            "past_due_since": timezone.now() - timedelta(days=2),
            "subscription_id": "sub_x",
            "stripe_customer_id": "cus_x",
            "current_period_end": timezone.now() + timedelta(days=28),
        },
    )
    credits_grant_daily(workspace=workspace, day=timezone.localdate(), amount=1000)
    credits_earn(
        workspace=workspace, amount=12, reference="warm:1", reason="Warmed 12 peer messages"
    )
    credits_spend(workspace=workspace, amount=1, reference="msg:1")
    credits_spend(workspace=workspace, amount=3, reference="msg:2", reason="Campaign step 1")
    return BillingAccount.objects.get(workspace=workspace)


def test_a_past_due_pro_owner_sees_the_grace_date_and_the_credit_history(
    live_server, chromium, past_due_pro, owner
):
    url = f"{live_server.url}/w/{owner.workspace.public_id}/billing/"
    grace_ends = timezone.localtime(past_due_pro.past_due_since + timedelta(days=7))
    shown_date = dateformat.format(grace_ends, "j F Y")

    def steps(browser: Browser) -> dict[str, int]:
        page = signed_in(browser, owner.user, live_server.url, DESKTOP)
        page.goto(url)
        banner = page.get_by_test_id("billing-grace")
        expect(banner).to_contain_text("Your last payment failed.")
        expect(banner).to_contain_text(f"Everything keeps working until {shown_date}")
        expect(banner.get_by_role("button", name="Update card")).to_be_visible()
        plan = page.get_by_test_id("billing-plan")
        expect(plan.get_by_role("heading")).to_have_text("Your plan: Pro")
        expect(plan).to_contain_text("Billed monthly")
        expect(plan).to_contain_text("Campaigns to real prospects: yes")
        expect(page.get_by_test_id("billing-portal")).to_be_visible()
        expect(page.get_by_test_id("billing-plans")).to_have_count(0)  # subscribed: no cards
        # Thousands may come with or without a separator; the values are what count here.
        expect(page.get_by_test_id("billing-credits").get_by_role("heading")).to_have_text(
            re.compile(r"^Credits: 1,?008$")
        )
        rows = page.get_by_test_id("billing-history").locator("tbody tr")
        expect(rows).to_have_count(4)
        changes = rows.locator("td[data-label='Change']")
        expect(changes).to_have_text(
            [
                re.compile(MINUS.format(3)),
                re.compile(MINUS.format(1)),
                "+12",
                re.compile(r"^\+1,?000$"),
            ]
        )
        expect(rows.locator("td[data-label='Balance']")).to_have_text(
            [re.compile(rf"^{n[0]},?{n[1:]}$") for n in ("1008", "1011", "1012", "1000")]
        )
        expect(rows.nth(0)).to_contain_text("Spent on a send: Campaign step 1")
        expect(rows.nth(2)).to_contain_text("Earned by warming: Warmed 12 peer messages")
        overflow = snap(page, "past-due")
        page.context.close()
        return overflow

    assert chromium.run(steps) == {"1280": 0, "390": 0}


def test_the_second_domain_is_refused_beside_the_form_with_a_way_to_the_plans(
    live_server, chromium, billing, owner
):
    ws = owner.workspace.public_id
    domains_url = f"{live_server.url}/w/{ws}/domains/"

    def steps(browser: Browser) -> dict[str, int]:
        page = signed_in(browser, owner.user, live_server.url, DESKTOP)
        page.goto(domains_url)
        page.get_by_label("Domain name").fill("first-outreach.com")
        page.get_by_role("button", name="Add domain").click()
        expect(page.get_by_role("heading", level=1)).to_contain_text("first-outreach.com")

        page.goto(domains_url)
        page.get_by_label("Domain name").fill("second-outreach.com")
        page.get_by_role("button", name="Add domain").click()
        form = page.get_by_test_id("domain-form")
        expect(form).to_contain_text(
            f"Your Evaluation plan allows {EVALUATION.domains} domain, and you have 1."
        )
        expect(form).to_contain_text(f"{STARTER.name} ($12 a year) allows 2 domains.")
        expect(page.get_by_label("Domain name")).to_have_value("second-outreach.com")
        expect(page.get_by_test_id("domain-list")).not_to_contain_text("second-outreach.com")
        upgrade = form.get_by_role("link", name="See plans and upgrade")
        expect(upgrade).to_have_attribute("href", f"/w/{ws}/billing/")
        overflow = snap(page, "domain-limit")

        upgrade.click()
        expect(page).to_have_url(f"{live_server.url}/w/{ws}/billing/")
        expect(page.get_by_role("heading", level=1)).to_have_text("Billing")
        expect(page.get_by_test_id("billing-plan")).to_contain_text("Domains: 1 of 1")
        expect(page.get_by_test_id("buy-starter_yearly")).to_be_visible()
        page.context.close()
        return overflow

    assert chromium.run(steps) == {"1280": 0, "390": 0}


def test_start_for_12_a_year_asks_a_visitor_to_sign_in_then_confirms_the_workspace(
    live_server, chromium, billing, owner
):
    start = "/start/starter_yearly/"
    checkout_prefix = billing.url + "/checkout/"

    def steps(browser: Browser) -> dict[str, Any]:
        context = browser.new_context(viewport=DESKTOP)
        page = context.new_page()
        page.set_default_timeout(10_000)
        # An existing customer following a link to the offer signs in first.
        page.goto(live_server.url + start)
        expect(page).to_have_url(
            re.compile(re.escape(f"{live_server.url}/accounts/login/?next=") + r"(%2F|/)start")
        )
        landed_anonymous = page.url
        overflow = {"login": snap(page, "start-anonymous")}

        page.get_by_placeholder("Email address").fill(owner.user.email)
        page.get_by_placeholder("Password").fill(PASSWORD)
        page.get_by_role("button", name="Sign In").click()
        expect(page).to_have_url(live_server.url + start)
        expect(page.get_by_role("heading", level=1)).to_have_text(f"{STARTER.name}: $12 a year")
        expect(page.locator("body")).to_contain_text("$1 a month, billed once a year")
        button = page.get_by_test_id("start-checkout")
        expect(button).to_have_text(f"Continue to checkout for {owner.workspace.name}")
        overflow["start"] = snap(page, "start-signed-in")

        button.click()
        expect(page).to_have_url(re.compile("^" + re.escape(checkout_prefix)))
        context.close()
        return {"anonymous": landed_anonymous, "overflow": overflow}

    seen = chromium.run(steps)
    assert "next=" in seen["anonymous"]
    (created,) = billing.requests_to("/v1/checkout/sessions", "POST")
    assert created.params["client_reference_id"] == owner.workspace.public_id
    assert seen["overflow"] == {
        "login": {"1280": 0, "390": 0},
        "start": {"1280": 0, "390": 0},
    }


def test_a_new_visitor_signs_up_from_start_for_12_a_year_and_comes_back_to_starter(
    live_server, chromium, billing, smtp_mail
):
    """Most visitors who press the button have no account yet: they sign up, confirm their
    address by email and sign in, and come back to the Starter offer."""
    start = "/start/starter_yearly/"

    def steps(browser: Browser) -> dict[str, str]:
        context = browser.new_context(viewport=DESKTOP)
        page = context.new_page()
        page.set_default_timeout(10_000)
        page.goto(live_server.url + "/")
        page.get_by_role("link", name="Start for $12 a year").click()
        expect(page).to_have_url(re.compile(r"/accounts/signup/\?next=(%2F|/)start"))
        page.get_by_label("Your name").fill("Grace Hopper")
        page.get_by_label("Email").fill("grace@navy.test")
        page.get_by_label("Password:", exact=True).fill(PASSWORD)
        page.get_by_label("Password (again)").fill(PASSWORD)
        page.get_by_label("Workspace name").fill("Navy Outreach")
        page.get_by_role("button", name="Sign Up").click()
        expect(page.get_by_role("heading", level=1)).to_contain_text("Verify Your Email Address")
        body = smtp_mail.body(smtp_mail.wait_for("grace@navy.test"))
        page.goto(live_server.url + CONFIRM_LINK.search(body).group(1))
        page.get_by_role("button", name="Confirm").click()
        after_confirm = page.url
        page.get_by_placeholder("Email address").fill("grace@navy.test")
        page.get_by_placeholder("Password").fill(PASSWORD)
        page.get_by_role("button", name="Sign In").click()
        page.wait_for_load_state()
        landed = page.url
        snap(page, "start-new-visitor")
        context.close()
        return {"after_confirm": after_confirm, "landed": landed}

    seen = chromium.run(steps)
    assert seen["landed"] == live_server.url + start, seen


def test_staff_read_the_unit_economics_on_a_desktop_and_a_phone(live_server, chromium, settings):
    settings.BILLING_UNPAID_PLAN = "evaluation"
    settings.BILLING_INFRA_CENTS_PER_WORKSPACE_MONTH = 25
    for name, plan, interval, status in [
        ("Initech", "starter", "year", "active"),
        ("Hooli", "starter", "year", "active"),
        ("Globex", "pro", "month", "active"),
        ("Vandelay", "pro", "month", "past_due"),
        ("Stark", "pro", "year", "active"),
    ]:
        BillingAccount.objects.create(
            workspace=WorkspaceFactory(name=name),
            plan=plan,
            interval=interval,
            status=status,
            subscription_id=f"sub_{name.lower()}",
            stripe_customer_id=f"cus_{name.lower()}",
        )
    staff = User.objects.create_user(email="ops@ops.test", is_staff=True, is_superuser=True)
    url = f"{live_server.url}/admin/billing/billingaccount/economics/"

    def steps(browser: Browser) -> dict[str, int]:
        page = signed_in(browser, staff, live_server.url, DESKTOP)
        page.goto(url)
        expect(page.get_by_role("heading", level=1)).to_have_text("Unit economics")
        prices = page.locator("#economics-prices")
        expect(prices.locator("tbody th[scope='row']")).to_contain_text(
            ["Starter, billed yearly", "Pro, billed monthly", "Pro, billed yearly"]
        )
        expect(prices.locator("tfoot")).to_contain_text("$364.00")  # 2 x $12 + 2 x 12 x $10 + $100
        example = page.locator("#economics-example")
        expect(example).to_contain_text("32.9 %")
        expect(example).to_contain_text("5.4 %")
        expect(page.locator("#worked-example")).to_contain_text("1,000 Starter customers")
        overflow = snap(page, "economics")
        page.context.close()
        return overflow

    assert chromium.run(steps) == {"1280": 0, "390": 0}
