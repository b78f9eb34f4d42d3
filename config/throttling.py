"""The API's rate limits, which let requests through while the cache that counts them is down.

API throttles share capacity fairly; they are not a security boundary (API clients authenticate
with long random tokens, there is no password to guess through the API). A Redis outage should
therefore not turn every API call into a 500: the request goes through unthrottled and the
outage is logged. Limits that guard secrets (sign-in attempts, TOTP replay) use the same cache
through allauth and deliberately keep failing closed.
"""

import logging
from typing import TYPE_CHECKING

from rest_framework import throttling

if TYPE_CHECKING:  # DRF loads this module while rest_framework.views is still importing
    from rest_framework.request import Request
    from rest_framework.views import APIView

logger = logging.getLogger(__name__)


class FailOpen:
    """Mixed into a DRF throttle: a cache error lets the request through, with a warning."""

    def allow_request(self, request: "Request", view: "APIView") -> bool:
        try:
            return super().allow_request(request, view)  # type: ignore[misc]
        except Exception as error:
            # The cache backend's own error types vary (redis, memcached ...); counting in the
            # cache is the only thing here that can fail. One line per request, no traceback:
            # an outage would otherwise flood the log.
            logger.warning(
                "API throttle %s skipped, the cache is unavailable: %r", type(self).__name__, error
            )
            return True


class AnonRateThrottle(FailOpen, throttling.AnonRateThrottle):
    pass


class UserRateThrottle(FailOpen, throttling.UserRateThrottle):
    pass
