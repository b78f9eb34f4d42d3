"""Writes for warming: a mailbox's warm-up settings."""

import random
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from django.conf import settings as django_settings
from django.db import transaction
from django.utils import timezone

from accounts.models import User
from accounts.services import audit_log_record
from config.errors import ApplicationError
from sending.models import Mailbox, MessageKind
from sending.services.outbound import MessageDraft, messages_reserve
from sending.services.permissions import require_role
from warming.content import compose, warmup_code, warmup_headers
from warming.models import (
    DEFAULT_REPLY_RATE,
    REPLY_RATE_RANGE,
    GoldenSeed,
    WarmupDay,
    WarmupSend,
    WarmupSettings,
)
from warming.pairing import REHAB, Plan, plan_day
from warming.schedule import MAX_TARGET
from warming.selectors import Network, recent_pairs, warming_network
from warming.services.agent import engage_delay


@dataclass(frozen=True)
class WarmupChoices:
    target: int
    reply_rate: int
    weekdays_only: bool
    prewarmed: bool
    paused: bool
    tag: str
    window_start: time
    window_end: time
    time_zone: str


def _problems(choices: WarmupChoices) -> dict[str, list[str]]:
    problems: dict[str, list[str]] = {}
    if not 1 <= choices.target <= MAX_TARGET:
        problems["target"] = [f"Choose between 1 and {MAX_TARGET} messages a day."]
    low, high = REPLY_RATE_RANGE
    if not low <= choices.reply_rate <= high:
        problems["reply_rate"] = [f"Choose between {low} and {high} %: replies look natural there."]
    if choices.window_start >= choices.window_end:
        problems["window_end"] = ["The working day must end after it starts."]
    try:
        ZoneInfo(choices.time_zone)
    except (ZoneInfoNotFoundError, ValueError):
        problems["time_zone"] = ["Unknown time zone: use a name such as Europe/Paris."]
    return problems


@transaction.atomic
def warmup_settings_update(
    *, mailbox: Mailbox, actor: User | None, choices: WarmupChoices
) -> WarmupSettings:
    """Change how a mailbox warms; refused as a whole (beside the fields) when a value is out of
    range."""
    if actor is not None:
        require_role(workspace=mailbox.domain.workspace, user=actor)
    problems = _problems(choices)
    if problems:
        first = next(iter(problems.values()))[0]
        raise ApplicationError(first, fields=problems)
    settings, _ = WarmupSettings.objects.select_for_update().get_or_create(
        mailbox=mailbox, defaults={"started_on": timezone.localdate(mailbox.created_at)}
    )
    before = {field: str(getattr(settings, field)) for field in choices.__dataclass_fields__}
    for field in choices.__dataclass_fields__:
        setattr(settings, field, getattr(choices, field))
    settings.paused_reason = "you paused its warm-up" if choices.paused else ""
    settings.updated_at = timezone.now()
    settings.save()
    after = {field: str(getattr(settings, field)) for field in choices.__dataclass_fields__}
    changed = {k: v for k, v in after.items() if before[k] != v}
    if changed:
        audit_log_record(
            action="warmup.settings",
            actor=actor,
            obj=mailbox,
            workspace=mailbox.domain.workspace,
            before={k: before[k] for k in changed},
            after=changed,
        )
    return settings


def warming_day_plan(*, day: date, seed: int | None = None) -> tuple[Plan, Network]:
    """The day's pairs for the whole network (the same day and seed give the same plan)."""
    network = warming_network(day=day)
    plan = plan_day(
        network.nodes,
        recent_pairs=recent_pairs(day=day),
        seed=day.toordinal() if seed is None else seed,
        day=day,
    )
    return plan, network


def _reply_rate(recipient: Mailbox | None) -> int:
    """How often the recipient answers (a seed: the default)."""
    saved: WarmupSettings | None = getattr(recipient, "warmup", None) if recipient else None
    return saved.reply_rate if saved is not None else DEFAULT_REPLY_RATE


