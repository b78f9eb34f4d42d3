"""Mailbox settings: what each field is, and the one parser that checks them.

The page's forms and the API's serializers are built from `FIELDS` and pass the raw values on;
the services parse them here. A rule about a mailbox field therefore lives in one place."""

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from django.conf import settings

from sending.models import ConnectionType, TlsMode

Kind = Literal["text", "int", "bool", "choice", "password"]
Group = Literal["mailbox", "smtp", "imap"]

LOCAL_PART = re.compile(r"^[a-z0-9!#$%&'*+/=?^_`{|}~-]+(\.[a-z0-9!#$%&'*+/=?^_`{|}~-]+)*$")
HOSTNAME = re.compile(
    r"^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$"
)
DEFAULT_DAILY_LIMIT = 40
SERVER_KEYS = ("host", "port", "security", "username", "password")


@dataclass(frozen=True)
class FieldSpec:
    name: str
    label: str
    kind: Kind
    group: Group
    max_length: int | None = None
    help: str = ""
    placeholder: str = ""

    @property
    def choices(self) -> list[tuple[str, str]]:
        return list(TlsMode.choices) if self.kind == "choice" else []


def _server_fields(prefix: Literal["smtp", "imap"]) -> list[FieldSpec]:
    ports = "465 (SSL) or 587 (STARTTLS)" if prefix == "smtp" else "993 (SSL)"
    return [
        FieldSpec(
            f"{prefix}_host", "Host", "text", prefix, 253, placeholder=f"{prefix}.example.com"
        ),
        FieldSpec(f"{prefix}_port", "Port", "int", prefix, help=f"Usually {ports}."),
        FieldSpec(f"{prefix}_security", "Security", "choice", prefix),
        FieldSpec(
            f"{prefix}_username", "Username", "text", prefix, 254, help="Usually the address."
        ),
        FieldSpec(
            f"{prefix}_password",
            "Password",
            "password",
            prefix,
            1024,
            help="For Google or Microsoft, an app password.",
        ),
    ]


FIELDS: list[FieldSpec] = [
    FieldSpec("display_name", "Sender name", "text", "mailbox", 120, placeholder="Alex Smith"),
    FieldSpec(
        "daily_limit",
        "Daily limit",
        "int",
        "mailbox",
        help="Most messages this mailbox sends in a day.",
    ),
    FieldSpec("warmup_enabled", "Enrol in warm-up", "bool", "mailbox"),
    *_server_fields("smtp"),
    *_server_fields("imap"),
]
FIELDS_BY_NAME = {spec.name: spec for spec in FIELDS}


class MailboxInputError(ValueError):
    """Per-field messages for values that cannot be stored."""

    def __init__(self, fields: dict[str, list[str]]) -> None:
        super().__init__("Some fields are invalid.")
        self.fields = fields


def local_part_parse(raw: object) -> str:
    local_part = str(raw or "").strip().lower()
    if not LOCAL_PART.match(local_part) or len(local_part) > 64:
        raise MailboxInputError(
            {
                "local_part": [
                    "Enter the part before the @ (letters, digits, dots; at most 64 characters)."
                ]
            }
        )
    return local_part


def connection_parse(raw: object) -> str:
    if raw not in ConnectionType.values:
        raise MailboxInputError(
            {"connection": [f"Choose one of {', '.join(ConnectionType.values)}."]}
        )
    return str(raw)


def _int(raw: object) -> int | None:
    if raw in (None, ""):
        return None
    try:
        return int(str(raw))
    except (TypeError, ValueError):
        return None


def _bool(raw: object) -> bool:
    if isinstance(raw, str):
        return raw.strip().lower() in ("1", "true", "on", "yes")
    return bool(raw)


def _server_field(name: str, raw: object, errors: dict[str, list[str]]) -> object:
    key = name.split("_", 1)[1]
    if key == "host":
        host = str(raw or "").strip().lower().rstrip(".")
        if not HOSTNAME.match(host):
            errors[name] = ["Enter the server's host name, such as smtp.example.com."]
        return host
    if key == "port":
        port = _int(raw)
        if port is None or not 1 <= port <= 65535:
            errors[name] = ["Enter a port between 1 and 65535."]
        return port
    if key == "security":
        if raw not in TlsMode.values:
            errors[name] = [f"Choose one of {', '.join(TlsMode.values)}."]
        return raw
    if key == "username":
        username = str(raw or "").strip()
        if not username or len(username) > 254:
            errors[name] = ["Enter the login name (1 to 254 characters)."]
        return username
    password = str(raw or "")
    if len(password) > 1024:
        errors[name] = ["At most 1024 characters."]
    return password


def mailbox_input_parse(
    data: Mapping[str, Any], *, connection: str, creating: bool, passwords: bool = True
) -> dict[str, Any]:
    """Check the given settings; return them cleaned (passwords still in plain text).

    Creating needs every server field of an external mailbox; an update checks only what it is
    given, so `{"daily_limit": 50}` is a complete change. An empty password on an update keeps
    the stored one; `passwords=False` (a mailbox that logs in with OAuth tokens) needs none.
    Raises MailboxInputError with a message per field."""
    errors: dict[str, list[str]] = {}
    out: dict[str, Any] = {}
    if "display_name" in data or creating:
        display = " ".join(str(data.get("display_name") or "").split())
        if len(display) > 120:
            errors["display_name"] = ["At most 120 characters."]
        out["display_name"] = display
    if "daily_limit" in data or creating:
        raw = data.get("daily_limit")
        limit = DEFAULT_DAILY_LIMIT if raw in (None, "") else _int(raw)
        highest = settings.MAILBOX_DAILY_LIMIT_MAX
        if limit is None or not 1 <= limit <= highest:
            errors["daily_limit"] = [f"Enter a daily limit from 1 to {highest}."]
        out["daily_limit"] = limit
    if "warmup_enabled" in data:
        out["warmup_enabled"] = _bool(data["warmup_enabled"])
    if connection == ConnectionType.EXTERNAL:
        for prefix in ("smtp", "imap"):
            for key in SERVER_KEYS:
                name = f"{prefix}_{key}"
                given = name in data and (key != "password" or data[name] not in (None, ""))
                if given or (creating and key != "password"):
                    out[name] = _server_field(name, data.get(name), errors)
            if creating and passwords and not data.get(f"{prefix}_password"):
                errors[f"{prefix}_password"] = [
                    "Enter the password (an app password for Google or Microsoft)."
                ]
    if errors:
        raise MailboxInputError(errors)
    return out
