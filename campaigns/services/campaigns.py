"""Building, launching, pausing and resuming campaigns. Every change is audit-logged.

A refusal is one ApplicationError naming the fields at fault; nothing is written then (each
service runs in one transaction and validates before it writes).
"""

from collections.abc import Mapping
from datetime import datetime, time, timedelta
from typing import Any
from zoneinfo import available_timezones

from django.db import transaction
from django.db.models import F, Max
from django.utils import timezone
from django.utils.dateparse import parse_datetime, parse_time

from accounts.models import User, Workspace
from accounts.services import audit_log_record
from campaigns.models import (
    Campaign,
    CampaignLead,
    CampaignLeadState,
    CampaignSend,
    CampaignStatus,
    CampaignStep,
    LeadList,
    OutOfOffice,
    StepVariant,
)
from campaigns.services.checks import campaign_checks, template_problems_located
from campaigns.services.enrolment import campaign_lists_enrol
from campaigns.templating import UNSUBSCRIBE_FIELD, compile_template
from campaigns.window import HOLIDAY_COUNTRIES
from config.errors import ApplicationError
from sending.models import DomainStatus, Mailbox

NAME_MAX = 120
SUBJECT_MAX = 500
BODY_MAX = 20_000
MAX_STEPS = 10
MAX_VARIANTS = 5
VARIANT_LABELS = "ABCDE"
MAX_DELAY_DAYS = 365
MAX_DAILY = 100_000
# A scheduled start this far in the past is taken for a mistake rather than "now".
START_GRACE = timedelta(minutes=5)

DEFAULT_SUBJECT = 'A quick question for {{ company | default: "your team" }}'
DEFAULT_BODY = (
    'Hi {{ first_name | default: "there" }},\n\n'
    '{I noticed|I saw} that {{ company | default: "your team" }} is growing, and I had a '
    "thought I wanted to share.\n\n"
    "Would a short call next week be useful?\n\n"
    "Best regards\n\n"
    "--\n"
    "Not interested? Unsubscribe: {{ unsubscribe_url }}\n"
)
FOLLOW_UP_BODY = (
    'Hi {{ first_name | default: "there" }},\n\n'
    "Just bringing this back to the top of your inbox. Is it worth a short conversation?\n\n"
    "--\n"
    "Not interested? Unsubscribe: {{ unsubscribe_url }}\n"
)

HOLIDAY_CODES = frozenset(code for code, _ in HOLIDAY_COUNTRIES)
SETTINGS_KEYS = frozenset(
    {
        "name",
        "time_zone",
        "use_lead_time_zone",
        "send_days",
        "window_start",
        "window_end",
        "holiday_country",
        "daily_limit",
        "daily_new_leads",
        "stop_on_reply",
        "stop_on_auto_reply",
        "out_of_office",
        "provider_matching",
        "start_at",
        "mailbox_ids",
        "lead_list_ids",
        "lead_list_public_ids",
    }
)
FLAGS = ("use_lead_time_zone", "stop_on_reply", "stop_on_auto_reply", "provider_matching")
LAUNCHED = (CampaignStatus.SCHEDULED, CampaignStatus.RUNNING, CampaignStatus.PAUSED)


def _audit(
    action: str,
    *,
    campaign: Campaign,
    actor: User | None,
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
    reason: str = "",
) -> None:
    audit_log_record(
        action=action,
        actor=actor,
        obj=campaign,
        workspace=campaign.workspace,
        reason=reason,
        before=before,
        after=after,
    )


def _lock(campaign: Campaign) -> Campaign:
    """Lock the campaign's row for this transaction and read it afresh (into the same object)."""
    if not Campaign.objects.select_for_update().filter(pk=campaign.pk).exists():
        raise ApplicationError("This campaign no longer exists.", code="not_found", status=404)
    campaign.refresh_from_db()
    return campaign


