"""Pre-launch checks: what stops a campaign from launching (blocking) and what a customer should
know first (warnings). Each check is a full sentence with where to fix it.

Lead counts are SQL aggregates over the campaign's lists (one query for every merge field), so
checking a campaign of 100,000 leads reads no lead rows into Python.
"""

import re
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

from django.db.models import Count, Q, QuerySet, TextField, Value
from django.db.models.fields.json import KeyTextTransform
from django.db.models.functions import Coalesce
from django.db.models.lookups import Exact
from django.utils import timezone

from billing.selectors import credit_balance_get
from billing.services.entitlements import external_sending_refusal
from campaigns.models import (
    Campaign,
    CampaignStep,
    Lead,
    LeadList,
    LeadListMembership,
    LeadStatus,
    StepVariant,
)
from campaigns.templating import UNSUBSCRIBE_FIELD, compile_template, template_problems
from campaigns.window import holiday_calendar, next_send_at, zone_for
from sending.models import DomainStatus, Mailbox, MailboxStatus
from sending.services.outbound import EXTERNAL_TIERS

ROLE_SHARE_WARNING = 0.15
# Columns a template may name directly; anything else is a custom field.
LEAD_COLUMNS = ("first_name", "last_name", "company", "title", "phone", "website")
# Filled by the platform or by the sending mailbox, never missing for a lead.
ALWAYS_FILLED = frozenset({UNSUBSCRIBE_FIELD, "email", "sender_email"})
SENDER_NAME_FIELDS = frozenset({"sender_name", "sender_first_name"})

# Where a check is fixed, for the pages to link to.
HINT_STEPS = "steps"
HINT_MAILBOXES = "mailboxes"
HINT_LEADS = "leads"
HINT_WINDOW = "window"
HINT_BILLING = "billing"

_CHARACTER = re.compile(r"at character (\d+)")


@dataclass(frozen=True)
class Check:
    code: str
    message: str
    step: int | None = None
    variant: str | None = None
    link_hint: str = ""

    def as_dict(self) -> dict[str, str | int | None]:
        return {
            "code": self.code,
            "message": self.message,
            "step": self.step,
            "variant": self.variant,
            "link_hint": self.link_hint,
        }


@dataclass
class CheckReport:
    blocking: list[Check] = field(default_factory=list)
    warnings: list[Check] = field(default_factory=list)
    lead_count: int = 0

    @property
    def ok(self) -> bool:
        """Nothing blocks the launch (warnings may still need an acknowledgement)."""
        return not self.blocking


def _line_column(text: str, position: int) -> tuple[int, int]:
    before = text[: max(position - 1, 0)]
    return before.count("\n") + 1, len(before) - (before.rfind("\n") + 1) + 1


def template_problems_located(text: str) -> list[str]:
    """`templating.template_problems`, with each position as a line and column."""

    def locate(match: re.Match[str]) -> str:
        line, column = _line_column(text, int(match.group(1)))
        return f"at line {line}, column {column}"

    return [_CHARACTER.sub(locate, problem) for problem in template_problems(text)]


def _where(step: int, label: str) -> str:
    return f"Step {step}, variant {label}"


def _plural(count: int, one: str, many: str | None = None) -> str:
    return f"{count:,} {one if count == 1 else (many or one + 's')}"


def campaign_leads_queryset(campaign: Campaign) -> QuerySet[Lead]:
    """The active leads of the campaign's lists, each once."""
    members = LeadListMembership.objects.filter(lead_list__in=campaign.lead_lists.all()).values(
        "lead_id"
    )
    return Lead.objects.filter(
        workspace_id=campaign.workspace_id, status=LeadStatus.ACTIVE, pk__in=members
    )


def campaign_checks(*, campaign: Campaign, now: datetime | None = None) -> CheckReport:
    """Everything that blocks the launch or deserves a warning, as sentences."""
    now = now or timezone.now()
    report = CheckReport()
    steps = list(
        CampaignStep.objects.filter(campaign=campaign)
        .prefetch_related("variants")
        .order_by("position")
    )
    required = _check_steps(report, steps)
    mailboxes = list(
        Mailbox.objects.filter(campaigns=campaign).select_related("domain").order_by("pk")
    )
    _check_mailboxes(report, campaign, mailboxes)
    refusal = external_sending_refusal(workspace=campaign.workspace, now=now)
    if refusal:
        report.blocking.append(Check("plan", refusal, link_hint=HINT_BILLING))
    leads = _check_leads(report, campaign, required, mailboxes)
    balance = credit_balance_get(workspace=campaign.workspace)
    if balance <= 0:
        report.blocking.append(
            Check(
                "no_credits",
                "You have no credits left: each campaign message spends one. Credits come with "
                "each day's grant, and warming earns more.",
                link_hint=HINT_BILLING,
            )
        )
    elif leads and steps and balance < leads * len(steps):
        needed = leads * len(steps)
        report.warnings.append(
            Check(
                "few_credits",
                f"You have {_plural(balance, 'credit')}; this campaign needs up to {needed:,} "
                f"({_plural(leads, 'lead')} × {_plural(len(steps), 'step')}). Messages wait for "
                "new credits when they run out.",
                link_hint=HINT_BILLING,
            )
        )
    _check_window(report, campaign, now)
    return report


