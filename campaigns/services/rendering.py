"""A campaign message's text for one lead: its merge fields, the step's variant, the seed."""

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

from campaigns.models import Lead, StepVariant
from campaigns.templating import CompiledTemplate, compile_template
from sending.models import Mailbox


@dataclass(frozen=True)
class CompiledVariant:
    subject: CompiledTemplate | None  # None: a reply in the thread ("Re: " + the first subject)
    body: CompiledTemplate


def lead_fields(*, lead: Lead, mailbox: Mailbox | None, unsubscribe_url: str) -> dict[str, str]:
    """The values a template may use for this lead (only non-empty ones: an empty one is
    missing, so `default` applies)."""
    fields = {
        "email": lead.email,
        "first_name": lead.first_name,
        "last_name": lead.last_name,
        "full_name": lead.full_name,
        "company": lead.company,
        "title": lead.title,
        "phone": lead.phone,
        "website": lead.website,
        "unsubscribe_url": unsubscribe_url,
    }
    for name, value in (lead.custom_fields or {}).items():
        fields.setdefault(str(name), "" if value is None else str(value))
    if mailbox is not None:
        fields["sender_email"] = mailbox.address
        fields["sender_name"] = mailbox.display_name
        fields["sender_first_name"] = mailbox.display_name.split(" ")[0]
    return {name: value for name, value in fields.items() if value}


@lru_cache(maxsize=1024)
def _compiled(pk: int, subject: str, body: str) -> CompiledVariant:
    return CompiledVariant(
        subject=compile_template(subject) if subject.strip() else None,
        body=compile_template(body),
    )


def variant_compile(variant: StepVariant) -> CompiledVariant:
    """The variant's templates compiled once per process (an edit compiles anew)."""
    return _compiled(variant.pk, variant.subject, variant.body)


def render_seed(*, campaign_lead_id: int, step_position: int) -> int:
    """The spintax seed of one lead's step: the preview and the message agree."""
    digest = hashlib.blake2b(f"{campaign_lead_id}:{step_position}".encode(), digest_size=8)
    return int.from_bytes(digest.digest(), "big")


def variant_for(*, variants: Sequence[StepVariant], campaign_lead_id: int) -> StepVariant:
    """An even, stable split of a step's leads between its active variants (A/B)."""
    active = sorted((v for v in variants if v.active), key=lambda v: v.label) or list(variants)
    if not active:
        raise ValueError("The step has no variant.")
    return active[campaign_lead_id % len(active)]
