"""The API's one error shape in the OpenAPI schema, documented on every operation."""

from typing import Any

ERROR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": 'Every error: {"error": {"code", "message", "fields"}}.',
    "properties": {
        "error": {
            "type": "object",
            "properties": {
                "code": {"type": "string", "description": "Stable, for programs."},
                "message": {"type": "string", "description": "For people."},
                "fields": {
                    "type": "object",
                    "description": "Per-field messages (400 only; else empty).",
                    "additionalProperties": {"type": "array", "items": {"type": "string"}},
                },
            },
            "required": ["code", "message", "fields"],
        }
    },
    "required": ["error"],
}

ERRORS = {
    "400": "The request or one of its fields is invalid.",
    "401": "No valid token or session.",
    "403": "The token or role does not allow this.",
    "404": "Not found, or not visible to this token.",
    "429": "Too many requests; retry later.",
}


def _takes_input(operation: dict[str, Any]) -> bool:
    return "requestBody" in operation or any(
        p.get("in") == "query" for p in operation.get("parameters", [])
    )


def error_responses(result: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
    """drf-spectacular postprocessing hook: add the error shape and the error statuses every
    operation may answer (400 only where the request carries input)."""
    result.setdefault("components", {}).setdefault("schemas", {})["Error"] = ERROR_SCHEMA
    reference = {"$ref": "#/components/schemas/Error"}
    for path in result.get("paths", {}).values():
        for operation in path.values():
            responses = operation.setdefault("responses", {})
            for status, description in ERRORS.items():
                if status == "400" and not _takes_input(operation):
                    continue
                responses.setdefault(
                    status,
                    {
                        "description": description,
                        "content": {"application/json": {"schema": reference}},
                    },
                )
    return result
