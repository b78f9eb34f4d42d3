"""A new customer's first hour in headless Chromium: sign up, add a domain, publish its records,
add their own mailbox and connect it. Every step leads to the next; screenshots at 1280 and
390 pixels go to test-artifacts/."""

import os
import threading
from collections.abc import Callable

import pytest
from playwright.sync_api import Page, expect, sync_playwright

from tests.accounts.test_signup import CONFIRM_LINK
from tests.test_browser import ARTIFACTS, CHROMIUM, CHROMIUM_ARGS

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}


def in_a_browser(steps: Callable[[Page], None]) -> None:
    """Run `steps` in a Chromium of their own, driven from a thread of its own: Playwright's sync
    API keeps an event loop running in the thread that started it, so a second instance cannot
    share the main thread with the session-wide browser of tests/test_browser.py."""
    assert os.path.exists(CHROMIUM), "Debian's chromium is missing: `make test` installs it"
    failures: list[BaseException] = []

    def drive() -> None:
        try:
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
                try:
                    tab = browser.new_context(viewport=DESKTOP).new_page()
                    tab.set_default_timeout(10_000)
                    steps(tab)
                finally:
                    browser.close()
        except BaseException as error:
            failures.append(error)

    driver = threading.Thread(target=drive)
    driver.start()
    driver.join()
    if failures:
        raise failures[0]


def snap(tab: Page, name: str) -> None:
    """The page as a customer sees it, on a desktop and on a phone."""
    ARTIFACTS.mkdir(exist_ok=True)
    for label, size in (("1280", DESKTOP), ("390", PHONE)):
        tab.set_viewport_size(size)
        tab.screenshot(
            path=str(ARTIFACTS / f"journey-{name}-{label}.png"),
            full_page=True,
            animations="disabled",
        )
    tab.set_viewport_size(DESKTOP)


def sign_up(tab: Page, base: str, smtp_mail, password: str) -> None:
    tab.goto(base + "/")
    tab.get_by_role("link", name="Try it free").click()
    tab.get_by_label("Your name").fill("Grace Hopper")
    tab.get_by_label("Email").fill("grace@navy.test")
    tab.get_by_label("Password:", exact=True).fill(password)
    tab.get_by_label("Password (again)").fill(password)
    tab.get_by_label("Workspace name").fill("Navy Outreach")
    tab.get_by_role("button", name="Sign Up").click()
    body = smtp_mail.body(smtp_mail.wait_for("grace@navy.test"))
    tab.goto(base + CONFIRM_LINK.search(body).group(1))
    tab.get_by_role("button", name="Confirm").click()
    tab.get_by_placeholder("Email address").fill("grace@navy.test")
    tab.get_by_placeholder("Password").fill(password)
    tab.get_by_role("button", name="Sign In").click()
    expect(tab.get_by_role("heading", level=1)).to_have_text("Navy Outreach")


def publish_what_the_page_shows(tab: Page, zone) -> None:
    """As a customer would at their DNS host: copy each required record from the table."""
    for row in tab.locator("#dns-records tbody tr").all():
        if row.get_attribute("data-kind") in ("tracking", "mx"):
            continue
        cells = row.locator("td")
        zone.add(
            cells.nth(2).locator("code").inner_text().strip(),
            cells.nth(1).inner_text().strip(),
            cells.nth(3).locator("code").inner_text().strip(),
        )


def fill_servers(tab: Page, legend: str, host: str, port: str, user: str, secret: str) -> None:
    group = tab.get_by_role("group", name=legend)
    group.get_by_label("Host").fill(host)
    group.get_by_label("Port").fill(port)
    group.get_by_label("Security").select_option("starttls")
    group.get_by_label("Username").fill(user)
    group.get_by_label("Password").fill(secret)


def test_a_new_customer_signs_up_verifies_a_domain_and_connects_their_own_mailbox(
    live_server,
    smtp_mail,
    password,
    zone,
    mail_servers,
    mail_account,
):
    in_a_browser(
        lambda page: journey(
            page, live_server.url, smtp_mail, password, zone, mail_servers, mail_account
        )
    )


