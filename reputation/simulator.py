"""Realistic KumoMTA log records for one sending domain, for demos, seeding and tests (pure).

The records have the shape a real node posts to the log hook (see KUMOMTA.md): a Reception per
message, then its delivery attempts and outcome, and sometimes an ARF complaint that arrives
later through the feedback-loop listener. Output is deterministic for a given seed and start.
"""

from __future__ import annotations

import base64
import hashlib
import json
import random
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

PERSONAS = frozenset({"good", "average", "reckless", "spammer"})

# Where the platform's feedback-loop listener receives ARF reports (log_arf = LogThenDrop).
FEEDBACK_DOMAIN = "fbl.trustgate.example"
FEEDBACK_ADDRESS = f"fbl@{FEEDBACK_DOMAIN}"

# Sends are spread over 45 minutes and retries use a 1-minute retry_interval that doubles, so a
# run started at the default (one hour ago) ends about now instead of in the future.
SEND_WINDOW_SECONDS = 45 * 60
RETRY_INTERVAL_SECONDS = 60.0
STUCK_ATTEMPTS = 5  # soft bounces in a row to one address: what the service turns into a hard one


@dataclass(frozen=True)
class _Rates:
    hard_bounce: float
    complaint: float  # share of delivered messages the recipient reports as spam
    deferral: float  # deferred once or twice, then delivered
    spam_block: float
    stuck: float  # a full, abandoned mailbox: STUCK_ATTEMPTS soft bounces, then expiry
    pool: str


_RATES = {
    "good": _Rates(0.002, 0.0, 0.01, 0.0, 0.0, "premium"),
    "average": _Rates(0.01, 0.0003, 0.03, 0.0, 0.0, "standard"),
    "reckless": _Rates(0.065, 0.001, 0.05, 0.0, 0.004, "rehab"),
    "spammer": _Rates(0.04, 0.005, 0.03, 0.006, 0.0, "standard"),
}


@dataclass(frozen=True)
class _Deferral:
    code: int
    enhanced: tuple[int, int, int]
    content: str
    classification: str


@dataclass(frozen=True)
class _Provider:
    domain: str
    weight: float
    site: str
    mx_host: str
    mx_net: str
    delivered: str
    unknown_user: str
    quota: _Deferral  # what an abandoned mailbox answers, attempt after attempt
    deferrals: tuple[_Deferral, ...]
    spam_block: tuple[int, tuple[int, int, int], str]
    fbl_sender: str
    fbl_agent: str
    fbl_net: str


