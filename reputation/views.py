"""The KumoMTA log hook: authenticate, parse, store durably, answer."""

import base64
import binascii
import hmac
import logging
from typing import Any

import orjson
from django.conf import settings
from django.db import DatabaseError, connection, transaction
from django.http import HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from reputation.services.intake import MalformedBatch, intake_store, records_from_payload

logger = logging.getLogger(__name__)

# orjson writes JSON nested at most this deep (and reads up to 1,024 levels).
JSON_MAX_DEPTH = 254


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


def _unstorable(records: list[dict[str, Any]]) -> str:
    """Why the batch cannot be stored as it was parsed ("" when it can). orjson parses up to
    1,024 levels of nesting but writes at most 254, so a deeper record would fail only later,
    while being stored or processed."""
    try:
        orjson.dumps(records)  # one fast pass; the batch's list adds a level, so look closer
        return ""
    except orjson.JSONEncodeError:
        pass
    for index, record in enumerate(records):
        try:
            orjson.dumps(record)  # each record is stored on its own
        except orjson.JSONEncodeError as error:
            if "recursion" in str(error).lower():
                return (
                    f"Record {index} is nested too deeply to be stored (at most "
                    f"{JSON_MAX_DEPTH} levels)."
                )
            return f"Record {index} cannot be stored: {error}."
    return ""


def _statement_timeout(seconds: float) -> None:
    """Bound every statement of the current transaction: a database that is locked or overloaded
    makes the hook answer 503 (and the MTA retry) instead of holding the request."""
    if connection.vendor == "postgresql" and seconds > 0:
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT set_config('statement_timeout', %s, true)", [f"{int(seconds * 1000)}ms"]
            )


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
    unstorable = _unstorable(records)
    if unstorable:
        return _error(400, "malformed", unstorable)
    try:
        with transaction.atomic():
            _statement_timeout(settings.KUMO_WEBHOOK_STATEMENT_TIMEOUT_SECONDS)
            result = intake_store(records=records)
    except DatabaseError:
        logger.exception("could not store %d MTA records", len(records))
        return _error(
            503, "unavailable", "Records could not be stored; retry later.", Retry_After="30"
        )
    return JsonResponse({"received": result.received, "unique": result.unique})