def _name_clean(name: Any) -> str:
    text = name.strip() if isinstance(name, str) else ""
    if not text:
        raise ApplicationError(
            "Give the campaign a name.", fields={"name": ["Give the campaign a name."]}
        )
    if len(text) > NAME_MAX:
        message = f"Keep the name to {NAME_MAX} characters."
        raise ApplicationError(message, fields={"name": [message]})
    return text


@transaction.atomic
def campaign_create(*, workspace: Workspace, actor: User | None, name: str) -> Campaign:
    """A draft campaign with one step and a ready-to-edit first message."""
    campaign = Campaign.objects.create(
        workspace=workspace, name=_name_clean(name), created_by=actor
    )
    step = CampaignStep.objects.create(campaign=campaign, position=1, delay_days=0)
    StepVariant.objects.create(step=step, label="A", subject=DEFAULT_SUBJECT, body=DEFAULT_BODY)
    _audit("campaign.create", campaign=campaign, actor=actor, after={"name": campaign.name})
    return campaign


# --- settings ----------------------------------------------------------------------------------


def _as_bool(value: Any) -> bool | None:
    return value if isinstance(value, bool) else None


def _as_int(value: Any, low: int, high: int) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int):
        return None
    return value if low <= value <= high else None


def _as_time(value: Any) -> time | None:
    if isinstance(value, time):
        return value.replace(tzinfo=None)
    if isinstance(value, str):
        try:
            return parse_time(value.strip())
        except ValueError:
            return None
    return None


def _as_ids(value: Any) -> list[int] | None:
    if not isinstance(value, list | tuple):
        return None
    if not all(isinstance(item, int) and not isinstance(item, bool) for item in value):
        return None
    return list(dict.fromkeys(value))


