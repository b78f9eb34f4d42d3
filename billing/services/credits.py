"""The credits ledger: daily grants, credits earned by warming, one spent per external send.

Every change is one conditional UPDATE of the workspace's CreditAccount row plus one CreditEntry,
in one transaction. The UPDATE's WHERE clause is the rule itself (e.g. "granted + earned >= n"):
PostgreSQL evaluates it on the newest version of the row, after waiting for any concurrent
writer of that row to commit or roll back, so two spenders can never both take the last credit
(no read-then-write race) and the refused one changes nothing. The row stays locked by the
UPDATE until the transaction ends, so reading it back for `balance_after` is exact. The daily
grant needs the leftover of the previous grant (which an UPDATE cannot return: RETURNING shows
the new row), so it locks the row with `select_for_update` first; a spend waits for it.

Entries are unique per (workspace, kind, reference): a spend, earning or grant for a reference
already recorded returns the recorded entry and changes nothing. The CHECK constraints on both
tables keep every balance at zero or above even if this code were wrong.
"""

import logging
from collections.abc import Callable, Sequence
from datetime import date, datetime

from django.db import IntegrityError, transaction
from django.db.models import F, Value
from django.db.models.functions import Least
from django.utils import timezone

from accounts.models import User, Workspace
from accounts.services import audit_log_record
from billing.models import CreditAccount, CreditEntry, CreditKind
from billing.selectors import entitlements_get
from config.errors import ApplicationError
from reputation.scoring import Tier
from sending.models import DomainStatus, SendingDomain

logger = logging.getLogger(__name__)

REFERENCE_MAX_LENGTH = 128
REASON_MAX_LENGTH = 200
GRANT_BATCH_SIZE = 500
# A plan counts its best domains first (`Entitlements.daily_grant` takes the first N).
TIERS_BEST_FIRST = (Tier.PREMIUM, Tier.STANDARD, Tier.REHAB, Tier.QUARANTINE)
_TIER_RANK = {tier.value: rank for rank, tier in enumerate(TIERS_BEST_FIRST)}


class InsufficientCredits(ApplicationError):
    """The balance is short of what a send needs; nothing was charged."""

    def __init__(self, *, balance: int, needed: int) -> None:
        left = "none are left" if balance == 0 else f"only {balance} {_credits(balance)} left"
        super().__init__(
            f"Not enough credits: this needs {needed} {_credits(needed)} and {left}. Credits "
            "come back with tomorrow's daily grant, or earn more by warming.",
            code="insufficient_credits",
        )
        self.balance = balance
        self.needed = needed


def _credits(n: int) -> str:
    return "credit" if n == 1 else "credits"


# --- Reads -----------------------------------------------------------------------------------


def credit_account_get(*, workspace: Workspace) -> CreditAccount:
    """The workspace's credit account, created empty on first use (safe under races)."""
    # get_or_create inserts in a savepoint and reads again if a concurrent insert won the
    # one-to-one unique constraint, so it also works inside a caller's transaction.
    account, _ = CreditAccount.objects.get_or_create(workspace=workspace)
    return account


def grant_amount(workspace: Workspace, *, now: datetime | None = None) -> int:
    """Credits the workspace's plan grants per day for its verified domains' tiers."""
    tiers = SendingDomain.objects.filter(
        workspace=workspace, status=DomainStatus.VERIFIED
    ).values_list("tier", flat=True)
    best_first = sorted(tiers, key=lambda tier: _TIER_RANK.get(tier, len(_TIER_RANK)))
    return entitlements_get(workspace=workspace, now=now).daily_grant(best_first)


# --- Writes ----------------------------------------------------------------------------------


def credits_spend(
    *, workspace: Workspace, amount: int, reference: str, reason: str = "External send"
) -> CreditEntry:
    """Spend credits (today's grant first, then earned ones), once per reference."""
    _require_positive(amount)
    _require_reference(reference)
    entry = _entry_once(
        workspace=workspace,
        kind=CreditKind.SPEND,
        amount=-amount,
        reference=reference,
        reason=reason,
        change=lambda: _account_take(workspace=workspace, amount=amount),
    )
    if entry is None:
        raise InsufficientCredits(balance=_balance(workspace), needed=amount)
    return entry


