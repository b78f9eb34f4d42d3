"""Audit log entries as sentences: `{% activity_sentence log user %}`.

`ACTIVITY_SENTENCES` is the one place that turns an audit action code into words. A rule is a
sentence, or a pair (when a person did it, when the platform did it on its own). Placeholders:
{actor} {subject} (the object as recorded) {email} {role} {name} {old_name} {member} {token}
{tier} {old_tier} {selector}. A rule whose placeholders the entry cannot fill, or a code
without a rule, falls back to a plain reading of the code.
"""

from string import Formatter
from typing import Any

from django import template
from django.conf import settings

from accounts.models import AuditLog, Role, User

register = template.Library()

ActivityRule = str | tuple[str, str]

ACTIVITY_SENTENCES: dict[str, ActivityRule] = {
    # Workspace and team
    "workspace.create": "{actor} created the workspace",
    "workspace.rename": "{actor} renamed the workspace from “{old_name}” to “{name}”",
    "membership.role_change": "{actor} changed the role of {member} to {role}",
    "membership.remove": "{actor} removed {member} from the workspace",
    "membership.leave": "{actor} left the workspace",
    "invitation.create": "{actor} invited {email} as {role}",
    "invitation.accept": "{actor} joined the workspace as {role}",
    "invitation.revoke": "{actor} revoked the invitation to {email}",
    "api_token.create": "{actor} created the API token “{token}”",
    "api_token.revoke": (
        "{actor} revoked the API token “{token}”",
        "The API token “{token}” was revoked",
    ),
    "user.activate": "The account {subject} was reactivated",
    "user.deactivate": "The account {subject} was deactivated",
    # Billing and credits
    "billing.checkout": "{actor} started a checkout for a new plan",
    "billing.subscription_update": (
        "{actor} changed the subscription",
        "The subscription changed (as Stripe reported it)",
    ),
    "billing.subscription_flagged": (
        "{actor} flagged the subscription for review",
        "The subscription was flagged for review: it is billed in a way that plan is not sold",
    ),
    "billing.comp_plan": "{actor} changed the complimentary plan",
    "credits.adjust": "{actor} adjusted the credit balance",
    # Domains and DKIM
    "domain.create": ("{actor} added the domain {subject}", "The domain {subject} was added"),
    "domain.verify": "{subject} was verified",
    "domain.dns_broken": "{subject} stopped sending: its DNS records no longer check out",
    "domain.dns_recheck": (
        "{actor} re-checked the DNS records of {subject}",
        "The DNS records of {subject} were re-checked",
    ),
    "domain.retire": ("{actor} removed the domain {subject}", "The domain {subject} was removed"),
    "domain.cooldown": "{subject} was put in cool-down",
    "domain.cooldown_end": "{subject} finished its cool-down",
    "domain.quarantine": "{subject} was quarantined",
    "domain.quarantine_lift": "The quarantine of {subject} was lifted",
    "domain.sending_change": (
        "{actor} changed how {subject} sends",
        "How {subject} sends was changed",
    ),
    "domain.dkim_confirm": (
        "The DKIM of {subject} was confirmed from a warm-up message ({selector})"
    ),
    "dkim.rotation_start": (
        "{actor} started a new DKIM key ({selector}) for {subject}",
        "A new DKIM key ({selector}) was started for {subject}",
    ),
    "dkim.switch": "{subject} now signs with its new DKIM key ({selector})",
    # Mailboxes
    "warmup.settings": "{actor} changed the warm-up settings of {subject}",
    "campaign.bounce_protection": (
        "Bounce protection paused the campaign {subject}: too many hard bounces"
    ),
    # Campaigns
    "campaign.create": "{actor} created the campaign {subject}",
    "campaign.settings": "{actor} changed the settings of the campaign {subject}",
    "campaign.step_add": "{actor} added a step to the campaign {subject}",
    "campaign.step_update": "{actor} changed when a step of {subject} goes out",
    "campaign.step_remove": "{actor} removed a step from the campaign {subject}",
    "campaign.variant_add": "{actor} added an A/B variant to the campaign {subject}",
    "campaign.variant_update": "{actor} edited a message of the campaign {subject}",
    "campaign.variant_remove": "{actor} removed an A/B variant from the campaign {subject}",
    "campaign.launch": "{actor} launched the campaign {subject}",
    "campaign.pause": (
        "{actor} paused the campaign {subject}",
        "The campaign {subject} was paused",
    ),
    "campaign.resume": (
        "{actor} resumed the campaign {subject}",
        "The campaign {subject} was resumed",
    ),
    "campaign.delete": "{actor} deleted the campaign {subject}",
    # Leads
    "lead.delete": "{actor} deleted the lead {subject}",
    "lead_list.delete": "{actor} deleted the list {subject}",
    "lead_import.start": "{actor} started importing {subject}",
    # Inbox, tracking, webhooks
    "reply.label": (
        "{actor} changed the labels of “{subject}”",
        "The labels of “{subject}” were changed",
    ),
    "reply.send": "{actor} answered “{subject}” from the inbox",
    "reply_label.create": "{actor} added the reply label “{name}”",
    "reply_label.rename": "{actor} renamed the reply label “{old_name}” to “{name}”",
    "reply_label.delete": "{actor} deleted the reply label “{subject}”",
    "tracking_domain.set": "{actor} set the tracking domain {subject}",
    "tracking_domain.remove": "{actor} removed the tracking domain {subject}",
    "leaderboard.opt_in": "{actor} put the workspace on the leaderboard",
    "leaderboard.opt_out": "{actor} took the workspace off the leaderboard",
    "leaderboard.reroll": "{actor} drew a new leaderboard handle and avatar",
    "campaign.tracking": "{actor} changed open and click tracking of {subject}",
    "webhook.create": "{actor} added the webhook endpoint {subject}",
    "webhook.update": "{actor} changed the webhook endpoint {subject}",
    "webhook.delete": "{actor} deleted the webhook endpoint {subject}",
    "webhook.enable": "{actor} turned the webhook endpoint {subject} back on",
    "webhook.disable": (
        "{actor} turned off the webhook endpoint {subject}",
        "The webhook endpoint {subject} was disabled after repeated failed deliveries",
    ),
    "webhook.secret_rotate": (
        "{actor} replaced the signing secret of the webhook endpoint {subject}"
    ),
    # Suppressions
    "suppression.add": (
        "{actor} added {email} to the suppression list",
        "{email} was added to the suppression list",
    ),
    "suppression.remove": (
        "{actor} removed {email} from the suppression list",
        "{email} was removed from the suppression list",
    ),
    "suppressed_domain.block": (
        "{actor} blocked the domain {name}",
        "The domain {name} was blocked",
    ),
    "suppressed_domain.unblock": (
        "{actor} unblocked the domain {name}",
        "The domain {name} was unblocked",
    ),
    "suppression.import": (
        "{actor} imported the suppression list “{name}”",
        "The suppression list “{name}” was imported",
    ),
    "mailbox.create": ("{actor} added the mailbox {subject}", "The mailbox {subject} was added"),
    "mailbox.update": ("{actor} changed the settings of {subject}", "{subject}'s settings changed"),
    "mailbox.delete": (
        "{actor} deleted the mailbox {subject}",
        "The mailbox {subject} was deleted",
    ),
    "mailbox.pause": ("{actor} paused {subject}", "{subject} was paused"),
    "mailbox.resume": ("{actor} resumed {subject}", "{subject} was resumed"),
    "mailbox.cooldown": "{subject} was put in cool-down",
    "mailbox.import": (
        "{actor} imported mailboxes from “{name}”",
        "Mailboxes were imported from “{name}”",
    ),
    "mailbox.oauth_connect": (
        "{actor} signed {subject} in with its provider",
        "{subject} was signed in with its provider",
    ),
    "mailbox.oauth_revoked": "{subject}'s sign-in with its provider stopped working",
    # Reputation: automatic actions and alerts
    "reputation.tier_change": "{subject} moved from the {old_tier} tier to {tier}",
    "reputation.cooldown": "{subject} was put in cool-down after spam rejections",
    "reputation.warmup_complaint": "{subject} was paused: a warm-up recipient reported spam",
    "reputation.bounce_warning": "{subject} has a high bounce rate",
    "reputation.bounce_critical": "{subject}'s bounce rate is above the limit",
    "reputation.bounce_pause": "{subject} was paused for bouncing too much",
    "reputation.bounce_spike": "{subject} had a bounce spike; its daily limit was cut",
    "reputation.spam_warning": "{subject} is getting spam complaints",
    "reputation.spam_pause": "{subject}'s mailboxes were paused for spam complaints",
    "reputation.spam_quarantine": "{subject} was quarantined for spam complaints",
    "reputation.spam_block": "Receiving servers rejected mail from {subject} as spam",
    "reputation.delivery_warning": "{subject}'s delivery rate dropped",
    "reputation.delivery_critical": "{subject}'s delivery rate is below the limit",
    "reputation.dead_letter_replay": "A set-aside MTA record was queued for processing again",
    # The platform's own sending infrastructure (operations console)
    "source.pull": "The sending source {subject} was taken out of service",
    "source.activate": "The sending source {subject} was put into service",
    "pool.rotate": "The sending pool {subject} was rotated",
}