def journey(page: Page, base: str, smtp_mail, password: str, zone, mail, mail_account) -> None:
    sign_up(page, base, smtp_mail, password)

    # A domain: a mail provider's is refused beside the field, then the customer's own.
    page.get_by_role("link", name="Domains", exact=True).click()
    page.get_by_label("Domain name").fill("gmail.com")
    page.get_by_role("button", name="Add domain").click()
    expect(page.locator("#id_name_error")).to_contain_text("free-mail or mailbox provider")
    snap(page, "1-domain-refused")
    page.get_by_label("Domain name").fill("navy-outreach.com")
    page.get_by_role("button", name="Add domain").click()
    expect(page.get_by_role("heading", level=1)).to_contain_text("navy-outreach.com")
    expect(page.get_by_test_id("record-status")).to_have_text("Waiting for DNS")
    snap(page, "2-domain-records")

    publish_what_the_page_shows(page, zone)
    page.get_by_test_id("check-now").click()
    expect(page.get_by_test_id("record-status")).to_have_text("Verified")
    expect(page.locator("#domain-status")).to_have_text("Verified")
    snap(page, "3-domain-verified")

    # The next step is on the page: add a mailbox on the domain.
    page.get_by_test_id("next-step").get_by_role("link").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Mailboxes")
    servers = page.get_by_test_id("server-fields")
    expect(servers).to_be_hidden()  # platform is the default: no servers to fill in
    page.get_by_label("Address (before the @)").fill("grace")
    page.get_by_label("Sender name").fill("Grace Hopper")
    page.get_by_label("External (your own SMTP and IMAP server)").check()
    expect(servers).to_be_visible()
    dovecot, smtp = mail
    fill_servers(
        page, "SMTP server", smtp.host, "99999", mail_account.address, mail_account.password
    )
    fill_servers(
        page,
        "IMAP server",
        dovecot.host,
        str(dovecot.port),
        mail_account.address,
        mail_account.password,
    )
    page.get_by_role("button", name="Add mailbox").click()

    # A typo: the error sits beside its field and nothing typed is lost, passwords included.
    smtp_group = page.get_by_role("group", name="SMTP server")
    expect(smtp_group.locator("#id_smtp_port_error")).to_contain_text("between 1 and 65535")
    expect(servers).to_be_visible()
    expect(smtp_group.get_by_label("Password")).to_have_value(mail_account.password)
    expect(page.get_by_role("group", name="IMAP server").get_by_label("Password")).to_have_value(
        mail_account.password
    )
    snap(page, "4-mailbox-typo")
    smtp_group.get_by_label("Port").fill(str(smtp.port))
    page.get_by_role("button", name="Add mailbox").click()

    # Added, but not connected (and not warming up) until the servers accept the login.
    expect(page.get_by_role("heading", level=1)).to_contain_text("grace@navy-outreach.com")
    summary = page.get_by_test_id("connection-summary")
    expect(summary).to_contain_text("Not connected")
    expect(page.locator("#warmup-state")).to_have_text("Waiting for a connection test")
    snap(page, "5-mailbox-not-connected")

    page.get_by_test_id("test-connection").click()
    expect(summary).to_contain_text("Connected")
    expect(summary).not_to_contain_text("Not connected")
    expect(page.get_by_test_id("result-smtp")).to_be_visible()
    expect(page.locator("#warmup-state")).to_have_text("Enrolled")
    snap(page, "6-mailbox-connected")

    page.get_by_role("link", name="← Mailboxes").click()
    row = page.get_by_test_id("mailbox-list").locator("tbody tr").first
    expect(row.get_by_test_id("connection-state")).to_contain_text("Connected")
    expect(row.get_by_test_id("warmup-state")).to_have_text("Enrolled")
    snap(page, "7-mailbox-list")

    # A wrong link is no dead end: the product's own page, with a way back.
    page.goto(base + "/w/ws_gone/domains/")
    expect(page.get_by_role("heading", level=1)).to_have_text("We could not find that page")
    snap(page, "8-not-found")
    page.get_by_role("link", name="Go to your workspace").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Navy Outreach")
