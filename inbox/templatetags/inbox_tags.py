"""The navigation's unread badge: `{% load inbox_tags %}` then `{% inbox_unread %}` beside the
Inbox link. It renders the count of unread human replies of the current workspace (hidden at
zero) and loads the script that keeps it current from the workspace socket."""

from django import template
from django.templatetags.static import static
from django.utils.html import format_html
from django.utils.safestring import SafeString, mark_safe

from inbox.selectors import unread_count

register = template.Library()


@register.simple_tag(takes_context=True)
def inbox_unread(context: template.Context, oob: bool = False) -> SafeString | str:
    workspace = context.get("current_workspace")
    if workspace is None:
        return ""
    count = unread_count(workspace=workspace)
    badge = format_html(
        '<span class="badge badge-info inbox-unread" id="inbox-unread" data-inbox-unread '
        'aria-label="{} unread"{}{}>{}</span>',
        count,
        mark_safe(" hidden") if count == 0 else "",
        mark_safe(' hx-swap-oob="true"') if oob else "",
        count,
    )
    if oob:
        return badge
    return format_html('{}<script src="{}" defer></script>', badge, static("js/inbox.js"))
