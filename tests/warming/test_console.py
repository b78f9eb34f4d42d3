"""The console's golden seeds: their servers' passwords are write-only and stored encrypted."""

import pytest
from django.urls import reverse

from accounts.crypto import secret_decrypt
from warming.models import GoldenSeed

pytestmark = pytest.mark.django_db

SEED = {
    "address": "seed@gmail.com",
    "display_name": "Robin Seed",
    "provider": "google",
    "daily_budget": 20,
    "active": "on",
    "notes": "",
    "smtp_host": "smtp.gmail.com",
    "smtp_port": 587,
    "smtp_security": "starttls",
    "smtp_username": "seed@gmail.com",
    "smtp_password": "app-pass-smtp",
    "imap_host": "imap.gmail.com",
    "imap_port": 993,
    "imap_security": "ssl",
    "imap_username": "seed@gmail.com",
    "imap_password": "app-pass-imap",
}


def test_a_seed_is_added_with_encrypted_passwords_and_edits_keep_them(staff_client):
    response = staff_client.post(reverse("admin:warming_goldenseed_add"), SEED)
    assert response.status_code == 302, response.content.decode()[:2000]
    seed = GoldenSeed.objects.get(address="seed@gmail.com")
    assert "app-pass" not in seed.smtp_password_encrypted + seed.imap_password_encrypted
    assert secret_decrypt(seed.smtp_password_encrypted) == "app-pass-smtp"
    assert secret_decrypt(seed.imap_password_encrypted) == "app-pass-imap"

    page = staff_client.get(reverse("admin:warming_goldenseed_change", args=[seed.pk]))
    assert "app-pass" not in page.content.decode()  # never shown back

    changed = {**SEED, "daily_budget": 30, "smtp_password": "", "imap_password": ""}
    response = staff_client.post(
        reverse("admin:warming_goldenseed_change", args=[seed.pk]), changed
    )
    assert response.status_code == 302
    seed.refresh_from_db()
    assert seed.daily_budget == 30
    assert secret_decrypt(seed.imap_password_encrypted) == "app-pass-imap"


def test_a_seed_server_without_its_port_security_or_login_is_refused(staff_client):
    incomplete = {**SEED, "imap_port": "", "imap_security": "", "imap_username": ""}
    response = staff_client.post(reverse("admin:warming_goldenseed_add"), incomplete)
    assert response.status_code == 200
    assert "Needed with an IMAP host." in response.content.decode()
    assert not GoldenSeed.objects.exists()
