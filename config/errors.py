"""The one application error type. Views and the DRF exception handler turn it into messages."""


class ApplicationError(Exception):
    """A business rule refused the request; `message` is safe to show to the user."""

    def __init__(
        self,
        message: str,
        *,
        code: str = "invalid",
        fields: dict[str, list[str]] | None = None,
        status: int = 400,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.fields = fields or {}
        self.status = status


class NotFound(ApplicationError):
    def __init__(self, message: str = "Not found.") -> None:
        super().__init__(message, code="not_found", status=404)


class PermissionDenied(ApplicationError):
    def __init__(self, message: str = "You do not have permission to do that.") -> None:
        super().__init__(message, code="permission_denied", status=403)