class _Settings:
    """Validates a settings change field by field, collecting every problem before writing."""

    def __init__(self, campaign: Campaign, data: Mapping[str, Any], now: datetime) -> None:
        self.campaign, self.data, self.now = campaign, data, now
        self.errors: dict[str, list[str]] = {}
        self.values: dict[str, Any] = {}
        self.mailboxes: list[Mailbox] | None = None
        self.lists: list[LeadList] | None = None

    def error(self, key: str, message: str) -> None:
        self.errors.setdefault(key, []).append(message)

    def clean(self) -> None:
        data = self.data
        for key in data:
            if key not in SETTINGS_KEYS:
                self.error(key, "This is not a campaign setting.")
        if "name" in data:
            try:
                self.values["name"] = _name_clean(data["name"])
            except ApplicationError as error:
                self.error("name", error.message)
        if "time_zone" in data:
            self._time_zone(data["time_zone"])
        for key in (
            "use_lead_time_zone",
            "stop_on_reply",
            "stop_on_auto_reply",
            "provider_matching",
        ):
            if key in data:
                flag = _as_bool(data[key])
                if flag is None:
                    self.error(key, "Choose yes or no.")
                else:
                    self.values[key] = flag
        if "out_of_office" in data:
            if data["out_of_office"] in OutOfOffice.values:
                self.values["out_of_office"] = data["out_of_office"]
            else:
                self.error("out_of_office", "Choose resume (hold until the return date) or stop.")
        if "send_days" in data:
            self._send_days(data["send_days"])
        self._window()
        if "holiday_country" in data:
            code = data["holiday_country"]
            code = code.strip().upper() if isinstance(code, str) else None
            if code is None or (code and code not in HOLIDAY_CODES):
                self.error("holiday_country", "Choose a country from the list, or none.")
            else:
                self.values["holiday_country"] = code
        if "daily_limit" in data:
            limit = _as_int(data["daily_limit"], 1, MAX_DAILY)
            if limit is None:
                self.error("daily_limit", f"Give a whole number from 1 to {MAX_DAILY:,}.")
            else:
                self.values["daily_limit"] = limit
        if "daily_new_leads" in data:
            new = _as_int(data["daily_new_leads"], 0, MAX_DAILY)
            if new is None:
                self.error(
                    "daily_new_leads",
                    f"Give a whole number from 0 (follow-ups only) to {MAX_DAILY:,}.",
                )
            else:
                self.values["daily_new_leads"] = new
        if "start_at" in data:
            self._start_at(data["start_at"])
        if "mailbox_ids" in data:
            self._mailboxes(data["mailbox_ids"])
        if "lead_list_ids" in data or "lead_list_public_ids" in data:
            self._lists()

    def _time_zone(self, value: Any) -> None:
        name = value.strip() if isinstance(value, str) else ""
        if name not in available_timezones():
            self.error("time_zone", "Choose a time zone from the list, e.g. Europe/Berlin.")
            return
        self.values["time_zone"] = name

    def _send_days(self, value: Any) -> None:
        days = _as_ids(value)
        if days is None or any(day < 0 or day > 6 for day in days):
            self.error("send_days", "Choose days of the week (0 = Monday ... 6 = Sunday).")
        elif not days:
            self.error("send_days", "Choose at least one sending day.")
        else:
            self.values["send_days"] = sorted(days)

    def _window(self) -> None:
        bounds: dict[str, time] = {}
        for key in ("window_start", "window_end"):
            if key not in self.data:
                bounds[key] = _as_time(getattr(self.campaign, key)) or time(0)
                continue
            parsed = _as_time(self.data[key])
            if parsed is None:
                self.error(key, "Give a time such as 09:00.")
                return
            bounds[key] = self.values[key] = parsed
        if bounds["window_start"] >= bounds["window_end"]:
            self.error("window_end", "The sending window must end after it starts.")

    def _start_at(self, value: Any) -> None:
        if value is None or value == "":
            self.values["start_at"] = None
            return
        moment = parse_datetime(value) if isinstance(value, str) else value
        if not isinstance(moment, datetime) or moment.tzinfo is None:
            self.error("start_at", "Give a date and time with its time zone.")
        elif moment < self.now - START_GRACE:
            self.error("start_at", "The scheduled start is in the past: choose a later time.")
        else:
            self.values["start_at"] = moment

    def _mailboxes(self, value: Any) -> None:
        ids = _as_ids(value)
        if ids is None:
            self.error("mailbox_ids", "Give a list of mailbox ids.")
            return
        found = list(
            Mailbox.objects.filter(domain__workspace_id=self.campaign.workspace_id, pk__in=ids)
            .exclude(domain__status=DomainStatus.RETIRED)
            .select_related("domain")
        )
        unknown = sorted(set(ids) - {m.pk for m in found})
        if unknown:
            self.error(
                "mailbox_ids",
                f"Mailbox {', '.join(map(str, unknown))} is not one of this workspace's mailboxes.",
            )
            return
        self.mailboxes = found

    def _lists(self) -> None:
        lists = LeadList.objects.filter(workspace_id=self.campaign.workspace_id)
        if "lead_list_public_ids" in self.data:
            key, value = "lead_list_public_ids", self.data["lead_list_public_ids"]
            wanted = list(value) if isinstance(value, list | tuple) else None
            if wanted is None or not all(isinstance(item, str) for item in wanted):
                self.error(key, "Give a list of lead list ids.")
                return
            found = list(lists.filter(public_id__in=wanted))
            unknown = sorted(set(wanted) - {item.public_id for item in found})
        else:
            key = "lead_list_ids"
            ids = _as_ids(self.data[key])
            if ids is None:
                self.error(key, "Give a list of lead list ids.")
                return
            found = list(lists.filter(pk__in=ids))
            unknown = [str(pk) for pk in sorted(set(ids) - {item.pk for item in found})]
        if unknown:
            self.error(key, f"Lead list {', '.join(unknown)} is not one of this workspace's lists.")
            return
        self.lists = found


def _jsonable(value: Any) -> Any:
    if isinstance(value, time | datetime):
        return value.isoformat()
    return value


