from typing import Any

from allauth.account.adapter import DefaultAccountAdapter
from allauth.mfa.adapter import DefaultMFAAdapter
from django.conf import settings
from django.core.exceptions import ValidationError
from django.http import HttpRequest
from django.urls import reverse
from django.utils.html import format_html
from django.utils.http import url_has_allowed_host_and_scheme

from accounts.crypto import secret_decrypt, secret_encrypt

AFTER_SIGNUP = "after_signup_next"


class AccountAdapter(DefaultAccountAdapter):
    def is_open_for_signup(self, request: HttpRequest) -> bool:
        return settings.SIGNUP_OPEN

    def get_login_redirect_url(self, request: HttpRequest) -> str:
        """Staff land in the operations console, customers in the app (a `next` URL wins, also
        one given at sign-up: confirming the address by email in between loses it otherwise)."""
        if request.user.is_staff:
            return reverse("admin:index")
        after_signup = request.session.pop(AFTER_SIGNUP, None)
        if after_signup and not request.GET.get("next") and not request.POST.get("next"):
            return str(after_signup)
        return super().get_login_redirect_url(request)

    def save_user(self, request: HttpRequest, user: Any, form: Any, commit: bool = True) -> Any:
        """Remember where a new customer was heading (e.g. "Start for $12 a year")."""
        target = request.POST.get("next") or request.GET.get("next") or ""
        if target and url_has_allowed_host_and_scheme(
            target, allowed_hosts={request.get_host()}, require_https=request.is_secure()
        ):
            request.session[AFTER_SIGNUP] = target
        return super().save_user(request, user, form, commit)

    def validation_error(self, code: str, *args) -> ValidationError:
        """Too many failed sign-ins: point to the password reset, which lets the owner in now
        (and clears the count) instead of waiting for the limit to pass."""
        if code == "too_many_login_attempts":
            message = format_html(
                'Too many failed sign-in attempts. <a href="{}">Reset your password</a> to sign '
                "in now, or try again later.",
                reverse("account_reset_password"),
            )
            return ValidationError(message, code=code)
        return super().validation_error(code, *args)


class MFAAdapter(DefaultMFAAdapter):
    """TOTP secrets and recovery-code seeds are stored encrypted."""

    def encrypt(self, text: str) -> str:
        return secret_encrypt(text)

    def decrypt(self, encrypted_text: str) -> str:
        return secret_decrypt(encrypted_text)
