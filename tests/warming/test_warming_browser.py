"""The Warming and Warming tasks pages in headless Chromium, at desk and phone width."""

import secrets
from typing import Any

import pytest
from playwright.sync_api import Browser, expect

from tests.billing.test_billing_browser import signed_in
from tests.test_browser import ARTIFACTS
from tests.test_browser_phone import DESKTOP, PHONE, chromium, sideways_overflow  # noqa: F401
from tests.warming.network import EVENING, Network, plan_and_send
from warming.models import Step, WarmupSend
from warming.services.agent import warming_engage

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def rehab_network(agent_settings, mail_servers, test_ca, owner):
    return Network(
        mail_servers, test_ca, suffix=secrets.token_hex(3), tier="rehab", owners=[owner.workspace]
    )


@pytest.mark.parametrize("viewport", [DESKTOP, PHONE], ids=["1280", "390"])
def test_a_customer_does_a_warming_task_and_sees_placement(
    live_server,
    chromium,  # noqa: F811
    owner,
    rehab_network,
    viewport,
):
    sends = plan_and_send(rehab_network)
    north = rehab_network.mailboxes[0]
    mine = [s for s in sends if s.recipient_id == north.pk]
    base = f"{live_server.url}/w/{owner.workspace.public_id}"
    width = viewport["width"]

    def tasks(browser: Browser) -> dict[str, Any]:
        page = signed_in(browser, owner.user, live_server.url, viewport)
        page.goto(f"{base}/warming/")
        page.get_by_test_id("tasks-link").click()
        expect(page.get_by_role("heading", level=1)).to_have_text("Warming tasks")
        expect(page.get_by_test_id("task")).to_have_count(len(mine))
        expect(page.get_by_test_id("task-domain")).to_contain_text(north.domain.name)
        page.screenshot(path=str(ARTIFACTS / f"warming-tasks-{width}.png"), full_page=True)
        overflow = sideways_overflow(page)
        first = page.get_by_test_id("task").first
        first.get_by_role("button", name="Open, answer and file").click()
        expect(page.locator("#messages")).to_contain_text("+2 credits")
        expect(page.get_by_test_id("task")).to_have_count(len(mine) - 1)
        expect(page.get_by_test_id("rehab-summary").first).to_contain_text("1 warming task by hand")
        page.screenshot(path=str(ARTIFACTS / f"warming-task-done-{width}.png"), full_page=True)
        page.context.close()
        return {"overflow": overflow}

    seen = chromium.run(tasks)
    assert seen["overflow"] <= 0
    done = WarmupSend.objects.get(by_hand=True)
    assert done.step == Step.DONE and done.replied_at is not None

    # The agent takes the rest once their hold ends; the Warming page shows the outcome.
    warming_engage(now=EVENING.replace(hour=23, minute=59))

    def warming(browser: Browser) -> dict[str, Any]:
        page = signed_in(browser, owner.user, live_server.url, viewport)
        page.goto(f"{base}/warming/")
        expect(page.get_by_test_id("placement-overall")).to_contain_text("%")
        expect(page.get_by_test_id("warming-activity")).to_contain_text("read")
        page.screenshot(path=str(ARTIFACTS / f"warming-placement-{width}.png"), full_page=True)
        overflow = sideways_overflow(page)
        page.context.close()
        return {"overflow": overflow}

    assert chromium.run(warming)["overflow"] <= 0
