"""The tracked HTML alternative of a campaign message.

The text a campaign renders stays the plain-text part, untouched. The HTML part is that text
made safe (escaped, paragraphs, line breaks) with its web links made clickable: with click
tracking each goes through a click token naming (message, link position), and the link's target
is stored, so the redirect can only lead where the message led. With open tracking a 1x1 pixel
closes the body. The unsubscribe link is never rewritten (RFC 8058 one-click keeps working, and
a recipient who wants out does not pass through a tracker). With both switched off for the
campaign the message stays plain text.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Sequence
from dataclasses import dataclass

from django.conf import settings
from django.db import connection, transaction
from django.urls import reverse
from django.utils.html import escape

from campaigns.models import Campaign
from sending.models import Message, MessageKind
from tracking.models import CampaignTracking, TrackedLink, TrackingDomain, TrackingDomainState
from tracking.services.tokens import click_token, open_token

_URL = re.compile(r"https?://[^\s<>\"'`]+", re.IGNORECASE)
_TRAILING = ".,;:!?'\"*"
_CLOSERS = {")": "(", "]": "[", "}": "{"}
_HEADER_URL = re.compile(r"<(https?://[^>]+)>", re.IGNORECASE)
MAX_LINKS = 100  # a click token names the position in 4 digits; a real message has a handful


@dataclass(frozen=True)
class TrackingOptions:
    opens: bool = True
    clicks: bool = True

    @property
    def any(self) -> bool:
        return self.opens or self.clicks


@dataclass(frozen=True)
class TrackedBodies:
    text_body: str
    html_body: str  # empty: send plain text only
    links: list[str]  # the stored targets, by position


def _trim(url: str) -> str:
    """A URL as written in prose: sentence punctuation and an unmatched closing bracket after
    it are not part of it."""
    while url:
        last = url[-1]
        unmatched = last in _CLOSERS and url.count(_CLOSERS[last]) < url.count(last)
        if last in _TRAILING or unmatched:
            url = url[:-1]
        else:
            break
    return url


def _unsubscribe_prefix() -> str:
    return settings.SITE_URL.rstrip("/") + reverse("unsubscribe", args=["X"])[:-2]


def keep_urls(headers: dict[str, str]) -> frozenset[str]:
    """The message's unsubscribe links (List-Unsubscribe), which are never rewritten."""
    return frozenset(_HEADER_URL.findall(headers.get("List-Unsubscribe", "")))


def tracking_base_url(domain: TrackingDomain | None) -> str:
    """Where tracking links point: the workspace's own hostname once verified, else ours."""
    if domain is not None and domain.state == TrackingDomainState.VERIFIED:
        scheme = getattr(settings, "TRACKING_DOMAIN_SCHEME", "https")
        return f"{scheme}://{domain.hostname}"
    return settings.SITE_URL.rstrip("/")


