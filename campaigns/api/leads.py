"""API: leads."""

from rest_framework.routers import SimpleRouter


def routes_register(router: SimpleRouter) -> None:
    """Add this area's viewsets to the API router."""
