"""Reputation services: intake, processing, scores, automatic actions, events."""

from reputation.services.actions import mailbox_limits_restore, staff_alert
from reputation.services.events import event_record
from reputation.services.intake import MalformedBatch, intake_store, records_from_payload
from reputation.services.processing import records_process, records_process_batch
from reputation.services.scores import rehab_numbers, scores_recompute, scores_recompute_all

__all__ = [
    "MalformedBatch",
    "event_record",
    "intake_store",
    "mailbox_limits_restore",
    "records_from_payload",
    "records_process",
    "records_process_batch",
    "rehab_numbers",
    "scores_recompute",
    "scores_recompute_all",
    "staff_alert",
]
