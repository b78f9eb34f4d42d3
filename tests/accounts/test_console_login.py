"""Where people land after logging in: staff in the operations console, customers in the app."""

import pytest
from django.test import Client
from django.urls import reverse

from tests.factories import UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _no_staff_mfa(settings) -> None:
    settings.STAFF_MFA_REQUIRED = False


def log_in(email: str, password: str, **query: str):
    path = "/accounts/login/"
    if query:
        path += "?" + "&".join(f"{k}={v}" for k, v in query.items())
    return Client().post(path, {"login": email, "password": password})


def test_staff_land_in_the_console(password):
    UserFactory(email="support@ops.test", is_staff=True)
    response = log_in("support@ops.test", password)
    assert response.status_code == 302
    assert response["Location"] == "/admin/"


def test_customers_land_in_the_app_as_before(owner, password):
    response = log_in(owner.user.email, password)
    assert response.status_code == 302
    assert response["Location"] == reverse("app_home")


def test_a_next_address_still_wins_for_staff(password):
    UserFactory(email="support@ops.test", is_staff=True)
    response = log_in("support@ops.test", password, next="/admin/sending/sendingdomain/")
    assert response["Location"] == "/admin/sending/sendingdomain/"