@transaction.atomic
def campaign_settings_update(
    *, campaign: Campaign, actor: User | None, data: Mapping[str, Any], now: datetime | None = None
) -> Campaign:
    """Change the campaign's settings, window, mailboxes and lists; lists added to a launched
    campaign are enrolled at once."""
    now = now or timezone.now()
    locked = _lock(campaign)
    checked = _Settings(locked, data, now)
    checked.clean()
    if checked.errors:
        first = next(iter(checked.errors.values()))[0]
        raise ApplicationError(
            f"The settings were not saved: {first}", code="invalid", fields=checked.errors
        )
    before: dict[str, Any] = {}
    after: dict[str, Any] = {}
    for key, value in checked.values.items():
        if getattr(locked, key) != value:
            before[key], after[key] = _jsonable(getattr(locked, key)), _jsonable(value)
            setattr(locked, key, value)
    if "start_at" in after and locked.status == CampaignStatus.SCHEDULED:
        _schedule_move(locked, now)
    locked.save()
    if checked.mailboxes is not None:
        old = sorted(locked.mailboxes.values_list("pk", flat=True))
        new = sorted(m.pk for m in checked.mailboxes)
        if old != new:
            locked.mailboxes.set(checked.mailboxes)
            before["mailbox_ids"], after["mailbox_ids"] = old, new
    added = False
    if checked.lists is not None:
        old = sorted(locked.lead_lists.values_list("pk", flat=True))
        new = sorted(item.pk for item in checked.lists)
        if old != new:
            locked.lead_lists.set(checked.lists)
            before["lead_list_ids"], after["lead_list_ids"] = old, new
            added = bool(set(new) - set(old))
    if added and locked.status in (*LAUNCHED, CampaignStatus.COMPLETED):
        after["enrolled"] = campaign_lists_enrol(campaign=locked, now=now)
    if after:
        _audit("campaign.settings", campaign=locked, actor=actor, before=before, after=after)
    return locked


def _schedule_move(campaign: Campaign, now: datetime) -> None:
    """A scheduled campaign whose start moved: its first steps move with it (or start now)."""
    start = campaign.start_at if campaign.start_at and campaign.start_at > now else now
    CampaignLead.objects.filter(
        campaign=campaign, state=CampaignLeadState.WAITING, next_step=1, last_sent_at=None
    ).update(next_at=start)
    if start == now:
        campaign.status, campaign.launched_at = CampaignStatus.RUNNING, now


# --- steps and variants ------------------------------------------------------------------------


def _delay_clean(*, position: int, delay_days: Any) -> int:
    if isinstance(delay_days, bool) or not isinstance(delay_days, int):
        raise ApplicationError(
            "Give the delay in whole days.", fields={"delay_days": ["Give a whole number."]}
        )
    if position == 1:
        return 0  # the first step goes as soon as the window opens
    if not 1 <= delay_days <= MAX_DELAY_DAYS:
        message = f"A follow-up waits 1 to {MAX_DELAY_DAYS} days after the step before it."
        raise ApplicationError(message, fields={"delay_days": [message]})
    return delay_days


@transaction.atomic
def campaign_step_add(*, campaign: Campaign, actor: User | None, delay_days: int) -> CampaignStep:
    """Append a step (a follow-up replying in the thread) with variant A."""
    locked = _lock(campaign)
    last = CampaignStep.objects.filter(campaign=locked).aggregate(last=Max("position"))["last"]
    position = (last or 0) + 1
    if position > MAX_STEPS:
        raise ApplicationError(f"A campaign has at most {MAX_STEPS} steps.", code="too_many_steps")
    delay = _delay_clean(position=position, delay_days=delay_days)
    step = CampaignStep.objects.create(campaign=locked, position=position, delay_days=delay)
    StepVariant.objects.create(
        step=step,
        label="A",
        subject=DEFAULT_SUBJECT if position == 1 else "",
        body=DEFAULT_BODY if position == 1 else FOLLOW_UP_BODY,
    )
    _audit(
        "campaign.step_add",
        campaign=locked,
        actor=actor,
        after={"step": position, "delay_days": delay},
    )
    return step