_PROVIDERS = (
    _Provider(
        domain="gmail.com",
        weight=0.45,
        site="(alt1|alt2|alt3|alt4)?.gmail-smtp-in.l.google.com",
        mx_host="gmail-smtp-in.l.google.com.",
        mx_net="142.250.102",
        delivered="OK  {epoch} {token}.{n} - gsmtp",
        unknown_user=(
            "The email account that you tried to reach does not exist. Please try "
            "double-checking the recipient's email address for typos or unnecessary spaces. "
            "For more information, go to https://support.google.com/mail/?p=NoSuchUser "
            "{token}.{n} - gsmtp"
        ),
        quota=_Deferral(
            452,
            (4, 2, 2),
            "The recipient's inbox is out of storage space. Please direct the recipient to "
            "https://support.google.com/mail/?p=OverQuotaTemp {token}.{n} - gsmtp",
            "QuotaIssues",
        ),
        deferrals=(
            _Deferral(
                451,
                (4, 3, 0),
                "Mail server temporarily rejected message. {token}.{n} - gsmtp",
                "TransientFailure",
            ),
        ),
        spam_block=(
            550,
            (5, 7, 1),
            "[{ip}] Our system has detected that this message is likely unsolicited mail. "
            "To reduce the amount of spam sent to Gmail, this message has been blocked. "
            "{token}.{n} - gsmtp",
        ),
        fbl_sender="fbl@google.com",
        fbl_agent="Google-FBL/1.0",
        fbl_net="209.85.220",
    ),
    _Provider(
        domain="outlook.com",
        weight=0.25,
        site="outlook-com.olc.protection.outlook.com",
        mx_host="outlook-com.olc.protection.outlook.com.",
        mx_net="52.101.68",
        delivered="OK <{token}@{host}> [Hostname={host}] Queued mail for delivery",
        unknown_user="RESOLVER.ADR.RecipNotFound; not found",
        quota=_Deferral(
            452,
            (4, 2, 2),
            "Mailbox full: the recipient's mailbox is full and can't accept messages now.",
            "QuotaIssues",
        ),
        deferrals=(
            _Deferral(
                451,
                (4, 7, 500),
                "Server busy. Please try again later from [{ip}]. (S77719) [{host}]",
                "TransientFailure",
            ),
        ),
        spam_block=(
            550,
            (5, 7, 1),
            "Unfortunately, messages from [{ip}] weren't sent. Please contact your Internet "
            "service provider since part of their network is on our block list (S3150). "
            "[{host}]",
        ),
        fbl_sender="staff@hotmail.com",
        fbl_agent="Microsoft JMR Report",
        fbl_net="40.92.19",
    ),
    _Provider(
        domain="yahoo.com",
        weight=0.15,
        site="(mta5|mta6|mta7).am0.yahoodns.net",
        mx_host="mta6.am0.yahoodns.net.",
        mx_net="67.195.204",
        delivered="OK dirdel",
        unknown_user="<{rcpt}>: Recipient address rejected: User unknown",
        quota=_Deferral(452, (4, 2, 2), "Mailbox quota exceeded", "QuotaIssues"),
        deferrals=(
            _Deferral(
                451,
                (4, 7, 0),
                "[TSS04] Messages from {ip} temporarily deferred due to unexpected volume or "
                "user complaints - 4.16.55.1; see https://postmaster.yahooinc.com/error-codes",
                "TransientFailure",
            ),
        ),
        spam_block=(
            554,
            (5, 7, 9),
            "Message not accepted for policy reasons. "
            "See https://postmaster.yahooinc.com/error-codes",
        ),
        fbl_sender="feedback@arf.mail.yahoo.com",
        fbl_agent="Yahoo!-Mail-Feedback/2.0",
        fbl_net="66.163.190",
    ),
    _Provider(
        domain="example.org",
        weight=0.15,
        site="mx.example.org",
        mx_host="mx.example.org.",
        mx_net="198.51.100",
        delivered="Ok: queued as 4{token}",
        unknown_user="<{rcpt}>: Recipient address rejected: User unknown in virtual mailbox table",
        quota=_Deferral(452, (4, 2, 2), "<{rcpt}>: Mailbox full", "QuotaIssues"),
        deferrals=(
            _Deferral(451, (4, 3, 0), "<{rcpt}>: Temporary lookup failure", "TransientFailure"),
            _Deferral(452, (4, 2, 2), "<{rcpt}>: Mailbox full", "QuotaIssues"),
        ),
        spam_block=(
            554,
            (5, 7, 1),
            "Service unavailable; Client host [{ip}] blocked using zen.spamhaus.org; "
            "https://www.spamhaus.org/query/ip/{ip}",
        ),
        fbl_sender="fbl@example.org",
        fbl_agent="Dovecot-ARF/1.0",
        fbl_net="198.51.100",
    ),
)
_PROVIDER_WEIGHTS = [provider.weight for provider in _PROVIDERS]

_FIRST_NAMES = (
    "alex", "maria", "john", "li", "fatima", "noah", "emma", "lucas", "sofia", "omar",
    "chloe", "david", "yuki", "ana", "peter", "grace", "ivan", "nina", "samuel", "lea",
)  # fmt: skip
_LAST_NAMES = (
    "smith", "garcia", "chen", "khan", "muller", "rossi", "kim", "silva", "dubois", "novak",
    "jones", "martin", "sato", "lopez", "brown", "ivanova", "wilson", "moreau", "lee", "costa",
)  # fmt: skip


@dataclass(frozen=True)
class _Message:
    id: str  # the MTA's spool id
    sender: str
    recipient: str
    provider: _Provider
    size: int
    received_at: float
    source: str
    source_address: str


def simulate_records(
    *,
    tenant: str,
    domain: str,
    persona: str,
    messages: int,
    seed: int | None = None,
    start: float | None = None,
    mailboxes: list[str] | None = None,
) -> list[dict[str, Any]]:
    """KumoMTA log records for `messages` sends of one domain behaving like `persona`."""
    if persona not in PERSONAS:
        raise ValueError(f"unknown persona {persona!r}; expected one of {sorted(PERSONAS)}")
    if messages < 0:
        raise ValueError("messages must be >= 0")
    simulation = _Simulation(
        rng=random.Random(seed),
        tenant=tenant,
        domain=domain,
        persona=persona,
        senders=list(mailboxes) if mailboxes else [f"sender@{domain}"],
    )
    start = time.time() - 3600 if start is None else start
    gap = SEND_WINDOW_SECONDS / max(messages, 1)
    for index in range(messages):
        simulation.send(start + index * gap + simulation.rng.uniform(0, gap * 0.9))
    return simulation.records()


