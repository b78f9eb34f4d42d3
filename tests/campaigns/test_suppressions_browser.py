"""The suppressions page in headless Chromium at 1280 and 390 pixels: a refused address is
explained beside its field, a domain typed as a web address is blocked by its name, an import's
progress card updates itself until the result shows, and nothing scrolls sideways.
Screenshots go to test-artifacts/suppressions-*.png."""

from typing import Any

import pytest
from django.core.files.base import ContentFile
from playwright.sync_api import Browser, Page, expect

from campaigns.models import ImportKind, ImportState, LeadImport
from campaigns.services.suppressions import suppression_import_run
from sending.models import SuppressedDomain, Suppression
from tests.billing.test_billing_browser import signed_in
from tests.test_browser_phone import DESKTOP, chromium, snap_widths  # noqa: F401

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture(autouse=True)
def _media(settings, tmp_path):
    settings.MEDIA_ROOT = str(tmp_path / "media")


def snap(page: Page, name: str) -> dict[str, int]:
    return snap_widths(page, f"suppressions-{name}")


def test_an_owner_adds_blocks_imports_and_checks_on_a_desktop_and_a_phone(
    live_server,
    chromium,  # noqa: F811
    owner,
):
    ws = owner.workspace
    base = f"{live_server.url}/w/{ws.public_id}/suppressions/"
    Suppression.objects.create(
        workspace=ws,
        address="a.very.long.address.of.someone.in.sales@subsidiary-of-a-big-group.example.com",
        reason="unsubscribe",
        source="Unsubscribe one-click",
    )
    Suppression.objects.create(workspace=None, address="trap@spam.net", reason="complaint")
    queued = LeadImport(
        workspace=ws,
        kind=ImportKind.SUPPRESSIONS,
        file_name="old-list.csv",
        file_size=32,
        headers=["email"],
        mapping={"address": "email"},
        state=ImportState.QUEUED,
        created_by=owner.user,
    )
    queued.file.save("old-list.csv", ContentFile(b"email\nq1@x.com\nq2@x.com\nbad\n"))

    def steps(browser: Browser) -> dict[str, Any]:
        seen: dict[str, Any] = {}
        page = signed_in(browser, owner.user, live_server.url, DESKTOP)
        page.goto(base)
        form = page.get_by_test_id("add-address")
        form.get_by_label("Email address").fill("ann@@target.com")
        form.get_by_role("button", name="Add to the list").click()
        error = form.locator(".errorlist")
        expect(error).to_contain_text("Not an email address")
        seen["error"] = snap(page, "refused")
        form = page.get_by_test_id("add-address")
        form.get_by_label("Email address").fill("Ann@Target.com")
        form.get_by_role("button", name="Add to the list").click()
        expect(page.locator(".message-success")).to_contain_text("ann@target.com is on your")
        expect(page.get_by_test_id("address-list")).to_contain_text("ann@target.com")
        seen["addresses"] = snap(page, "addresses")

        page.get_by_role("link", name="Blocked domains").click()
        block = page.get_by_test_id("block-domain")
        block.get_by_label("Domain").fill("https://www.rival.com/pricing")
        block.get_by_role("button", name="Block domain").click()
        expect(page.get_by_test_id("domain-list")).to_contain_text("rival.com")
        seen["domains"] = snap(page, "domains")

        page.get_by_role("link", name="Platform list").click()
        check = page.get_by_test_id("check-address")
        check.get_by_label("Email address").fill("TRAP@spam.net")
        check.get_by_role("button", name="Check").click()
        expect(page.get_by_test_id("check-result")).to_contain_text(
            "On the platform's list: spam complaint"
        )
        seen["platform"] = snap(page, "platform")

        page.get_by_role("link", name="Import").click()
        page.get_by_label("CSV file").set_input_files(
            files=[
                {
                    "name": "bounces.csv",
                    "mimeType": "text/csv",
                    "buffer": "email;reason\nx@y.com;hard bounce\nnope;\n".encode("latin-1"),
                }
            ]
        )
        page.get_by_role("button", name="Import", exact=True).click()
        status = page.get_by_test_id("import-status")
        expect(status).to_have_attribute("data-state", "done")
        expect(page.get_by_test_id("count-added")).to_contain_text("1")
        expect(page.get_by_test_id("import-problems")).to_contain_text("not an email address")
        seen["import"] = snap(page, "import")

        # An import still queued: its card polls until the worker has done it.
        page.goto(f"{base}import/{queued.public_id}/")
        expect(status).to_have_attribute("data-state", "queued")
        suppression_import_run(import_id=queued.pk)
        expect(status).to_have_attribute("data-state", "done", timeout=5000)
        expect(page.get_by_test_id("count-added")).to_contain_text("2")
        seen["polled"] = snap(page, "polled")
        page.context.close()
        return seen

    seen = chromium.run(steps)
    assert seen == {
        name: {"1280": 0, "390": 0}
        for name in ("error", "addresses", "domains", "platform", "import", "polled")
    }
    assert set(
        Suppression.objects.filter(workspace=owner.workspace).values_list("address", flat=True)
    ) >= {
        "ann@target.com",
        "x@y.com",
        "q1@x.com",
    }
    assert SuppressedDomain.objects.get(workspace=owner.workspace).domain == "rival.com"