@transaction.atomic
def campaign_step_update(
    *, step: CampaignStep, actor: User | None, delay_days: int
) -> CampaignStep:
    """Change how many days a step waits after the one before it."""
    campaign = _lock(step.campaign)
    delay = _delay_clean(position=step.position, delay_days=delay_days)
    if delay != step.delay_days:
        before = step.delay_days
        step.delay_days = delay
        step.save(update_fields=["delay_days"])
        _audit(
            "campaign.step_update",
            campaign=campaign,
            actor=actor,
            before={"step": step.position, "delay_days": before},
            after={"step": step.position, "delay_days": delay},
        )
    return step


@transaction.atomic
def campaign_step_remove(*, step: CampaignStep, actor: User | None) -> None:
    """Remove a step nobody was sent yet; the later steps move up."""
    campaign = _lock(step.campaign)
    steps = list(CampaignStep.objects.filter(campaign=campaign).order_by("position"))
    if len(steps) <= 1:
        raise ApplicationError(
            "A campaign needs at least one step: edit this one instead.", code="last_step"
        )
    sent = CampaignSend.objects.filter(step=step).count()
    if sent:
        raise ApplicationError(
            f"Step {step.position} was already sent to {sent:,} "
            f"{'lead' if sent == 1 else 'leads'}: it stays, so their threads and numbers do. "
            "Turn its variants off or pause the campaign instead.",
            code="step_sent",
        )
    position = step.position
    step.delete()
    for later in steps:
        if later.position > position:
            later.position -= 1
            if later.position == 1:
                later.delay_days = 0
            later.save(update_fields=["position", "delay_days"])
    # Leads waiting for a later step keep waiting for the same message, now one place up.
    CampaignLead.objects.filter(campaign=campaign, next_step__gt=position).update(
        next_step=F("next_step") - 1
    )
    _audit("campaign.step_remove", campaign=campaign, actor=actor, before={"step": position})


def _template_errors(subject: str, body: str, *, first_step: bool) -> dict[str, list[str]]:
    errors: dict[str, list[str]] = {}
    if len(subject) > SUBJECT_MAX:
        errors["subject"] = [f"Keep the subject to {SUBJECT_MAX} characters."]
    else:
        problems = template_problems_located(subject)
        if problems:
            errors["subject"] = problems
    if "\n" in subject or "\r" in subject:
        errors.setdefault("subject", []).append("A subject is one line.")
    if not body.strip():
        errors["body"] = ["Write the message."]
    elif len(body) > BODY_MAX:
        errors["body"] = [f"Keep the message to {BODY_MAX:,} characters."]
    else:
        problems = template_problems_located(body)
        if problems:
            errors["body"] = problems
    if first_step and not subject.strip():
        errors.setdefault("subject", []).append("The first message needs a subject.")
    return errors