def _check_steps(report: CheckReport, steps: list[CampaignStep]) -> dict[str, list[str]]:
    """Blocking template problems; returns the merge fields without a default and where."""
    required: dict[str, list[str]] = defaultdict(list)
    if not steps:
        report.blocking.append(
            Check(
                "no_steps",
                "The campaign has no message yet: add its first step.",
                link_hint=HINT_STEPS,
            )
        )
        return required
    for step in steps:
        variants: list[StepVariant] = [v for v in step.variants.all() if v.active]
        if not variants:
            report.blocking.append(
                Check(
                    "no_active_variant",
                    f"Step {step.position} has no active variant: turn one on.",
                    step=step.position,
                    link_hint=HINT_STEPS,
                )
            )
        for variant in variants:
            where = _where(step.position, variant.label)
            location = f"step {step.position}, variant {variant.label}"

            def block(
                code: str, message: str, position: int = step.position, label: str = variant.label
            ) -> None:
                report.blocking.append(Check(code, message, position, label, HINT_STEPS))

            if step.position == 1 and not variant.subject.strip():
                block(
                    "no_subject",
                    f"{where} has no subject: the first message needs one (follow-ups may "
                    "leave it empty to reply in the same thread).",
                )
            if not variant.body.strip():
                block("empty_body", f"{where} has an empty body: write the message.")
                continue
            broken = False
            for part, text in (("subject", variant.subject), ("body", variant.body)):
                for problem in template_problems_located(text):
                    broken = True
                    block("template_error", f"{where}, {part}: {problem}")
            if broken:
                continue
            body = compile_template(variant.body)
            if UNSUBSCRIBE_FIELD not in body.fields_used:
                block(
                    "no_unsubscribe_link",
                    f"{where} has no unsubscribe link: add {{{{ {UNSUBSCRIBE_FIELD} }}}} to its "
                    "body (every campaign message must let its reader opt out).",
                )
            names = set(body.fields_required)
            if variant.subject.strip():
                names |= compile_template(variant.subject).fields_required
            for name in sorted(names - ALWAYS_FILLED):
                required[name].append(location)
    return required


def _check_mailboxes(report: CheckReport, campaign: Campaign, mailboxes: list[Mailbox]) -> None:
    if not mailboxes:
        report.blocking.append(
            Check(
                "no_mailbox",
                "Choose at least one mailbox to send from.",
                link_hint=HINT_MAILBOXES,
            )
        )
        return
    seen: set[int] = set()
    for mailbox in mailboxes:
        domain = mailbox.domain
        if domain.pk in seen:
            continue
        seen.add(domain.pk)
        if domain.status != DomainStatus.VERIFIED:
            report.blocking.append(
                Check(
                    "domain_not_verified",
                    f"{domain.name} is not verified ({domain.get_status_display().lower()}): "
                    "its mailboxes cannot send until its DNS records check out.",
                    link_hint=HINT_MAILBOXES,
                )
            )
        elif domain.tier not in EXTERNAL_TIERS:
            score = (
                f"a trust score of {domain.trust_score:.0f}"
                if domain.trust_score is not None
                else "no trust score yet"
            )
            rehab = (
                " Domains in rehab must earn their way back to the standard tier through "
                "warming before they can send to prospects."
                if domain.tier == "rehab"
                else " Only domains in the premium or standard tier may send to prospects."
            )
            report.blocking.append(
                Check(
                    "domain_not_external",
                    f"{domain.name} is in the {domain.tier} tier with {score}: its mailboxes "
                    f"cannot send campaigns.{rehab}",
                    link_hint=HINT_MAILBOXES,
                )
            )
    for mailbox in mailboxes:
        if mailbox.status != MailboxStatus.ACTIVE:
            state = mailbox.get_status_display().lower()
            report.warnings.append(
                Check(
                    "mailbox_paused",
                    f"{mailbox.address} is {state}: it sends nothing until it is active again.",
                    link_hint=HINT_MAILBOXES,
                )
            )
        elif not mailbox.is_connected:
            report.warnings.append(
                Check(
                    "mailbox_not_connected",
                    f"{mailbox.address} has not passed its connection test: it sends nothing "
                    "until it does.",
                    link_hint=HINT_MAILBOXES,
                )
            )


