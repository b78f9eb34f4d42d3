"""The one application error type. Views and the DRF exception handler turn it into messages."""

from django.utils.html import format_html
from django.utils.safestring import SafeString


class ApplicationError(Exception):
    """A business rule refused the request; `message` is safe to show to the user."""

    def __init__(
        self,
        message: str,
        *,
        code: str = "invalid",
        fields: dict[str, list[str]] | None = None,
        status: int = 400,
        link: tuple[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.fields = fields or {}
        self.status = status
        # Where to go to fix it, as (label, url): e.g. the billing page for a plan limit.
        self.link = link

    def html(self) -> str | SafeString:
        """The message for a page, with its link when it has one."""
        if self.link is None:
            return self.message
        return format_html('{} <a href="{}">{}</a>', self.message, self.link[1], self.link[0])


class NotFound(ApplicationError):
    def __init__(self, message: str = "Not found.") -> None:
        super().__init__(message, code="not_found", status=404)


class PermissionDenied(ApplicationError):
    def __init__(self, message: str = "You do not have permission to do that.") -> None:
        super().__init__(message, code="permission_denied", status=403)