@transaction.atomic
def step_variant_save(
    *,
    step: CampaignStep,
    actor: User | None,
    variant: StepVariant | None,
    subject: str,
    body: str,
    active: bool = True,
) -> StepVariant:
    """Save a variant's subject and body (None adds the next label, B, C ...)."""
    campaign = _lock(step.campaign)
    if variant is not None and variant.step_id != step.pk:
        raise ApplicationError("That variant belongs to another step.", status=404)
    subject = subject.strip()
    errors = _template_errors(subject, body, first_step=step.position == 1)
    if (
        not errors
        and campaign.status in LAUNCHED
        and UNSUBSCRIBE_FIELD not in compile_template(body).fields_used
    ):
        errors["body"] = [
            f"This campaign is live: keep the unsubscribe link {{{{ {UNSUBSCRIBE_FIELD} }}}} in "
            "the message."
        ]
    variants = list(StepVariant.objects.filter(step=step).order_by("label"))
    if not active:
        others = [v for v in variants if v.active and (variant is None or v.pk != variant.pk)]
        if not others:
            errors["active"] = ["A step needs at least one active variant."]
    if errors:
        first = next(iter(errors.values()))[0]
        raise ApplicationError(
            f"The message was not saved: {first}", code="invalid_template", fields=errors
        )
    if variant is None:
        used = {v.label for v in variants}
        free = [label for label in VARIANT_LABELS if label not in used]
        if len(variants) >= MAX_VARIANTS or not free:
            raise ApplicationError(
                f"A step has at most {MAX_VARIANTS} variants.", code="too_many_variants"
            )
        variant = StepVariant.objects.create(
            step=step, label=free[0], subject=subject, body=body, active=active
        )
        _audit(
            "campaign.variant_add",
            campaign=campaign,
            actor=actor,
            after={"step": step.position, "variant": variant.label},
        )
        return variant
    before = {"subject": variant.subject, "body": variant.body, "active": variant.active}
    variant.subject, variant.body, variant.active = subject, body, active
    after = {"subject": subject, "body": body, "active": active}
    if before != after:
        variant.save(update_fields=["subject", "body", "active"])
        _audit(
            "campaign.variant_update",
            campaign=campaign,
            actor=actor,
            before={"step": step.position, "variant": variant.label, **before},
            after={"step": step.position, "variant": variant.label, **after},
        )
    return variant


@transaction.atomic
def step_variant_remove(*, variant: StepVariant, actor: User | None) -> None:
    """Remove a variant nobody was sent (at least one active variant stays)."""
    step = variant.step
    campaign = _lock(step.campaign)
    others = StepVariant.objects.filter(step=step, active=True).exclude(pk=variant.pk)
    if not others.exists():
        raise ApplicationError(
            f"Step {step.position} needs at least one active variant: edit this one instead.",
            code="last_variant",
        )
    sent = CampaignSend.objects.filter(variant=variant).count()
    if sent:
        raise ApplicationError(
            f"Variant {variant.label} was already sent to {sent:,} "
            f"{'lead' if sent == 1 else 'leads'}: turn it off instead, so its numbers stay.",
            code="variant_sent",
        )
    label = variant.label
    variant.delete()
    _audit(
        "campaign.variant_remove",
        campaign=campaign,
        actor=actor,
        before={"step": step.position, "variant": label},
    )


# --- lifecycle ---------------------------------------------------------------------------------


def _listed(checks: list[Any]) -> str:
    return " ".join(f"({index}) {check.message}" for index, check in enumerate(checks, start=1))


@transaction.atomic
def campaign_launch(
    *,
    campaign: Campaign,
    actor: User | None,
    acknowledge_warnings: bool = False,
    now: datetime | None = None,
) -> Campaign:
    """Run the checks, enrol the lists' leads and start (or schedule) the campaign."""
    now = now or timezone.now()
    locked = _lock(campaign)
    if locked.status != CampaignStatus.DRAFT:
        raise ApplicationError(
            f"This campaign is already {locked.get_status_display().lower()}: only a draft "
            "can be launched.",
            code="campaign_not_draft",
            status=409,
        )
    report = campaign_checks(campaign=locked, now=now)
    if report.blocking:
        count = len(report.blocking)
        raise ApplicationError(
            f"The campaign cannot launch until {'this is' if count == 1 else 'these are'} "
            f"fixed: {_listed(report.blocking)}",
            code="campaign_checks_failed",
            fields={"checks": [check.message for check in report.blocking]},
        )
    if report.warnings and not acknowledge_warnings:
        raise ApplicationError(
            f"Please confirm you want to launch despite: {_listed(report.warnings)}",
            code="campaign_checks_warn",
            fields={"warnings": [check.message for check in report.warnings]},
        )
    scheduled = locked.start_at is not None and locked.start_at > now
    locked.status = CampaignStatus.SCHEDULED if scheduled else CampaignStatus.RUNNING
    locked.launched_at = None if scheduled else now
    locked.status_reason, locked.paused_by_system = "", False
    locked.save(update_fields=["status", "launched_at", "status_reason", "paused_by_system"])
    enrolled = campaign_lists_enrol(campaign=locked, now=now)
    _audit(
        "campaign.launch",
        campaign=locked,
        actor=actor,
        before={"status": CampaignStatus.DRAFT},
        after={
            "status": locked.status,
            "enrolled": enrolled,
            "warnings": [check.message for check in report.warnings],
        },
    )
    return locked


