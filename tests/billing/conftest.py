import os

import pytest
from django.core.management import call_command

from tests.test_browser_phone import chromium  # noqa: F401  (the browser, shared with its tests)


@pytest.fixture
def billing(stripe_api, settings):
    """Billing on against the local Stripe, the catalog synced, unpaid workspaces evaluating."""
    stripe_api.reset()
    settings.STRIPE_TEST_SECRET_KEY = stripe_api.api_key
    settings.BILLING_ENABLED = True
    settings.BILLING_UNPAID_PLAN = "evaluation"
    settings.SITE_URL = "https://app.trustgate.test"
    with open(os.devnull, "w") as quiet:
        call_command("billing_sync_plans", stdout=quiet)
    stripe_api.clear()
    return stripe_api