def _value(data: dict[str, Any] | None, key: str) -> str:
    value = (data or {}).get(key)
    return "" if value is None else str(value)


def _role_label(value: str) -> str:
    return Role(value).label.lower() if value in Role.values else value


def activity_fields(log: AuditLog, *, actor: str) -> dict[str, str]:
    """What the sentences may say about one entry; empty values are left out."""
    repr_ = log.object_repr
    # The object's text as recorded: "a@b -> Workspace" (invitation), "a@b in Workspace (role)"
    # (membership), "name (prefix…)" (API token). Read from the entry, not the row, which may
    # have been deleted since.
    fields = {
        "actor": actor,
        "subject": repr_,
        "email": _value(log.after, "email") or repr_.partition(" -> ")[0],
        "role": _role_label(_value(log.after, "role")),
        "name": _value(log.after, "name"),
        "old_name": _value(log.before, "name"),
        "member": _value(log.before, "user") or repr_.partition(" in ")[0],
        "token": _value(log.after, "name") or repr_.rpartition(" (")[0],
        "tier": _value(log.after, "tier"),
        "old_tier": _value(log.before, "tier"),
        "selector": _value(log.after, "selector"),
    }
    return {key: value for key, value in fields.items() if value}


def activity_sentence_for(
    *, action: str, fields: dict[str, str], by_person: bool, system_name: str
) -> str:
    """The sentence for one action code (see ACTIVITY_SENTENCES), or a plain reading of it."""
    rule = ACTIVITY_SENTENCES.get(action)
    if isinstance(rule, tuple):
        rule = rule[0] if by_person else rule[1]
    if rule is not None:
        wanted = {name for _, name, _, _ in Formatter().parse(rule) if name}
        if wanted <= fields.keys():
            return rule.format(**fields)
    words = action.replace(".", " ").replace("_", " ").strip().capitalize() or "Change"
    subject = fields.get("subject")
    return f"{words} by {fields.get('actor', system_name)}" + (f": {subject}" if subject else "")


def actor_name(log: AuditLog, viewer: User | None, system_name: str) -> str:
    if log.actor is None:
        return system_name
    if viewer is not None and log.actor_id == viewer.pk:
        return "You"
    return log.actor.full_name or log.actor.email


@register.simple_tag
def activity_sentence(log: AuditLog, viewer: User | None = None) -> str:
    """`log` as a sentence, naming `viewer` "You"."""
    system_name = settings.PRODUCT_NAME
    actor = actor_name(log, viewer, system_name)
    fields = activity_fields(log, actor=actor)
    action = log.action
    if action == "membership.remove" and log.actor is not None:
        leaving = _value(log.before, "user").lower() == log.actor.email.lower()
        action = "membership.leave" if leaving else action
    return activity_sentence_for(
        action=action, fields=fields, by_person=log.actor_id is not None, system_name=system_name
    )