# How often recipients open and reply to delivered mail (observed by the product, not the MTA).
ENGAGEMENT = {
    "good": (0.60, 0.22),
    "average": (0.50, 0.15),
    "reckless": (0.20, 0.02),
    "spammer": (0.10, 0.0),
}


def simulate_engagement(
    records: list[dict[str, Any]], *, persona: str, seed: int | None = None
) -> list[dict[str, str]]:
    """The opens and replies recipients make to the delivered messages among `records`, as
    product events (kind, source_key, recipient, message_id); deterministic for a seed."""
    open_rate, reply_rate = ENGAGEMENT[persona]
    rng = random.Random(seed)
    events: list[dict[str, str]] = []
    for record in records:
        if record.get("type") != "Delivery":
            continue
        recipient = record.get("recipient")
        recipient = recipient[0] if isinstance(recipient, list) else recipient or ""
        message_id = record.get("id", "")
        for kind, rate in (("opened", open_rate), ("replied", reply_rate)):
            if rng.random() < rate:
                events.append(
                    {
                        "kind": kind,
                        "source_key": f"sim:{message_id}:{kind}",
                        "recipient": recipient,
                        "message_id": message_id,
                    }
                )
    return events


class _Simulation:
    """One run: a shared random stream and the records logged so far."""

    def __init__(
        self, *, rng: random.Random, tenant: str, domain: str, persona: str, senders: list[str]
    ) -> None:
        self.rng = rng
        self.tenant = tenant
        self.domain = domain
        self.rates = _RATES[persona]
        self.senders = senders
        self.nodeid = self._uuid()
        # Two egress sources of the persona's pool (documentation addresses, RFC 5737).
        offset = 10 * (1 + sorted(PERSONAS).index(persona))
        self.sources = [(f"{self.rates.pool}-{n}", f"203.0.113.{offset + n}") for n in (1, 2)]
        self._logged: list[tuple[float, int, dict[str, Any]]] = []

    # --- one message -----------------------------------------------------------------------

    def send(self, at: float) -> None:
        rng = self.rng
        provider = rng.choices(_PROVIDERS, weights=_PROVIDER_WEIGHTS)[0]
        source, source_address = rng.choice(self.sources)
        message = _Message(
            id=self._spool_id(),
            sender=rng.choice(self.senders),
            recipient=f"{self._local_part()}@{provider.domain}",
            provider=provider,
            size=int(rng.lognormvariate(9.4, 0.5)),
            received_at=at,
            source=source,
            source_address=source_address,
        )
        self._reception(message)

        first_attempt = at + rng.uniform(0.3, 4.0)
        rates = self.rates
        draw = rng.random()
        if draw < rates.spam_block:
            self._spam_block(message, first_attempt)
            return
        draw -= rates.spam_block
        if draw < rates.hard_bounce:
            self._hard_bounce(message, first_attempt)
            return
        draw -= rates.hard_bounce
        if draw < rates.stuck:
            self._stuck(message, first_attempt)
            return
        draw -= rates.stuck
        attempt, when = 1, first_attempt
        if draw < rates.deferral:
            for _ in range(1 if rng.random() < 0.8 else 2):
                deferral = rng.choice(provider.deferrals)
                self._transient_failure(message, when, attempt, deferral)
                when = self._next_attempt(when, attempt)
                attempt += 1
        self._delivery(message, when, attempt)
        if rates.complaint and rng.random() < rates.complaint:
            self._feedback(message, when + rng.uniform(60, 600))

    def _spam_block(self, message: _Message, at: float) -> None:
        code, enhanced, content = message.provider.spam_block
        self._outbound(
            "Bounce",
            message,
            at,
            attempt=1,
            response=self._response(code, enhanced, content, message),
            classification="SpamBlock",
        )

    def _hard_bounce(self, message: _Message, at: float) -> None:
        content = message.provider.unknown_user
        self._outbound(
            "Bounce",
            message,
            at,
            attempt=1,
            response=self._response(550, (5, 1, 1), content, message),
            classification="InvalidRecipient",
        )

    def _stuck(self, message: _Message, at: float) -> None:
        # The same full mailbox answers 452 on every retry until the message expires.
        for attempt in range(1, STUCK_ATTEMPTS + 1):
            self._transient_failure(message, at, attempt, message.provider.quota)
            if attempt < STUCK_ATTEMPTS:
                at = self._next_attempt(at, attempt)
        expires_at = at + self.rng.uniform(0.001, 0.05)
        next_due = _rfc3339(at + RETRY_INTERVAL_SECONDS * 2**STUCK_ATTEMPTS)
        record = self._record("Expiration", message, expires_at, attempt=STUCK_ATTEMPTS)
        record.update(
            response={
                "code": 551,
                "enhanced_code": {"class": 5, "subject": 4, "detail": 7},
                "content": (
                    f"Next delivery time would be at {next_due} which exceeds the expiry time "
                    f"{_rfc3339(expires_at)} configured via set_scheduling"
                ),
                "command": None,
            },
            bounce_classification="MessageExpired",
            egress_pool=self.rates.pool,
        )
        self._log(expires_at, record)

    def _transient_failure(
        self, message: _Message, at: float, attempt: int, deferral: _Deferral
    ) -> None:
        self._outbound(
            "TransientFailure",
            message,
            at,
            attempt=attempt,
            response=self._response(deferral.code, deferral.enhanced, deferral.content, message),
            classification=deferral.classification,
        )

    def _delivery(self, message: _Message, at: float, attempt: int) -> None:
        content = message.provider.delivered
        self._outbound(
            "Delivery",
            message,
            at,
            attempt=attempt,
            response=self._response(250, (2, 0, 0), content, message, command=".\r\n"),
            classification="Uncategorized",
        )

    def _next_attempt(self, at: float, attempt: int) -> float:
        # KumoMTA doubles the retry interval after each failed attempt.
        backoff: float = RETRY_INTERVAL_SECONDS * 2 ** (attempt - 1)
        return at + backoff * self.rng.uniform(0.9, 1.2)

    # --- records -----------------------------------------------------------------------------

    def _record(
        self, record_type: str, message: _Message, at: float, *, attempt: int
    ) -> dict[str, Any]:
        received = message.received_at
        return {
            "type": record_type,
            "id": message.id,
            "sender": message.sender,
            "recipient": message.recipient,
            "queue": f"{self.tenant}@{message.provider.domain}",
            "site": "",
            "size": message.size,
            "response": {"code": 250, "enhanced_code": None, "content": "", "command": None},
            "peer_address": None,
            "timestamp": int(at),
            "event_time": _rfc3339(at),
            "created": int(received),
            "created_time": _rfc3339(received),
            "num_attempts": attempt,
            "bounce_classification": "Uncategorized",
            "egress_pool": None,
            "egress_source": None,
            "source_address": None,
            "feedback_report": None,
            "meta": {
                "tenant": self.tenant,
                "kind": "campaign",
                "message_id": self._rfc_id(message),
            },
            "headers": {},
            "delivery_protocol": None,
            "reception_protocol": None,
            "nodeid": self.nodeid,
        }

    def _reception(self, message: _Message) -> None:
        record = self._record("Reception", message, message.received_at, attempt=0)
        record.update(
            peer_address={"name": "", "addr": "10.0.0.5"},  # the platform's injector
            reception_protocol="ESMTP",
            session_id=self._uuid(),
        )
        self._log(message.received_at, record)

    def _outbound(
        self,
        record_type: str,
        message: _Message,
        at: float,
        *,
        attempt: int,
        response: dict[str, Any],
        classification: str,
    ) -> None:
        provider = message.provider
        record = self._record(record_type, message, at, attempt=attempt)
        record.update(
            site=f"{message.source}->{provider.site}",
            response=response,
            peer_address={
                "name": provider.mx_host,
                "addr": f"{provider.mx_net}.{self.rng.randint(2, 250)}",
            },
            bounce_classification=classification,
            egress_pool=self.rates.pool,
            egress_source=message.source,
            source_address={"address": f"{message.source_address}:0", "server": None},
            delivery_protocol="ESMTP",
            tls_cipher="TLS13_AES_256_GCM_SHA384",
            tls_protocol_version="TLSv1_3",
        )
        self._log(at, record)

    def _feedback(self, message: _Message, at: float) -> None:
        # The report is a new inbound message from the provider's FBL to our listener: its own
        # envelope is fbl@provider -> fbl@platform; the complainer is only in feedback_report.
        provider = message.provider
        rfc_id = self._rfc_id(message)
        trace = {
            "tenant": self.tenant,
            "recipient": message.recipient,
            "id": message.id,
            "message_id": rfc_id,
        }
        kumo_ref = base64.b64encode(json.dumps({"_@_": "\\_/", **trace}).encode()).decode()
        report_message = _Message(
            id=self._spool_id(),
            sender=provider.fbl_sender,
            recipient=FEEDBACK_ADDRESS,
            provider=provider,
            size=int(self.rng.lognormvariate(8.6, 0.3)),
            received_at=at,
            source="",
            source_address="",
        )
        record = self._record("Feedback", report_message, at, attempt=0)
        record.update(
            queue=FEEDBACK_DOMAIN,
            peer_address={
                "name": f"fbl.{provider.domain}",
                "addr": f"{provider.fbl_net}.{self.rng.randint(2, 250)}",
            },
            meta={},
            reception_protocol="ESMTP",
            feedback_report={
                "feedback_type": "abuse",
                "user_agent": provider.fbl_agent,
                "version": "1",
                "arrival_date": _rfc3339(at - self.rng.uniform(1, 30)),
                "incidents": None,
                "original_envelope_id": None,
                "original_mail_from": message.sender,
                "reporting_mta": {"mta_type": "dns", "name": f"fbl.{provider.domain}"},
                "source_ip": message.source_address,
                "authentication_results": [
                    f"{provider.domain}; dkim=pass header.d={self.domain}; "
                    f"spf=pass smtp.mailfrom={self.domain}"
                ],
                "original_rcpto_to": [message.recipient],
                "reported_domain": [self.domain],
                "reported_uri": [],
                "extensions": {},
                "original_message": (
                    f"From: {message.sender}\nTo: {message.recipient}\n"
                    f"Subject: Quick question\nMessage-ID: <{rfc_id}>\n"
                    f"X-KumoRef: {kumo_ref}\n\n"
                ),
                "supplemental_trace": trace,
            },
        )
        self._log(at, record)

    def _response(
        self,
        code: int,
        enhanced: tuple[int, int, int],
        content: str,
        message: _Message,
        *,
        command: str | None = None,
    ) -> dict[str, Any]:
        rng = self.rng
        text = content.format(
            epoch=int(message.received_at),
            token=f"{rng.getrandbits(48):012x}",
            n=rng.randint(10, 999),
            host=f"AM{rng.randint(1, 9)}PR0{rng.randint(1, 9)}MB{rng.randint(1000, 9999)}"
            f".eurprd0{rng.randint(1, 9)}.prod.outlook.com",
            ip=message.source_address,
            rcpt=message.recipient,
        )
        return {
            "code": code,
            "enhanced_code": {"class": enhanced[0], "subject": enhanced[1], "detail": enhanced[2]},
            "content": text,
            "command": command,
        }

    def _log(self, at: float, record: dict[str, Any]) -> None:
        # Ties keep creation order, so a message's records never swap within one second.
        self._logged.append((at, len(self._logged), record))

    def records(self) -> list[dict[str, Any]]:
        return [record for _, _, record in sorted(self._logged, key=lambda item: item[:2])]

    # --- names -------------------------------------------------------------------------------

    def _spool_id(self) -> str:
        return f"{self.rng.getrandbits(128):032x}"

    def _rfc_id(self, message: _Message) -> str:
        # The Message-ID the platform wrote (meta `message_id` in every record, as the policy
        # logs it): derived from the spool id rather than drawn, so a seed's traffic is unchanged.
        token = hashlib.blake2b(message.id.encode(), digest_size=16).hexdigest()
        return f"{token}@{self.domain}"

    def _uuid(self) -> str:
        raw = f"{self.rng.getrandbits(128):032x}"
        return f"{raw[:8]}-{raw[8:12]}-{raw[12:16]}-{raw[16:20]}-{raw[20:]}"

    def _local_part(self) -> str:
        rng = self.rng
        first, last = rng.choice(_FIRST_NAMES), rng.choice(_LAST_NAMES)
        style = rng.randrange(4)
        if style == 0:
            return f"{first}.{last}"
        if style == 1:
            return f"{first[0]}{last}"
        if style == 2:
            return f"{first}{rng.randint(1, 99)}"
        return f"{first}.{last}{rng.randint(1970, 2005)}"


def _rfc3339(at: float) -> str:
    return datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
