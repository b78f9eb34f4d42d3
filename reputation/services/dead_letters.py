"""Records processing set aside (dead letters): recorded with their error, replayed by staff."""

from datetime import datetime

from django.db import transaction
from django.db.models import F
from django.utils import timezone

from accounts.models import User
from accounts.services import audit_log_record
from reputation.models import DeadLetterRecord, PendingRecord
from reputation.services.intake import records_processing_enqueue


def dead_letters_record(*, failures: dict[int, str], now: datetime) -> None:
    """Set failed records aside (raw record id -> error); a record failing again after a replay
    keeps its first failure and counts one more attempt."""
    for raw_id, error in failures.items():
        updated = DeadLetterRecord.objects.filter(raw_record_id=raw_id).update(
            error=error, last_failed_at=now, attempts=F("attempts") + 1
        )
        if not updated:
            DeadLetterRecord.objects.create(
                raw_record_id=raw_id, error=error, first_failed_at=now, last_failed_at=now
            )


@transaction.atomic
def dead_letter_replay(*, dead_letter: DeadLetterRecord, actor: User | None, reason: str) -> None:
    """Queue a dead letter's record for processing again (after a fix), audit-logged."""
    PendingRecord.objects.get_or_create(raw_record_id=dead_letter.raw_record_id)
    dead_letter.replayed_at = timezone.now()
    dead_letter.save(update_fields=["replayed_at"])
    audit_log_record(
        action="reputation.dead_letter_replay",
        actor=actor,
        obj=dead_letter,
        reason=reason,
        before={"error": dead_letter.error[:500], "attempts": dead_letter.attempts},
    )
    transaction.on_commit(records_processing_enqueue)