@transaction.atomic
def campaign_pause(*, campaign: Campaign, actor: User | None, reason: str = "") -> Campaign:
    """Stop sending until resumed; the leads keep their place in the sequence. A reason (given
    by staff) is shown to the customer as the campaign's status reason."""
    locked = _lock(campaign)
    if locked.status not in (CampaignStatus.RUNNING, CampaignStatus.SCHEDULED):
        raise ApplicationError(
            f"Only a running or scheduled campaign can be paused; this one is "
            f"{locked.get_status_display().lower()}.",
            code="campaign_not_running",
            status=409,
        )
    before = locked.status
    locked.status, locked.status_reason, locked.paused_by_system = (
        CampaignStatus.PAUSED,
        reason.strip(),
        False,
    )
    locked.save(update_fields=["status", "status_reason", "paused_by_system"])
    _audit(
        "campaign.pause",
        campaign=locked,
        actor=actor,
        before={"status": before},
        after={"status": CampaignStatus.PAUSED},
        reason=reason.strip(),
    )
    return locked


@transaction.atomic
def campaign_resume(
    *,
    campaign: Campaign,
    actor: User | None,
    acknowledge: bool = False,
    now: datetime | None = None,
    reason: str = "",
) -> Campaign:
    """Send again; after a bounce-protection pause only with the customer's acknowledgement."""
    now = now or timezone.now()
    locked = _lock(campaign)
    if locked.status != CampaignStatus.PAUSED:
        raise ApplicationError(
            f"Only a paused campaign can be resumed; this one is "
            f"{locked.get_status_display().lower()}.",
            code="campaign_not_paused",
            status=409,
        )
    if locked.paused_by_system and not acknowledge:
        raise ApplicationError(
            f"This campaign was paused automatically: {locked.status_reason} Clean the list "
            "(remove or verify the addresses that bounced), then confirm that you have acted "
            "to resume it.",
            code="campaign_resume_needs_ack",
        )
    previous, by_system = locked.status_reason, locked.paused_by_system
    scheduled = locked.launched_at is None and locked.start_at and locked.start_at > now
    locked.status = CampaignStatus.SCHEDULED if scheduled else CampaignStatus.RUNNING
    if locked.status == CampaignStatus.RUNNING and locked.launched_at is None:
        locked.launched_at = now
    if by_system:
        locked.bounces_counted_from = now  # the bounces acknowledged are not counted again
    locked.status_reason, locked.paused_by_system = "", False
    locked.save(
        update_fields=[
            "status",
            "status_reason",
            "paused_by_system",
            "launched_at",
            "bounces_counted_from",
        ]
    )
    _audit(
        "campaign.resume",
        campaign=locked,
        actor=actor,
        before={"status": CampaignStatus.PAUSED, "paused_by_system": by_system},
        after={"status": locked.status, "acknowledged": bool(by_system and acknowledge)},
        reason=reason.strip() or (previous if by_system else ""),
    )
    return locked


@transaction.atomic
def campaign_delete(*, campaign: Campaign, actor: User | None) -> None:
    """Delete a draft, paused or completed campaign (its messages stay in the sending log)."""
    locked = _lock(campaign)
    if locked.status in (CampaignStatus.RUNNING, CampaignStatus.SCHEDULED):
        raise ApplicationError(
            f"This campaign is {locked.get_status_display().lower()}: pause it before deleting it.",
            code="campaign_running",
            status=409,
        )
    _audit(
        "campaign.delete",
        campaign=locked,
        actor=actor,
        before={"name": locked.name, "status": locked.status},
    )
    locked.delete()