def credits_spend_many(
    *, workspace: Workspace, references: Sequence[str], reason: str = "Campaign message"
) -> list[str]:
    """Spend one credit per reference, as many as the balance covers, in the caller's
    transaction: the references charged (already charged ones included, in the given order).

    For the campaign dispatcher, which reserves a batch of messages and their credits in one
    transaction: the account row is locked for the rest of that transaction (a concurrent
    dispatcher of the same workspace waits, then sees the new balance), the balance is taken
    in one UPDATE and the entries are written in one INSERT. A reference already spent is not
    charged again."""
    wanted = list(dict.fromkeys(references))
    for reference in wanted:
        _require_reference(reference)
    if not wanted:
        return []
    with transaction.atomic():
        credit_account_get(workspace=workspace)
        account = CreditAccount.objects.select_for_update().get(workspace=workspace)
        done = set(
            CreditEntry.objects.filter(
                workspace=workspace, kind=CreditKind.SPEND, reference__in=wanted
            ).values_list("reference", flat=True)
        )
        new = [reference for reference in wanted if reference not in done]
        charged = new[: account.granted + account.earned]
        if charged:
            amount = len(charged)
            from_grant = min(account.granted, amount)
            account.granted -= from_grant
            account.earned -= amount - from_grant
            account.save(update_fields=["granted", "earned"])
            after = account.granted + account.earned
            CreditEntry.objects.bulk_create(
                CreditEntry(
                    workspace=workspace,
                    kind=CreditKind.SPEND,
                    amount=-1,
                    balance_after=after + amount - 1 - index,
                    reason=reason[:REASON_MAX_LENGTH],
                    reference=reference,
                )
                for index, reference in enumerate(charged)
            )
    paid = done | set(charged)
    return [reference for reference in wanted if reference in paid]


def credits_earn(*, workspace: Workspace, amount: int, reference: str, reason: str) -> CreditEntry:
    """Add credits earned by warming (they do not expire), once per reference."""
    _require_positive(amount)
    _require_reference(reference)
    entry = _entry_once(
        workspace=workspace,
        kind=CreditKind.EARN,
        amount=amount,
        reference=reference,
        reason=reason,
        change=lambda: _account_add(workspace=workspace, amount=amount),
    )
    assert entry is not None  # adding is never refused
    return entry


@transaction.atomic
def credits_grant_daily(*, workspace: Workspace, day: date, amount: int) -> CreditEntry | None:
    """Expire what is left of the previous grant and grant `amount` for `day`, once per day."""
    entry, _ = _grant_daily(workspace=workspace, day=day, amount=amount)
    return entry


def credits_grant_all(*, day: date, now: datetime | None = None) -> int:
    """Grant every workspace its daily credits for `day`; returns how many were granted."""
    now = now or timezone.now()
    granted = 0
    workspaces = Workspace.objects.select_related("billing").order_by("pk")
    # One transaction per workspace: a long run holds no lock for longer than one grant, and a
    # rerun (the grant is once per day) takes up where a failed run stopped.
    for workspace in workspaces.iterator(chunk_size=GRANT_BATCH_SIZE):
        try:
            with transaction.atomic():
                amount = grant_amount(workspace, now=now)
                _, created = _grant_daily(workspace=workspace, day=day, amount=amount)
        except Exception:  # one workspace's failure must not withhold everyone else's grant
            logger.exception("daily credit grant for %s on %s failed", workspace.public_id, day)
            continue
        granted += created
    return granted


@transaction.atomic
def credits_adjust(*, workspace: Workspace, amount: int, actor: User, reason: str) -> CreditEntry:
    """Add (to earned credits) or remove credits by hand, with a reason, audit-logged."""
    reason = reason.strip()
    if not reason:
        raise ApplicationError(
            "Say why the credits are adjusted.", fields={"reason": ["A reason is required."]}
        )
    if amount == 0:
        raise ApplicationError(
            "An adjustment of 0 credits changes nothing.", fields={"amount": ["Not 0."]}
        )
    if amount > 0:
        balance = _account_add(workspace=workspace, amount=amount)
    else:
        after = _account_take(workspace=workspace, amount=-amount)
        if after is None:
            balance = _balance(workspace)
            message = (
                f"Removing {-amount} {_credits(-amount)} would take the balance below zero: "
                f"it is {balance}."
            )
            raise ApplicationError(message, code="credits_below_zero", fields={"amount": [message]})
        balance = after
    account = CreditAccount.objects.get(workspace=workspace)
    log = audit_log_record(
        action="credits.adjust",
        actor=actor,
        obj=account,
        workspace=workspace,
        reason=reason,
        before={"balance": balance - amount},
        after={"balance": balance, "granted": account.granted, "earned": account.earned},
    )
    return CreditEntry.objects.create(
        workspace=workspace,
        kind=CreditKind.ADJUST,
        amount=amount,
        balance_after=balance,
        reason=reason[:REASON_MAX_LENGTH],
        reference=f"audit:{log.pk}",
        actor=actor,
    )


# --- The ledger's mechanics ------------------------------------------------------------------