def campaign_message_bodies(
    *,
    text_body: str,
    message_id: int,
    options: TrackingOptions,
    base_url: str,
    keep: Collection[str] = (),
) -> TrackedBodies:
    """The (text, HTML) pair for one campaign message whose row (`message_id`) is reserved."""
    if not options.any:
        return TrackedBodies(text_body=text_body, html_body="", links=[])
    base = base_url.rstrip("/")
    unsubscribe = _unsubscribe_prefix()
    links: list[str] = []
    positions: dict[str, int] = {}

    def link(url: str) -> str:
        shown = escape(url)
        if not options.clicks or url in keep or url.startswith(unsubscribe):
            return f'<a href="{escape(url)}">{shown}</a>'
        position = positions.get(url)
        if position is None:
            if len(links) >= MAX_LINKS:
                return f'<a href="{escape(url)}">{shown}</a>'
            position = positions[url] = len(links)
            links.append(url)
        href = f"{base}/t/c/{click_token(message_id, position)}/"
        return f'<a href="{escape(href)}">{shown}</a>'

    def paragraph(text: str) -> str:
        parts: list[str] = []
        at = 0
        for match in _URL.finditer(text):
            url = _trim(match.group(0))
            if not url:
                continue
            parts.append(escape(text[at : match.start()]))
            parts.append(link(url))
            at = match.start() + len(url)
        parts.append(escape(text[at:]))
        return "<p>" + "".join(parts).replace("\n", "<br>\n") + "</p>"

    text = text_body.replace("\r\n", "\n").replace("\r", "\n").strip("\n")
    blocks = [block.strip("\n") for block in re.split(r"\n[ \t]*\n", text) if block.strip()]
    body = "\n".join(paragraph(block) for block in blocks)
    if options.opens:
        pixel = f"{base}/t/o/{open_token(message_id)}.gif"
        body += (
            f'\n<img src="{escape(pixel)}" width="1" height="1" alt="" '
            'style="display:block;border:0;width:1px;height:1px">'
        )
    html = (
        '<!DOCTYPE html>\n<html><head><meta charset="utf-8"></head>\n'
        f'<body style="font-family:sans-serif">\n{body}\n</body></html>\n'
    )
    return TrackedBodies(text_body=text_body, html_body=html, links=links)


def campaign_tracking_options(*, campaign_ids: Collection[int]) -> dict[int, TrackingOptions]:
    """Each campaign's switches (a campaign without a row tracks both)."""
    found = {
        row.campaign_id: TrackingOptions(opens=row.opens, clicks=row.clicks)
        for row in CampaignTracking.objects.filter(campaign_id__in=campaign_ids)
    }
    return {pk: found.get(pk, TrackingOptions()) for pk in campaign_ids}


@transaction.atomic
def messages_track(*, messages: Sequence[Message]) -> int:
    """Give reserved campaign messages their tracked HTML part and store their links, before
    the commit that queues their hand-over. Other kinds are left alone. Returns how many got
    an HTML part."""
    campaign_messages = [m for m in messages if m.kind == MessageKind.CAMPAIGN and m.pk]
    if not campaign_messages:
        return 0
    workspaces = {m.workspace_id for m in campaign_messages}
    campaigns = {
        (workspace_id, public_id): pk
        for workspace_id, public_id, pk in Campaign.objects.filter(
            workspace_id__in=workspaces,
            public_id__in={m.campaign_ref for m in campaign_messages},
        ).values_list("workspace_id", "public_id", "pk")
    }
    options = campaign_tracking_options(campaign_ids=set(campaigns.values()))
    domains = {
        d.workspace_id: d for d in TrackingDomain.objects.filter(workspace_id__in=workspaces)
    }
    changed: list[Message] = []
    links: list[TrackedLink] = []
    for message in campaign_messages:
        campaign_id = campaigns.get((message.workspace_id, message.campaign_ref))
        if campaign_id is None:
            continue
        bodies = campaign_message_bodies(
            text_body=message.text_body,
            message_id=message.pk,
            options=options[campaign_id],
            base_url=tracking_base_url(domains.get(message.workspace_id)),
            keep=keep_urls(message.headers),
        )
        if bodies.html_body != message.html_body:
            message.html_body = bodies.html_body
            changed.append(message)
        links.extend(
            TrackedLink(message_id=message.pk, position=position, url=url)
            for position, url in enumerate(bodies.links)
        )
    TrackedLink.objects.bulk_create(links, batch_size=1000, ignore_conflicts=True)
    _html_write(changed)
    return len(changed)


def _html_write(messages: list[Message]) -> None:
    if not messages:
        return
    if connection.vendor != "postgresql":  # the embedded profile's SQLite
        Message.objects.bulk_update(messages, ["html_body"], batch_size=500)
        return
    table = Message._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {table} AS m SET html_body = v.html "  # noqa: S608
            "FROM unnest(%s::bigint[], %s::text[]) AS v(id, html) WHERE m.id = v.id",
            [[m.pk for m in messages], [m.html_body for m in messages]],
        )
