"""Writes for warming: a mailbox's warm-up settings."""

from dataclasses import dataclass
from datetime import date, time
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from django.db import transaction
from django.utils import timezone

from accounts.models import User
from accounts.services import audit_log_record
from config.errors import ApplicationError
from sending.models import Mailbox
from sending.services.permissions import require_role
from warming.models import REPLY_RATE_RANGE, WarmupSettings
from warming.pairing import Plan, plan_day
from warming.schedule import MAX_TARGET
from warming.selectors import Network, recent_pairs, warming_network


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
