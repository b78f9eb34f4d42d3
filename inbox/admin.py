"""The operations console for the inbox: replies, their labels and each mailbox's reply poll.
Read-only: replies come from the poll, labels and answers from customers' pages and the API."""

from django.contrib import admin

from config.admin_actions import ServiceOwnedAdmin
from inbox.models import MailboxPoll, Reply, ReplyLabel


@admin.register(Reply)
class ReplyAdmin(ServiceOwnedAdmin):
    list_display = [
        "public_id",
        "kind",
        "from_address",
        "subject",
        "workspace",
        "mailbox",
        "campaign",
        "received_at",
        "read_at",
    ]
    list_filter = ["kind", "bounce_hard"]
    search_fields = ["public_id", "from_address", "message_id", "workspace__public_id"]
    list_select_related = ["workspace", "mailbox__domain", "campaign"]
    readonly_fields = ["public_id", "message_id", "imap_uid"]
    date_hierarchy = "received_at"
    show_full_result_count = False


@admin.register(ReplyLabel)
class ReplyLabelAdmin(ServiceOwnedAdmin):
    list_display = ["name", "system", "workspace", "created_at"]
    list_filter = ["system"]
    search_fields = ["name", "workspace__public_id"]
    list_select_related = ["workspace"]
    show_full_result_count = False


@admin.register(MailboxPoll)
class MailboxPollAdmin(ServiceOwnedAdmin):
    list_display = [
        "mailbox",
        "last_uid",
        "last_polled_at",
        "next_poll_at",
        "claimed_until",
        "failures",
    ]
    search_fields = ["mailbox__local_part", "mailbox__domain__name"]
    list_select_related = ["mailbox__domain"]
    readonly_fields = ["uidvalidity", "last_uid"]
    show_full_result_count = False
