"""The KumoMTA log hook: authenticate, parse, store durably, answer."""

import base64
import binascii
import hmac
import logging

import orjson
from django.conf import settings
from django.db import DatabaseError
from django.http import HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from reputation.services.intake import MalformedBatch, intake_store, records_from_payload

logger = logging.getLogger(__name__)


def _error(status: int, code: str, message: str, **headers: str) -> JsonResponse:
    response = JsonResponse(
        {"error": {"code": code, "message": message, "fields": {}}}, status=status
    )
    for name, value in headers.items():
        response[name.replace("_", "-")] = value
    return response


def _authorized(request: HttpRequest) -> bool:
    expected = settings.KUMO_WEBHOOK_TOKEN.encode()
    scheme, _, credentials = request.headers.get("Authorization", "").partition(" ")
    presented = b""
    if scheme.lower() == "bearer":
        presented = credentials.strip().encode()
    elif scheme.lower() == "basic":
        try:
            presented = base64.b64decode(credentials.strip(), validate=True).partition(b":")[2]
        except (binascii.Error, ValueError):
            return False
    return bool(presented) and hmac.compare_digest(presented, expected)


@csrf_exempt
@require_POST
def kumomta_hook(request: HttpRequest) -> JsonResponse:
    if not _authorized(request):
        return _error(
            401,
            "not_authenticated",
            "A valid MTA token is required.",
            WWW_Authenticate='Bearer realm="kumomta"',
        )
    limit = settings.KUMO_WEBHOOK_MAX_BYTES
    try:
        declared = int(request.headers.get("Content-Length") or 0)
    except ValueError:
        declared = 0
    if declared > limit:
        return _error(413, "too_large", f"The body is over {limit} bytes; send smaller batches.")
    body = request.read(limit + 1)
    if len(body) > limit:
        return _error(413, "too_large", f"The body is over {limit} bytes; send smaller batches.")
    try:
        records = records_from_payload(orjson.loads(body))
    except orjson.JSONDecodeError:
        return _error(400, "malformed", "The body is not valid JSON.")
    except MalformedBatch as error:
        return _error(400, "malformed", str(error))
    try:
        result = intake_store(records=records)
    except DatabaseError:
        logger.exception("could not store %d MTA records", len(records))
        return _error(
            503, "unavailable", "Records could not be stored; retry later.", Retry_After="30"
        )
    return JsonResponse({"received": result.received, "unique": result.unique})