def _entry_once(
    *,
    workspace: Workspace,
    kind: CreditKind,
    amount: int,
    reference: str,
    reason: str,
    change: Callable[[], int | None],
) -> CreditEntry | None:
    """Apply `change` (the balance after, or None when refused) and record its entry, unless
    the reference already has one (returned as it is). None when the change is refused."""
    existing = _entry_find(workspace=workspace, kind=kind, reference=reference)
    if existing is not None:
        return existing
    try:
        # A savepoint: a duplicate reference must not poison the caller's transaction (the
        # campaign sender spends inside its own), and rolling it back undoes the change too.
        with transaction.atomic():
            balance = change()
            if balance is not None:
                return CreditEntry.objects.create(
                    workspace=workspace,
                    kind=kind,
                    amount=amount,
                    balance_after=balance,
                    reason=reason[:REASON_MAX_LENGTH],
                    reference=reference,
                )
    except IntegrityError:
        # A concurrent call with the same reference committed first: its entry stands.
        existing = _entry_find(workspace=workspace, kind=kind, reference=reference)
        if existing is None:
            raise
        return existing
    # Refused; a concurrent call with the same reference may have succeeded meanwhile.
    return _entry_find(workspace=workspace, kind=kind, reference=reference)


def _entry_find(*, workspace: Workspace, kind: CreditKind, reference: str) -> CreditEntry | None:
    return CreditEntry.objects.filter(workspace=workspace, kind=kind, reference=reference).first()


def _account_take(*, workspace: Workspace, amount: int) -> int | None:
    """Take `amount` from today's grant first, then from earned credits: the balance after,
    or None (nothing changed) if the balance is short."""
    # Every SET expression reads the row as it was before this UPDATE.
    from_grant = Least(F("granted"), Value(amount))
    updated = CreditAccount.objects.filter(
        workspace=workspace, granted__gte=Value(amount) - F("earned")
    ).update(granted=F("granted") - from_grant, earned=F("earned") - (Value(amount) - from_grant))
    return _balance(workspace) if updated else None


def _account_add(*, workspace: Workspace, amount: int) -> int:
    """Add `amount` to earned credits; the balance after."""
    add = {"earned": F("earned") + amount}
    if not CreditAccount.objects.filter(workspace=workspace).update(**add):
        credit_account_get(workspace=workspace)
        CreditAccount.objects.filter(workspace=workspace).update(**add)
    return _balance(workspace)


def _balance(workspace: Workspace) -> int:
    # After this transaction's UPDATE the row is locked until commit: the value is exact.
    row = CreditAccount.objects.filter(workspace=workspace).values_list("granted", "earned")
    granted, earned = row.first() or (0, 0)
    return granted + earned


def _grant_daily(
    *, workspace: Workspace, day: date, amount: int
) -> tuple[CreditEntry | None, bool]:
    """The grant entry for `day` (None if nothing was granted) and whether it is new."""
    if amount < 0:
        raise ApplicationError("A daily grant cannot be negative.")
    reference = f"grant:{day.isoformat()}"
    credit_account_get(workspace=workspace)
    # Locked until commit: a spend between reading the leftover and replacing it would
    # otherwise be lost, and a concurrent run of the same day's grant waits here, then sees it.
    account = CreditAccount.objects.select_for_update().get(workspace=workspace)
    previous = account.last_grant_day
    if previous is not None and day <= previous:  # granted already, or a day in the past
        return _entry_find(workspace=workspace, kind=CreditKind.GRANT, reference=reference), False
    leftover = account.granted
    account.granted = amount
    account.last_grant_day = day
    account.save(update_fields=["granted", "last_grant_day"])
    if leftover > 0:
        CreditEntry.objects.create(
            workspace=workspace,
            kind=CreditKind.EXPIRE,
            amount=-leftover,
            balance_after=account.earned,
            reason=f"Unused grant of {previous} expired" if previous else "Unused grant expired",
            reference=f"grant:{previous.isoformat()}" if previous else "",
        )
    if amount == 0:
        return None, False
    entry = CreditEntry.objects.create(
        workspace=workspace,
        kind=CreditKind.GRANT,
        amount=amount,
        balance_after=account.earned + amount,
        reason=f"Daily grant for {day}",
        reference=reference,
    )
    return entry, True


def _require_positive(amount: int) -> None:
    if amount < 1:
        message = f"An amount of credits must be 1 or more, not {amount}."
        raise ApplicationError(message, fields={"amount": [message]})


def _require_reference(reference: str) -> None:
    if not reference or len(reference) > REFERENCE_MAX_LENGTH:
        message = f"A reference of 1 to {REFERENCE_MAX_LENGTH} characters is required."
        raise ApplicationError(message, fields={"reference": [message]})
