"""The Webhooks pages in headless Chromium at phone and desktop widths: nothing scrolls sideways,
and an owner adds an endpoint, reads its secret and sends a test event from the page."""

import pytest
from django.utils import timezone
from playwright.sync_api import Browser

from tests.test_browser import ARTIFACTS
from tests.test_browser_phone import DESKTOP, PHONE, chromium, open_page, sideways_overflow
from webhooks.models import WebhookDelivery
from webhooks.services.deliveries import delivery_attempt, webhook_emit

pytestmark = [
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True),
]
__all__ = ["chromium"]  # the module-scoped browser fixture, used by name


@pytest.mark.parametrize(("label", "viewport"), [("desktop", DESKTOP), ("phone", PHONE)])
def test_an_owner_adds_an_endpoint_and_sends_a_test_event(
    live_server, chromium, owner, receiver, label, viewport
):
    ws = owner.workspace.public_id
    base = f"{live_server.url}/w/{ws}/webhooks/"

    def steps(browser: Browser) -> dict[str, int]:
        page = open_page(browser, viewport, owner, live_server.url)
        page.goto(base)
        page.get_by_label("Endpoint URL").fill("ftp://hooks.example.com/plain")
        page.get_by_role("button", name="Add endpoint").click()
        page.locator(".errorlist").first.wait_for()
        refused = page.locator("#add-endpoint").inner_text()
        page.get_by_label("Endpoint URL").fill(receiver.url)
        page.get_by_label("Reply received").check()
        page.get_by_role("button", name="Add endpoint").click()
        secret = page.get_by_test_id("secret").inner_text()
        page.get_by_test_id("send-test").click()
        page.get_by_test_id("delivery-log").wait_for()
        # A failed delivery too, so the log shows a retry.
        receiver.script = [503]
        [failed] = webhook_emit(
            workspace_id=owner.workspace.pk, event_type="message.replied",
            data={"recipient": "lead@example.org"}, occurred_at=timezone.now(),
            event_id="evt_reply",
        )  # fmt: skip
        delivery_attempt(delivery_id=failed.pk)
        page.reload()
        page.get_by_test_id("delivery-log").locator("details summary").first.click()
        overflow = {"detail": sideways_overflow(page)}
        page.screenshot(path=str(ARTIFACTS / f"webhooks-detail-{label}.png"), full_page=True)
        page.goto(base)
        overflow["list"] = sideways_overflow(page)
        page.screenshot(path=str(ARTIFACTS / f"webhooks-list-{label}.png"), full_page=True)
        assert "https://" in refused
        assert secret.startswith("whsec_")
        return {k: v for k, v in overflow.items() if v > 0}

    assert chromium.run(steps) == {}
    assert len(receiver.requests) == 2
    assert WebhookDelivery.objects.filter(event_type="webhook.test", state="succeeded").exists()
