"""The inbox in headless Chromium at desktop (1280 px) and phone (390 px) width: the list, a
reply opened (marked read by HTMX, its row no longer bold), a label toggled in place, an answer
sent; on a phone the list and the conversation take turns. Nothing scrolls sideways.
Screenshots go to test-artifacts/inbox-*.png."""

from typing import Any

import pytest
from playwright.sync_api import Browser, Page, expect

from inbox.models import Reply
from sending.models import Message, MessageKind
from tests.billing.test_billing_browser import signed_in
from tests.inbox.inbox_fixtures import reply_to, sent, world
from tests.test_browser import ARTIFACTS
from tests.test_browser_phone import DESKTOP, PHONE, chromium, sideways_overflow  # noqa: F401

pytestmark = [
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True),
]


def snap(page: Page, name: str, width: int) -> int:
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"inbox-{name}-{width}.png"), full_page=True)
    return sideways_overflow(page)


@pytest.mark.parametrize("viewport", [DESKTOP, PHONE], ids=["1280", "390"])
def test_a_customer_reads_labels_and_answers_a_reply(
    live_server,
    chromium,  # noqa: F811
    owner,
    viewport,
):
    acme = world(owner.workspace)
    box1, box2 = acme.mailboxes
    reply = reply_to(
        sent(acme.campaign, "ana.lopez@globex-industries.test", mailbox=box1),
        from_name="Ana Lopez",
        text="Hi,\n\nThis sounds useful. Could we talk on Tuesday afternoon?\n\nAna",
        minutes=90,
    )
    reply_to(
        sent(acme.other_campaign, "bo@initech.test", mailbox=box2, subject="Quick question"),
        from_name="Bo Initech",
        text="Not for us right now, thanks.",
        read=True,
    )
    reply_to(
        sent(acme.campaign, "cy@hooli.test", mailbox=box2),
        kind="out_of_office",
        text="I am out of the office until Monday 7 December.",
        minutes=30,
    )
    base = f"{live_server.url}/w/{acme.workspace.public_id}"
    width = viewport["width"]
    phone = viewport is PHONE

    def steps(browser: Browser) -> dict[str, Any]:
        overflow: dict[str, int] = {}
        page = signed_in(browser, owner.user, live_server.url, viewport)
        page.goto(f"{base}/inbox/")
        row = page.locator(f"#row-{reply.public_id}")
        expect(row).to_have_class("inbox-row unread")
        expect(page.get_by_test_id("inbox-rows").locator("li")).to_have_count(3)
        overflow["list"] = snap(page, "list", width)

        row.get_by_role("link").click()
        expect(page.get_by_test_id("thread-reply")).to_contain_text("Tuesday afternoon")
        if phone:
            expect(page.locator(".inbox-list")).to_be_hidden()
            expect(page.get_by_role("link", name="← All replies")).to_be_visible()
        else:
            expect(page.locator(f"#row-{reply.public_id}")).to_have_class("inbox-row current")
        # Shown, then marked read by the page (HTMX): the toggle now offers "Mark unread".
        expect(page.get_by_test_id("mark-unread")).to_be_visible()

        labels = page.get_by_test_id("reply-labels")
        labels.get_by_role("button", name="Interested", exact=True).click()
        expect(labels.locator('[data-label="interested"]')).to_have_attribute(
            "aria-pressed", "true"
        )
        page.get_by_label("Your answer").fill("Tuesday at 3 pm works. I will send an invite.")
        overflow["thread"] = snap(page, "thread", width)
        page.get_by_role("button", name="Send answer").click()
        expect(page.locator("#messages")).to_contain_text("is on its way from")
        expect(page.get_by_test_id("thread-answer")).to_contain_text("Tuesday at 3 pm")
        overflow["answered"] = snap(page, "answered", width)
        if phone:
            page.get_by_role("link", name="← All replies").click()
            expect(page.get_by_test_id("inbox-rows")).to_be_visible()
        return overflow

    overflow = chromium.run(steps)
    assert overflow == {"list": 0, "thread": 0, "answered": 0}
    stored = Reply.objects.get(pk=reply.pk)
    assert stored.read_at is not None
    assert [lb.system for lb in stored.labels.all()] == ["interested"]
    answer = Message.objects.get(kind=MessageKind.REPLY)
    assert answer.recipient == "ana.lopez@globex-industries.test" and answer.mailbox_id == box1.pk