def _missing_condition(name: str) -> Q | Exact:
    if name in LEAD_COLUMNS:
        return Q(**{name: ""})
    if name == "full_name":
        return Q(first_name="", last_name="")
    value = Coalesce(KeyTextTransform(name, "custom_fields"), Value(""), output_field=TextField())
    return Exact(value, Value(""))


def _check_leads(
    report: CheckReport,
    campaign: Campaign,
    required: dict[str, list[str]],
    mailboxes: list[Mailbox],
) -> int:
    """No leads blocks; missing merge fields and role-heavy lists warn. Returns the lead count."""
    lead_fields = sorted(name for name in required if name not in SENDER_NAME_FIELDS)
    aggregates = {
        f"missing_{index}": Count("pk", filter=_missing_condition(name))
        for index, name in enumerate(lead_fields)
    }
    counts = campaign_leads_queryset(campaign).aggregate(total=Count("pk"), **aggregates)
    total = report.lead_count = counts["total"]
    if not total:
        report.blocking.append(
            Check(
                "no_leads",
                "The campaign has no active lead: add a lead list with at least one active lead.",
                link_hint=HINT_LEADS,
            )
        )
    for index, name in enumerate(lead_fields):
        missing = counts[f"missing_{index}"]
        if total and missing:
            report.warnings.append(_missing_warning(name, missing, total, required[name]))
    unnamed = [m for m in mailboxes if not m.display_name.strip()]
    for name in sorted(SENDER_NAME_FIELDS & required.keys()):
        if unnamed:
            report.warnings.append(
                Check(
                    "merge_field_missing",
                    f"{len(unnamed)} of {_plural(len(mailboxes), 'mailbox', 'mailboxes')} have "
                    f"no display name, used by {{{{ {name} }}}} without a default "
                    f"({', '.join(required[name])}). Leads sent from them will be stopped at "
                    "that step: give the mailboxes a display name or add a default.",
                    link_hint=HINT_MAILBOXES,
                )
            )
    lists = (
        LeadList.objects.filter(campaigns=campaign)
        .annotate(
            total=Count("memberships"),
            roles=Count("memberships", filter=Q(memberships__lead__role_address=True)),
        )
        .order_by("name")
    )
    for lead_list in lists:
        if lead_list.total and lead_list.roles / lead_list.total > ROLE_SHARE_WARNING:
            share = round(100 * lead_list.roles / lead_list.total)
            report.warnings.append(
                Check(
                    "role_addresses",
                    f"In the list “{lead_list.name}”, {lead_list.roles:,} of "
                    f"{_plural(lead_list.total, 'lead')} ({share} %) are role addresses such as "
                    "info@ or sales@: they reach a team rather than a person, reply less and "
                    "complain more. Consider removing them.",
                    link_hint=HINT_LEADS,
                )
            )
    return int(total)


def _missing_warning(name: str, missing: int, total: int, where: list[str]) -> Check:
    used = ", ".join(where)
    first = where[0].split(", variant ") if where else ["", ""]
    step = int(first[0].removeprefix("step ")) if where else None
    return Check(
        "merge_field_missing",
        f"{missing:,} of {_plural(total, 'lead')} have no {name.replace('_', ' ')}, used by "
        f"{{{{ {name} }}}} without a default ({used}). Those leads will be stopped at that "
        f'step: fill the field or add a default, e.g. {{{{ {name} | default: "there" }}}}.',
        step=step,
        variant=first[1] if where else None,
        link_hint=HINT_STEPS,
    )


def _check_window(report: CheckReport, campaign: Campaign, now: datetime) -> None:
    def warn(message: str) -> None:
        report.warnings.append(Check("window", message, link_hint=HINT_WINDOW))

    start, end = campaign.window_start, campaign.window_end
    if not campaign.send_days:
        warn("The sending window has no sending day: nothing will be sent.")
        return
    if start >= end:
        warn("The sending window ends before it starts: nothing will be sent.")
        return
    length = datetime.combine(date.min, end) - datetime.combine(date.min, start)
    if length < timedelta(hours=1):
        minutes = int(length.total_seconds() // 60)
        warn(f"The sending window is open only {minutes} minutes a day.")
    try:
        next_send_at(
            now=now,
            zone=zone_for(lead_zone="", campaign_zone=campaign.time_zone, use_lead_zone=False),
            days=frozenset(campaign.send_days),
            start=start,
            end=end,
            is_holiday=holiday_calendar(campaign.holiday_country),
        )
    except ValueError as error:
        warn(f"The sending window never opens: {error} Nothing will be sent.")