def _look_delay(cluster: str, recipient: Mailbox | None, rng: random.Random) -> timedelta:
    """When the agent first looks for a message after its send time. A rehabilitation
    mailbox's messages wait first on its owner's Warming tasks page (done by hand, they earn
    credits); the agent takes those left when the hold ends."""
    delay = engage_delay(rng)
    if cluster == REHAB and recipient is not None:
        delay += timedelta(hours=django_settings.WARMUP_TASK_HOLD_HOURS)
    return delay


# The working day of some mailboxes has passed when their day is planned (a plan made after
# their local evening): those sends are dropped, not sent in a burst.
LATE = timedelta(minutes=5)


@transaction.atomic
def warming_day_save(
    *, day: date, seed: int | None = None, now: datetime | None = None
) -> WarmupDay | None:
    """Plan `day` once (None if it was planned already) and reserve its warm-up messages in the
    outbound path, each due at its send time; the outbound tick hands them over then."""
    now = now or timezone.now()
    marker, created = WarmupDay.objects.get_or_create(day=day)
    if not created:
        return None
    plan, _ = warming_day_plan(day=day, seed=seed)
    rows = [row for row in plan.rows() if row.send_at is None or row.send_at >= now - LATE]
    late = len(plan) - len(rows)
    mailbox_ids = {int(k[1:]) for row in rows for k in (row.sender, row.recipient) if k[0] == "m"}
    seed_ids = {int(k[1:]) for row in rows for k in (row.sender, row.recipient) if k[0] == "s"}
    mailboxes = Mailbox.objects.select_related("domain__workspace", "warmup").in_bulk(mailbox_ids)
    seeds = GoldenSeed.objects.in_bulk(seed_ids)
    rng = random.Random(f"warmup:{day.isoformat()}:{seed}")
    sends: list[WarmupSend] = []
    drafts: list[MessageDraft] = []
    for row in rows:
        sender = mailboxes.get(int(row.sender[1:])) if row.sender[0] == "m" else None
        recipient = mailboxes.get(int(row.recipient[1:])) if row.recipient[0] == "m" else None
        recipient_seed = seeds.get(int(row.recipient[1:])) if row.recipient[0] == "s" else None
        code = warmup_code(rng)
        send_at = row.send_at or now
        send = WarmupSend(
            day=day,
            sender=sender,
            sender_seed=None if sender else seeds.get(int(row.sender[1:])),
            recipient=recipient,
            recipient_seed=recipient_seed,
            cluster=row.cluster,
            send_at=send_at,
            code=code,
            will_reply=rng.random() * 100 < _reply_rate(recipient),
            engage_at=send_at + _look_delay(row.cluster, recipient, rng),
        )
        sends.append(send)
        if sender is None:
            continue  # a seed's own messages go out from the operator's side
        to_address, to_name = (
            (recipient.address, recipient.display_name)
            if recipient is not None
            else (recipient_seed.address, recipient_seed.display_name)
            if recipient_seed is not None
            else ("", "")
        )
        draft = compose(rng, sender_name=sender.display_name, recipient_name=to_name, code=code)
        send.subject = draft.subject[:300]
        drafts.append(
            MessageDraft(
                mailbox=sender,
                kind=MessageKind.WARMUP,
                recipient=to_address,
                recipient_name=to_name,
                subject=draft.subject,
                text_body=draft.text_body,
                campaign_ref=f"warmup-{day.isoformat()}",
                headers=warmup_headers(code),
                send_at=send.send_at,
            )
        )
    messages = iter(messages_reserve(drafts=drafts, now=now, enqueue=False))
    for send in sends:
        if send.sender is not None:
            send.message = next(messages)
            send.sent_message_id = send.message.message_id
    WarmupSend.objects.bulk_create(sends, batch_size=2000)
    marker.sends = len(sends)
    marker.unplaced = sum(missing.count for missing in plan.unplaced) + late
    marker.save(update_fields=["sends", "unplaced"])
    return marker
