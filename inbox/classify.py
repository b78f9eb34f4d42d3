"""Reply classification rules (pure: standard library only, no Django, no app code).

`classify` tells what a message found in a sending mailbox is: a delivery status notification
(RFC 3464), an out-of-office notice (with its return date when the text states one), another
automatic reply (RFC 3834 and the non-standard headers and subjects mail systems use), an
unsubscribe request written in words (or the `mailto:` one-click form, subject "unsubscribe
<token>"), or a human reply. Nothing here trusts the message: the caller matches what it
names (In-Reply-To / References, the original Message-ID inside a notification) against what
the platform sent. The rules are written out in docs/replies.md.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from email.header import decode_header, make_header
from email.message import Message
from email.utils import getaddresses, parsedate_to_datetime

HUMAN = "human"
AUTO_REPLY = "auto_reply"
OUT_OF_OFFICE = "out_of_office"
BOUNCE = "bounce"
UNSUBSCRIBE = "unsubscribe"
KINDS = (HUMAN, AUTO_REPLY, OUT_OF_OFFICE, BOUNCE, UNSUBSCRIBE)

TEXT_MAX = 20_000  # characters of body text the rules look at (and the reply keeps)
RETURN_HORIZON = timedelta(days=366)  # a "return date" further out than this is not believed
_ID = re.compile(r"<([^<>\s]{1,250})>")


@dataclass(frozen=True)
class Bounce:
    """What a delivery status notification says about the original message."""

    hard: bool
    status: str  # the enhanced status code ("5.1.1"), "" when the notice gives none
    recipient: str  # the address that failed, lower-case, "" when not stated
    original_message_id: str  # without angle brackets, "" when the notice does not quote it
    diagnostic: str


@dataclass(frozen=True)
class Classification:
    kind: str
    # The ids this message answers: In-Reply-To first, then References newest first (no <>).
    answers: tuple[str, ...] = ()
    returns_on: date | None = None  # out of office: the first day back, when stated
    bounce: Bounce | None = None
    unsubscribe_token: str = ""  # the signed token of a "unsubscribe <token>" subject
    reason: str = ""  # which rule decided, for people reading the record


# --- Reading a message defensively ---------------------------------------------------------------


def header_text(message: Message, name: str) -> str:
    """The decoded value of the first `name` header, "" when absent or unreadable.

    Reads the raw header (never the policy's parsed object, which can raise on odd input)."""
    wanted = name.lower()
    try:
        items = list(message.raw_items())
    except Exception:  # a broken message reads as having no headers
        return ""
    for key, value in items:
        if str(key).lower() != wanted:
            continue
        raw = str(value)
        try:
            text = str(make_header(decode_header(raw)))
        except Exception:  # undecodable encoded words: keep the raw text
            text = raw
        return " ".join(text.split())
    return ""


def message_ids(value: str) -> list[str]:
    """The msg-ids in a header value, without angle brackets, in order, once each."""
    return list(dict.fromkeys(_ID.findall(value)))


def answered_ids(message: Message) -> tuple[str, ...]:
    """In-Reply-To first, then References from the newest (last) to the oldest."""
    in_reply_to = message_ids(header_text(message, "In-Reply-To"))
    references = list(reversed(message_ids(header_text(message, "References"))))
    return tuple(dict.fromkeys([*in_reply_to, *references]))


def message_date(message: Message) -> datetime | None:
    """The Date header as an aware datetime, or None."""
    value = header_text(message, "Date")
    if not value:
        return None
    try:
        parsed = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if parsed is None or parsed.tzinfo is None:
        return None
    return parsed


def sender_of(message: Message) -> tuple[str, str]:
    """(display name, lower-case address) of the From header."""
    try:
        pairs = getaddresses([header_text(message, "From")])
    except Exception:
        return "", ""
    for name, address in pairs:
        if "@" in address:
            return name.strip(), address.strip().lower()
    return "", ""


def _walk(message: Message) -> Iterator[Message]:
    try:
        yield from message.walk()
    except Exception:  # a malformed tree: what was read so far
        return


def _content_type(part: Message) -> str:
    try:
        return part.get_content_type()
    except Exception:
        return "text/plain"


def _decoded(part: Message) -> str:
    try:
        payload = part.get_payload(decode=True)
    except Exception:
        return ""
    if not isinstance(payload, bytes):
        return ""
    try:
        charset = part.get_content_charset() or "utf-8"
        return payload.decode(charset, errors="replace")
    except (LookupError, TypeError, ValueError):
        return payload.decode("utf-8", errors="replace")


_TAG = re.compile(r"<[^>]*>")
_BREAK = re.compile(r"<\s*(?:br|/p|/div|/tr|/li)[^>]*>", re.IGNORECASE)
_SCRIPT = re.compile(r"<(script|style)[^>]*>.*?</\1\s*>", re.IGNORECASE | re.DOTALL)
_ENTITIES = {"&nbsp;": " ", "&amp;": "&", "&lt;": "<", "&gt;": ">", "&quot;": '"', "&#39;": "'"}


def _html_text(html: str) -> str:
    text = _BREAK.sub("\n", _SCRIPT.sub("", html[: TEXT_MAX * 5]))
    text = _TAG.sub("", text)
    for entity, char in _ENTITIES.items():
        text = text.replace(entity, char)
    return text


def body_text(message: Message) -> str:
    """The message's first plain-text part (or its HTML as text), outside attached messages."""
    html = ""
    for part in _top_parts(message):
        kind = _content_type(part)
        if kind == "text/plain":
            return _decoded(part)[:TEXT_MAX]
        if kind == "text/html" and not html:
            html = _decoded(part)
    return _html_text(html)[:TEXT_MAX]


def _top_parts(message: Message) -> Iterator[Message]:
    """The leaf parts of the message, not descending into attached messages."""
    try:
        if message.is_multipart():
            for part in message.get_payload():
                if not isinstance(part, Message):
                    continue
                if _content_type(part).startswith("message/"):
                    continue
                yield from _top_parts(part)
        else:
            yield message
    except Exception:
        return


# Where the quoted original starts in common clients (Gmail, Apple Mail, Outlook, Thunderbird).
_QUOTE_START = re.compile(
    r"^(?:>|-{2,}\s*(?:original message|ursprüngliche nachricht|message d'origine|"
    r"mensaje original)\s*-{2,}|_{10,}|"
    r"on .{0,200}wrote:|le .{0,200}a écrit\s*:|am .{0,200}schrieb .{0,200}:|"
    r"el .{0,200}escribió:|(?:from|de|von):\s.{0,300})\s*$",
    re.IGNORECASE,
)


def own_text(text: str) -> str:
    """The reply's own words: the text above the quoted original."""
    kept = []
    for line in text.splitlines():
        if _QUOTE_START.match(line.strip()):
            break
        kept.append(line)
    return "\n".join(kept).strip()


# --- Delivery status notifications (RFC 3464) ----------------------------------------------------

_STATUS = re.compile(r"\b([245])\.(\d{1,3})\.(\d{1,3})\b")
_BOUNCE_SUBJECT = re.compile(
    r"^(?:undeliver(?:able|ed)|delivery (?:status notification|failure|has failed)|"
    r"mail delivery (?:failed|failure|subsystem)|returned mail|failure notice|"
    r"non remis|unzustellbar|nicht zustellbar|no se puede entregar|no entregado|"
    r"warning: (?:could not send|delayed mail))",
    re.IGNORECASE,
)
_DAEMON = re.compile(r"^(?:mailer-daemon|postmaster|mail-daemon|mdaemon)@", re.IGNORECASE)


def _report_type(message: Message) -> str:
    try:
        if message.get_content_type() != "multipart/report":
            return ""
        return str(message.get_param("report-type", "") or "").lower()
    except Exception:
        return ""


def _status_blocks(message: Message) -> list[Message]:
    """The field blocks of the first message/delivery-status part (per-message, then one per
    recipient)."""
    for part in _walk(message):
        if _content_type(part) not in ("message/delivery-status", "message/global-delivery-status"):
            continue
        try:
            payload = part.get_payload()
        except Exception:
            return []
        if isinstance(payload, list):
            return [block for block in payload if isinstance(block, Message)]
        return []
    return []


def _field(value: str) -> str:
    """`rfc822; someone@example.com` -> `someone@example.com`."""
    return value.partition(";")[2].strip() if ";" in value else value.strip()


def _original_message_id(message: Message) -> str:
    """The Message-ID of the original quoted in a message/rfc822 or text/rfc822-headers part,
    or written in the notice's text ("Message-ID: <...>")."""
    for part in _walk(message):
        kind = _content_type(part)
        if kind in ("message/rfc822", "message/global"):
            try:
                inner = part.get_payload()
            except Exception:
                inner = None
            candidates = inner if isinstance(inner, list) else [inner]
            for candidate in candidates:
                if isinstance(candidate, Message):
                    found = message_ids(header_text(candidate, "Message-ID"))
                    if found:
                        return found[0]
        elif kind in ("text/rfc822-headers", "message/rfc822-headers", "text/plain"):
            text = _decoded(part) if kind != "message/rfc822-headers" else str(part)
            match = re.search(r"^message-id:\s*(<[^<>\s]+>)", text, re.IGNORECASE | re.MULTILINE)
            if match:
                return match.group(1)[1:-1]
    return ""


def _bounce(message: Message, text: str) -> Bounce | None:
    report = _report_type(message)
    blocks = _status_blocks(message)
    subject = header_text(message, "Subject")
    _name, sender = sender_of(message)
    if report != "delivery-status" and not blocks:
        # Non-standard notices: a daemon sender or a notice's subject, with a status code.
        if not (_DAEMON.match(sender) or _BOUNCE_SUBJECT.match(subject)):
            return None
        # A person's message whose subject starts like a notice is still a person's.
        person = header_text(message, "Auto-Submitted").lower() in ("", "no")
        if person and not _DAEMON.match(sender) and not _STATUS.search(text):
            return None
    status, recipient, diagnostic, action = "", "", "", ""
    for block in blocks[1:] or blocks:
        action = header_text(block, "Action").lower()
        status = header_text(block, "Status")
        recipient = _field(header_text(block, "Original-Recipient")) or _field(
            header_text(block, "Final-Recipient")
        )
        diagnostic = _field(header_text(block, "Diagnostic-Code"))
        if action in ("failed", "delayed") or status:
            break
    if action in ("delivered", "relayed", "expanded"):
        return None  # a success notice: not a bounce (classified as an automatic message)
    code = _STATUS.search(status) or _STATUS.search(diagnostic) or _STATUS.search(text)
    status = ".".join(code.groups()) if code else ""
    if status.startswith("2"):
        return None
    if action == "delayed" or status.startswith("4"):
        hard = False
    elif status.startswith("5") or action == "failed":
        hard = True
    else:
        hard = "delay" not in subject.lower() and "warning" not in subject.lower()
    if "@" not in recipient:
        recipient = _recipient_in_text(text)
    return Bounce(
        hard=hard,
        status=status,
        recipient=recipient.strip("<> ").lower()[:320],
        original_message_id=_original_message_id(message),
        diagnostic=" ".join(diagnostic.split())[:300],
    )


_TEXT_RECIPIENT = re.compile(r"<?([A-Za-z0-9._%+'-]{1,64}@[A-Za-z0-9.-]{1,253}\.[A-Za-z]{2,63})>?")


def _recipient_in_text(text: str) -> str:
    for match in _TEXT_RECIPIENT.finditer(text[:4000]):
        address = match.group(1)
        if not _DAEMON.match(address):
            return address
    return ""


# --- Automatic replies (RFC 3834 and the rest) ---------------------------------------------------

_AUTO_SUBJECT = re.compile(
    r"^(?:automatic reply|auto(?:matic)?[- ]?(?:reply|response|responder)|autoreply|"
    r"réponse automatique|reponse automatique|automatische antwort|respuesta automática|"
    r"respuesta automatica|risposta automatica|automatisch antwoord|resposta automática|"
    r"autosvar|automaattinen vastaus|automatyczna odpowiedź)\b",
    re.IGNORECASE,
)
_OOO_SUBJECT = re.compile(
    r"^(?:out of (?:the )?office|ooo\b|away from (?:the )?office|on vacation|on holiday|"
    r"absence|absent|abwesenheit|abwesenheitsnotiz|nicht im büro|im urlaub|"
    r"fuera de la oficina|ausente|de vacaciones|fuori ufficio|afwezig|ausência)",
    re.IGNORECASE,
)
_OOO_TEXT = re.compile(
    r"out of (?:the )?office|away from (?:the |my )?(?:office|desk|email)|on (?:annual )?leave|"
    r"on (?:vacation|holiday|parental leave|maternity leave|sick leave)|"
    r"limited access to (?:my )?e-?mail|i(?:'m| am) (?:currently )?(?:away|travel+ing)|"
    r"back (?:in the office )?on|return(?:ing)? (?:to the office )?on|"
    r"absente?s?\b|en congés?|de retour le|hors du bureau|en vacances|"
    r"nicht im büro|abwesend|im urlaub|bin ab .{0,40}wieder|zurück am|wieder im büro|"
    r"fuera de la oficina|de vacaciones|ausente|estaré de vuelta|regresaré|de regreso el",
    re.IGNORECASE,
)


def _auto_signal(message: Message) -> str:
    """Why the message was sent by a machine (headers), or ""."""
    auto_submitted = header_text(message, "Auto-Submitted").lower()
    if auto_submitted and not auto_submitted.startswith("no"):
        return f"Auto-Submitted: {auto_submitted}"
    for name in ("X-Autoreply", "X-Autorespond", "X-Autoresponder", "X-Auto-Reply"):
        value = header_text(message, name).lower()
        if value and value not in ("no", "false", "0"):
            return f"{name}: {value}"
    if header_text(message, "X-Autogenerated").lower() == "reply":
        return "X-Autogenerated: reply"
    precedence = header_text(message, "Precedence").lower()
    if precedence in ("auto_reply", "bulk", "junk"):
        return f"Precedence: {precedence}"
    if header_text(message, "X-Auto-Response-Suppress") and header_text(
        message, "X-MS-Exchange-Inbox-Rules-Loop"
    ):
        return "an Exchange rule's automatic message"
    return ""


def _subject_core(subject: str) -> str:
    """The subject without leading "Re:"-like prefixes."""
    return re.sub(r"^(?:\s*(?:re|aw|fw|fwd|tr|rv|sv|vs|wg)\s*:\s*)+", "", subject, flags=re.I)


# --- Unsubscribe requests in words ---------------------------------------------------------------

_UNSUBSCRIBE_TOKEN = re.compile(
    r"^\s*unsubscribe\s+([A-Za-z0-9_-]{1,20}:[A-Za-z0-9_-]{10,100})\s*$", re.IGNORECASE
)
_UNSUBSCRIBE_WORDS = re.compile(
    r"\bunsubscribe\b|\bremove me\b|\btake me off\b|\bopt(?:[- ])?out\b|"
    r"\bstop (?:e-?mailing|sending|contacting|writing)\b|"
    r"\b(?:do not|don't|please don't|never) (?:e-?mail|contact|write to) me\b|"
    r"\bno more e-?mails?\b|\bremove (?:my (?:e-?mail|address|name)|this (?:e-?mail|address))\b|"
    r"\bdésinscri|\bdésabonn|\bdesinscri|\bdesabonn|\bne (?:plus )?m'écrivez plus\b|"
    r"\bretirez[- ]moi\b|\bne plus recevoir\b|"
    r"\babmelden\b|\babbestellen\b|\baustragen\b|\bkeine (?:weiteren )?(?:e-?mails|nachrichten)\b|"
    r"\bnicht mehr (?:kontaktieren|anschreiben|schreiben)\b|"
    r"\bdarme de baja\b|\bdar(?:me)? de baja\b|\bdate de baja\b|\bno me (?:escriba|envíe|envie)\b|"
    r"\bno (?:quiero|deseo) recibir\b|\bcancelar (?:la )?suscripci",
    re.IGNORECASE,
)
UNSUBSCRIBE_TEXT_MAX = 600  # a longer message is a conversation that mentions the word


# --- Return dates --------------------------------------------------------------------------------

_MONTHS: dict[str, int] = {}
for _number, _names in enumerate(
    (
        "january jan janvier janv januar jänner jaenner enero ene",
        "february feb février fevrier févr fevr februar febrero",
        "march mar mars märz maerz marzo",
        "april apr avril avr abril abr",
        "may mai mayo",
        "june jun juin juni junio",
        "july jul juillet juil juli julio",
        "august aug août aout agosto ago",
        "september sep sept septembre septiembre setiembre set",
        "october oct octobre oktober okt octubre",
        "november nov novembre noviembre",
        "december dec décembre decembre déc dezember dez diciembre dic",
    ),
    start=1,
):
    for _name in _names.split():
        _MONTHS[_name] = _number
_MONTH = "|".join(sorted((re.escape(n) for n in _MONTHS), key=len, reverse=True))
_DAY_MONTH = re.compile(
    rf"\b(\d{{1,2}})(?:st|nd|rd|th|er|\.|º)?\s*(?:de\s+|of\s+)?({_MONTH})\.?"
    rf"(?:\s*(?:de\s+|,\s*)?(\d{{4}}))?(?![a-zäöüéû])",
    re.IGNORECASE,
)
_MONTH_DAY = re.compile(
    rf"\b({_MONTH})\.?\s+(\d{{1,2}})(?:st|nd|rd|th)?\b(?:,?\s*(\d{{4}}))?", re.IGNORECASE
)
_ISO = re.compile(r"\b(\d{4})-(\d{2})-(\d{2})\b")
_NUMERIC = re.compile(r"\b(\d{1,2})([./])(\d{1,2})(?:\2(\d{4}|\d{2})\b|\.(?!\d))")
_BACK_CUE = re.compile(
    r"(?:back|return|returning|returns|in the office|retour|rentre|reviens|zurück|wieder|"
    r"vuelta|regres|vuelvo|regreso)\W*(?:\w+\W+){0,4}$",
    re.IGNORECASE,
)
_UNTIL_CUE = re.compile(
    r"(?:until|till|through|thru|jusqu'?au|jusqu’au|jusqu'?à|bis(?: zum| einschließlich)?|"
    r"hasta(?: el)?)\W*(?:\w+\W+){0,3}$",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class _Mention:
    start: int
    day: int
    month: int
    year: int | None


def _mentions(text: str) -> list[_Mention]:
    found: list[_Mention] = []
    for match in _DAY_MONTH.finditer(text):
        month = _MONTHS.get(match.group(2).lower())
        if month:
            year = int(match.group(3)) if match.group(3) else None
            found.append(_Mention(match.start(), int(match.group(1)), month, year))
    for match in _MONTH_DAY.finditer(text):
        month = _MONTHS.get(match.group(1).lower())
        if month:
            year = int(match.group(3)) if match.group(3) else None
            found.append(_Mention(match.start(), int(match.group(2)), month, year))
    for match in _ISO.finditer(text):
        found.append(
            _Mention(match.start(), int(match.group(3)), int(match.group(2)), int(match.group(1)))
        )
    for match in _NUMERIC.finditer(text):
        first, second = int(match.group(1)), int(match.group(3))
        year_text = match.group(4)
        year = None
        if year_text:
            year = int(year_text) if len(year_text) == 4 else 2000 + int(year_text)
        if match.group(2) == "/" and second > 12 >= first:
            first, second = second, first  # month/day (the US order) when it can only be that
        found.append(_Mention(match.start(), first, second, year))
    return sorted(found, key=lambda m: m.start)


def _resolve(mention: _Mention, sent_on: date) -> date | None:
    years = [mention.year] if mention.year else [sent_on.year, sent_on.year + 1]
    for year in years:
        try:
            day = date(year, mention.month, mention.day)
        except ValueError:
            return None
        # A date a little before the message is a typo or the first day away, not a return.
        if day >= sent_on - timedelta(days=1) and day - sent_on <= RETURN_HORIZON:
            return day
    return None


def return_date(text: str, *, sent_on: date) -> date | None:
    """The first day back an out-of-office text states, relative to the day it was sent.

    A date after a "back / return / de retour / zurück / de vuelta" cue is the return day; one
    after "until / jusqu'au / bis / hasta" is the last day away (back the day after); failing
    both, the latest future date mentioned. Years default to the next occurrence."""
    text = text[:TEXT_MAX]
    back: date | None = None
    until: date | None = None
    latest: date | None = None
    for mention in _mentions(text):
        day = _resolve(mention, sent_on)
        if day is None:
            continue
        before = text[max(0, mention.start - 60) : mention.start]
        if back is None and _BACK_CUE.search(before):
            back = day
        elif until is None and _UNTIL_CUE.search(before):
            until = day + timedelta(days=1)
        if latest is None or day > latest:
            latest = day
    return back or until or latest


# --- The decision --------------------------------------------------------------------------------


def classify(message: Message) -> Classification:
    """What `message` is (see the module docstring); never raises on malformed input."""
    answers = answered_ids(message)
    subject = header_text(message, "Subject")
    text = body_text(message)

    bounce = _bounce(message, text)
    if bounce is not None:
        return Classification(BOUNCE, answers, bounce=bounce, reason="delivery status notice")

    token = _UNSUBSCRIBE_TOKEN.match(subject)
    if token:
        return Classification(
            UNSUBSCRIBE, answers, unsubscribe_token=token.group(1), reason="unsubscribe mailto"
        )

    signal = _auto_signal(message)
    core = _subject_core(subject)
    ooo_subject = bool(_OOO_SUBJECT.match(core))
    auto_subject = bool(_AUTO_SUBJECT.match(core))
    if signal or ooo_subject or auto_subject:
        mine = own_text(text)
        if ooo_subject or _OOO_TEXT.search(mine) or _OOO_TEXT.search(core):
            sent = message_date(message)
            returns_on = return_date(mine, sent_on=sent.date()) if sent else None
            why = signal or "out-of-office subject"
            return Classification(OUT_OF_OFFICE, answers, returns_on=returns_on, reason=why)
        return Classification(AUTO_REPLY, answers, reason=signal or "automatic-reply subject")
    if _report_type(message) or _DAEMON.match(sender_of(message)[1]):
        return Classification(AUTO_REPLY, answers, reason="a mail system's notice")

    mine = own_text(text)
    if len(mine) <= UNSUBSCRIBE_TEXT_MAX and (
        _UNSUBSCRIBE_WORDS.search(mine) or _UNSUBSCRIBE_WORDS.search(core)
    ):
        return Classification(UNSUBSCRIBE, answers, reason="asks to be removed")
    return Classification(HUMAN, answers, reason="a person's reply")
