"""The credits ledger: exact under concurrent writers, once per reference, never below zero."""

import contextlib
import itertools
import os
import subprocess
import sys
import threading
from collections.abc import Callable
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest
from django.db import IntegrityError, connection, transaction
from django.db.models import Sum
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from accounts.models import AuditLog
from billing.models import BillingAccount, CreditAccount, CreditEntry, CreditKind
from billing.services import credits
from billing.services.credits import (
    InsufficientCredits,
    credit_account_get,
    credits_adjust,
    credits_earn,
    credits_grant_all,
    credits_grant_daily,
    credits_spend,
    grant_amount,
)
from config.errors import ApplicationError
from sending.models import DomainStatus, SendingDomain
from tests.factories import UserFactory, WorkspaceFactory
from tests.servers.chaos import wait_until

ROOT = Path(__file__).resolve().parents[2]
MONDAY = date(2026, 3, 2)
TUESDAY = MONDAY + timedelta(days=1)


@pytest.fixture
def workspace(db):
    return WorkspaceFactory()


@pytest.fixture
def staff(db):
    return UserFactory(email="ops@ops.test", is_staff=True)


def parts(workspace) -> tuple[int, int]:
    account = CreditAccount.objects.get(workspace=workspace)
    return account.granted, account.earned


def balance(workspace) -> int:
    return sum(parts(workspace))


def ledger_sum(workspace) -> int:
    total = CreditEntry.objects.filter(workspace=workspace).aggregate(total=Sum("amount"))
    return total["total"] or 0


def entries(workspace, kind: str) -> list[CreditEntry]:
    return list(CreditEntry.objects.filter(workspace=workspace, kind=kind).order_by("id"))


def fund(workspace, *, granted: int = 0, earned: int = 0, day: date = MONDAY) -> None:
    if granted:
        credits_grant_daily(workspace=workspace, day=day, amount=granted)
    if earned:
        credits_earn(workspace=workspace, amount=earned, reference="seed", reason="Warming")


# --- Spending --------------------------------------------------------------------------------


def test_it_spends_todays_grant_first_then_earned_credits(workspace):
    fund(workspace, granted=3, earned=4)
    entry = credits_spend(workspace=workspace, amount=5, reference="msg-1")
    assert (entry.kind, entry.amount, entry.balance_after) == (CreditKind.SPEND, -5, 2)
    assert (entry.reference, entry.reason) == ("msg-1", "External send")
    assert parts(workspace) == (0, 2)
    assert ledger_sum(workspace) == balance(workspace) == 2


def test_it_refuses_a_spend_the_balance_cannot_cover_and_changes_nothing(workspace):
    fund(workspace, granted=1, earned=1)
    with pytest.raises(InsufficientCredits) as refused:
        credits_spend(workspace=workspace, amount=3, reference="msg-1")
    error = refused.value
    assert isinstance(error, ApplicationError) and error.code == "insufficient_credits"
    assert (error.balance, error.needed) == (2, 3)
    assert "only 2 credits left" in error.message
    assert "tomorrow's daily grant" in error.message and "warming" in error.message
    assert parts(workspace) == (1, 1)
    assert entries(workspace, CreditKind.SPEND) == []


def test_it_refuses_a_spend_from_a_workspace_that_never_had_credits(workspace):
    with pytest.raises(InsufficientCredits, match="none are left"):
        credits_spend(workspace=workspace, amount=1, reference="msg-1")
    assert not CreditEntry.objects.filter(workspace=workspace).exists()


@pytest.mark.parametrize("amount", [0, -1])
def test_it_refuses_to_spend_or_earn_less_than_one_credit(workspace, amount):
    fund(workspace, earned=5)
    with pytest.raises(ApplicationError, match="1 or more"):
        credits_spend(workspace=workspace, amount=amount, reference="msg-1")
    with pytest.raises(ApplicationError, match="1 or more"):
        credits_earn(workspace=workspace, amount=amount, reference="w-1", reason="Warming")
    assert balance(workspace) == 5


@pytest.mark.parametrize("reference", ["", "x" * 129])
def test_it_requires_a_reference_to_spend_or_earn(workspace, reference):
    fund(workspace, earned=5)
    with pytest.raises(ApplicationError, match="reference"):
        credits_spend(workspace=workspace, amount=1, reference=reference)
    with pytest.raises(ApplicationError, match="reference"):
        credits_earn(workspace=workspace, amount=1, reference=reference, reason="Warming")
    assert balance(workspace) == 5


def test_it_charges_a_reference_once(workspace):
    fund(workspace, earned=5)
    first = credits_spend(workspace=workspace, amount=1, reference="msg-1")
    again = credits_spend(workspace=workspace, amount=1, reference="msg-1")
    assert again.pk == first.pk
    assert balance(workspace) == 4
    assert len(entries(workspace, CreditKind.SPEND)) == 1


def test_it_returns_the_recorded_spend_even_when_the_balance_is_now_empty(workspace):
    fund(workspace, earned=1)
    first = credits_spend(workspace=workspace, amount=1, reference="msg-1")
    assert credits_spend(workspace=workspace, amount=1, reference="msg-1").pk == first.pk
    assert balance(workspace) == 0


def test_it_earns_once_per_reference(workspace):
    first = credits_earn(workspace=workspace, amount=2, reference="w-1", reason="Warm-up reply")
    again = credits_earn(workspace=workspace, amount=2, reference="w-1", reason="Warm-up reply")
    assert again.pk == first.pk and (first.amount, first.balance_after) == (2, 2)
    assert parts(workspace) == (0, 2)


def test_it_charges_nothing_when_the_senders_transaction_rolls_back(workspace):
    fund(workspace, earned=5)
    with pytest.raises(RuntimeError), transaction.atomic():
        credits_spend(workspace=workspace, amount=1, reference="msg-1")
        raise RuntimeError("the send failed")
    assert balance(workspace) == 5
    assert entries(workspace, CreditKind.SPEND) == []
    # The reference is free again: the retried send is charged once.
    credits_spend(workspace=workspace, amount=1, reference="msg-1")
    assert balance(workspace) == 4


def test_it_leaves_the_senders_transaction_usable_after_a_refused_spend(workspace):
    fund(workspace, earned=1)
    with transaction.atomic():
        credits_spend(workspace=workspace, amount=1, reference="msg-1")
        with pytest.raises(InsufficientCredits):
            credits_spend(workspace=workspace, amount=1, reference="msg-2")
        # The sender goes on in the same transaction: marks the message, earns, queries.
        credits_earn(workspace=workspace, amount=3, reference="w-1", reason="Warming")
        assert CreditEntry.objects.filter(workspace=workspace).count() == 3
    assert parts(workspace) == (0, 3)
    assert [e.reference for e in entries(workspace, CreditKind.SPEND)] == ["msg-1"]


def test_the_database_refuses_a_negative_balance_even_if_code_were_wrong(workspace):
    fund(workspace, earned=1)
    with pytest.raises(IntegrityError), transaction.atomic():
        CreditAccount.objects.filter(workspace=workspace).update(earned=-1)
    with pytest.raises(IntegrityError), transaction.atomic():
        CreditAccount.objects.filter(workspace=workspace).update(granted=-1)
    with pytest.raises(IntegrityError), transaction.atomic():
        CreditEntry.objects.create(
            workspace=workspace, kind=CreditKind.SPEND, amount=-2, balance_after=-1, reason="x"
        )
    assert parts(workspace) == (0, 1)


def test_it_creates_one_account_per_workspace(workspace):
    first = credit_account_get(workspace=workspace)
    assert credit_account_get(workspace=workspace).pk == first.pk
    assert (first.granted, first.earned, first.last_grant_day) == (0, 0, None)


# --- Tenancy ---------------------------------------------------------------------------------


def test_spending_in_one_workspace_never_touches_another(workspace):
    other = WorkspaceFactory()
    fund(workspace, granted=2, earned=2)
    fund(other, granted=2, earned=2)
    credits_spend(workspace=workspace, amount=4, reference="msg-1")
    # The same reference in another workspace is another message: charged there too.
    credits_spend(workspace=other, amount=1, reference="msg-1")
    with pytest.raises(InsufficientCredits):
        credits_spend(workspace=workspace, amount=1, reference="msg-2")
    assert parts(workspace) == (0, 0)
    assert parts(other) == (1, 2)
    assert ledger_sum(other) == 3
    assert len(entries(other, CreditKind.SPEND)) == 1


# --- The daily grant -------------------------------------------------------------------------


def test_it_grants_once_a_day(workspace):
    first = credits_grant_daily(workspace=workspace, day=MONDAY, amount=10)
    assert first is not None and (first.kind, first.amount) == (CreditKind.GRANT, 10)
    assert first.reference == "grant:2026-03-02"
    again = credits_grant_daily(workspace=workspace, day=MONDAY, amount=10)
    assert again is not None and again.pk == first.pk
    assert parts(workspace) == (10, 0)
    assert len(entries(workspace, CreditKind.GRANT)) == 1


def test_the_next_grant_expires_the_previous_grants_leftover_but_not_earned_credits(workspace):
    fund(workspace, granted=10, earned=4, day=MONDAY)
    credits_spend(workspace=workspace, amount=7, reference="msg-1")
    assert parts(workspace) == (3, 4)
    grant = credits_grant_daily(workspace=workspace, day=TUESDAY, amount=10)
    (expired,) = entries(workspace, CreditKind.EXPIRE)
    assert (expired.amount, expired.balance_after) == (-3, 4)
    assert expired.reference == "grant:2026-03-02"
    assert grant is not None and (grant.amount, grant.balance_after) == (10, 14)
    assert parts(workspace) == (10, 4)
    assert CreditAccount.objects.get(workspace=workspace).last_grant_day == TUESDAY
    assert ledger_sum(workspace) == 14


def test_a_fully_spent_grant_leaves_nothing_to_expire(workspace):
    fund(workspace, granted=2, day=MONDAY)
    credits_spend(workspace=workspace, amount=2, reference="msg-1")
    credits_grant_daily(workspace=workspace, day=TUESDAY, amount=5)
    assert entries(workspace, CreditKind.EXPIRE) == []
    assert parts(workspace) == (5, 0)


def test_a_grant_for_a_past_day_does_nothing(workspace):
    credits_grant_daily(workspace=workspace, day=TUESDAY, amount=10)
    assert credits_grant_daily(workspace=workspace, day=MONDAY, amount=50) is None
    assert parts(workspace) == (10, 0)
    assert CreditAccount.objects.get(workspace=workspace).last_grant_day == TUESDAY
    assert CreditEntry.objects.filter(workspace=workspace).count() == 1


def test_a_grant_of_zero_still_expires_the_leftover_and_moves_the_day(workspace):
    fund(workspace, granted=6, earned=1, day=MONDAY)
    assert credits_grant_daily(workspace=workspace, day=TUESDAY, amount=0) is None
    assert [e.amount for e in entries(workspace, CreditKind.EXPIRE)] == [-6]
    assert len(entries(workspace, CreditKind.GRANT)) == 1  # Monday's; none of 0 credits
    assert parts(workspace) == (0, 1)
    assert CreditAccount.objects.get(workspace=workspace).last_grant_day == TUESDAY
    assert credits_grant_daily(workspace=workspace, day=TUESDAY, amount=5) is None


def test_a_negative_grant_is_refused(workspace):
    with pytest.raises(ApplicationError):
        credits_grant_daily(workspace=workspace, day=MONDAY, amount=-1)


def verified(workspace, name: str, tier: str, status: str = DomainStatus.VERIFIED):
    return SendingDomain.objects.create(workspace=workspace, name=name, status=status, tier=tier)


def test_the_amount_follows_the_plan_and_the_best_verified_domains(workspace):
    BillingAccount.objects.create(workspace=workspace, plan="starter", status="active")
    verified(workspace, "a-standard.test", "standard")
    verified(workspace, "b-premium.test", "premium")
    verified(workspace, "c-premium.test", "premium")
    verified(workspace, "d-premium.test", "premium", status=DomainStatus.PENDING_DNS)
    # Starter counts 2 domains, the best first: premium + premium, not standard + premium.
    assert grant_amount(workspace) == 200
    pro = WorkspaceFactory()
    BillingAccount.objects.create(workspace=pro, plan="pro", status="active")
    verified(pro, "e-rehab.test", "rehab")
    verified(pro, "f-standard.test", "standard")
    verified(pro, "g-quarantine.test", "quarantine")
    assert grant_amount(pro) == 500
    assert grant_amount(WorkspaceFactory()) == 0  # the evaluation level sends no campaigns


@pytest.mark.django_db(transaction=True)  # as the scheduled task runs: a commit per workspace
def test_granting_every_workspace_grants_each_its_amount_once_a_day(monkeypatch):
    workspace, *others = [WorkspaceFactory() for _ in range(5)]
    amounts = {workspace.pk: 30, others[0].pk: 0, others[1].pk: 5, others[2].pk: 0}
    amounts[others[3].pk] = 7
    called_with: list[Any] = []

    def stand_in(ws, *, now=None) -> int:
        called_with.append(now)
        return amounts[ws.pk]

    monkeypatch.setattr(credits, "grant_amount", stand_in)
    monkeypatch.setattr(credits, "GRANT_BATCH_SIZE", 2)  # several batches of the cursor
    assert credits_grant_all(day=MONDAY) == 3
    assert credits_grant_all(day=MONDAY) == 0
    assert parts(workspace) == (30, 0) and parts(others[3]) == (7, 0)
    assert parts(others[0]) == (0, 0)
    assert CreditAccount.objects.filter(last_grant_day=MONDAY).count() == 5
    assert all(now is not None for now in called_with)


def test_granting_every_workspace_reads_the_real_entitlements(workspace):
    BillingAccount.objects.create(workspace=workspace, plan="pro", status="active")
    verified(workspace, "acme-premium.test", "premium")
    WorkspaceFactory()  # evaluation: nothing to grant
    assert credits_grant_all(day=MONDAY) == 1
    assert parts(workspace) == (1000, 0)


def test_one_workspaces_failure_does_not_withhold_the_others_grant(workspace, monkeypatch):
    broken = WorkspaceFactory()

    def stand_in(ws, *, now=None) -> int:
        if ws.pk == broken.pk:
            raise RuntimeError("unreadable plan")
        return 9

    monkeypatch.setattr(credits, "grant_amount", stand_in)
    assert credits_grant_all(day=MONDAY) == 1
    assert parts(workspace) == (9, 0)
    assert not CreditEntry.objects.filter(workspace=broken).exists()


# --- Staff adjustments -----------------------------------------------------------------------


def test_a_staff_adjustment_adds_to_earned_credits_and_is_audit_logged(workspace, staff):
    fund(workspace, granted=2, day=MONDAY)
    entry = credits_adjust(workspace=workspace, amount=5, actor=staff, reason="Ticket 42")
    assert (entry.kind, entry.amount, entry.balance_after) == (CreditKind.ADJUST, 5, 7)
    assert entry.actor == staff and entry.reason == "Ticket 42"
    assert parts(workspace) == (2, 5)
    log = AuditLog.objects.get(action="credits.adjust")
    assert (log.actor, log.workspace, log.reason) == (staff, workspace, "Ticket 42")
    assert log.before == {"balance": 2}
    assert log.after == {"balance": 7, "granted": 2, "earned": 5}
    assert entry.reference == f"audit:{log.pk}"
    # Earned credits outlive the next grant.
    credits_grant_daily(workspace=workspace, day=TUESDAY, amount=0)
    assert parts(workspace) == (0, 5)


def test_a_negative_adjustment_takes_from_the_grant_first(workspace, staff):
    fund(workspace, granted=2, earned=3)
    entry = credits_adjust(workspace=workspace, amount=-4, actor=staff, reason="Refund abuse")
    assert (entry.amount, entry.balance_after) == (-4, 1)
    assert parts(workspace) == (0, 1)


def test_an_adjustment_below_zero_is_refused_and_changes_nothing(workspace, staff):
    fund(workspace, granted=1, earned=1)
    with pytest.raises(ApplicationError, match="below zero") as refused:
        credits_adjust(workspace=workspace, amount=-3, actor=staff, reason="Too much")
    assert refused.value.code == "credits_below_zero"
    assert parts(workspace) == (1, 1)
    assert not AuditLog.objects.filter(action="credits.adjust").exists()
    assert entries(workspace, CreditKind.ADJUST) == []


@pytest.mark.parametrize(("amount", "reason"), [(5, ""), (5, "   "), (0, "Nothing")])
def test_an_adjustment_needs_a_reason_and_an_amount(workspace, staff, amount, reason):
    with pytest.raises(ApplicationError):
        credits_adjust(workspace=workspace, amount=amount, actor=staff, reason=reason)
    assert not CreditEntry.objects.filter(workspace=workspace).exists()


# --- Concurrent writers ----------------------------------------------------------------------


def race(n: int, call: Callable[[int], Any]) -> list[Any]:
    """Run `call(i)` in n threads released together, each on its own database connection;
    each result is what it returned or raised."""
    start = threading.Barrier(n)
    results: list[Any] = [None] * n

    def run(i: int) -> None:
        try:
            start.wait(timeout=10)
            results[i] = call(i)
        except Exception as error:
            results[i] = error
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not any(thread.is_alive() for thread in threads)
    return results


@pytest.mark.django_db(transaction=True)
def test_eight_threads_spending_five_credits_succeed_exactly_five_times():
    workspace = WorkspaceFactory()
    fund(workspace, granted=3, earned=2)
    results = race(8, lambda i: credits_spend(workspace=workspace, amount=1, reference=f"msg-{i}"))
    spent = [r for r in results if isinstance(r, CreditEntry)]
    refused = [r for r in results if isinstance(r, InsufficientCredits)]
    assert (len(spent), len(refused)) == (5, 3), results
    assert parts(workspace) == (0, 0)
    assert len(entries(workspace, CreditKind.SPEND)) == 5
    assert sorted(e.balance_after for e in spent) == [0, 1, 2, 3, 4]
    assert ledger_sum(workspace) == 0


@pytest.mark.django_db(transaction=True)
def test_threads_spending_the_same_reference_charge_it_once():
    workspace = WorkspaceFactory()
    fund(workspace, earned=5)
    results = race(6, lambda i: credits_spend(workspace=workspace, amount=1, reference="msg-1"))
    assert all(isinstance(r, CreditEntry) for r in results), results
    assert len({r.pk for r in results}) == 1
    assert balance(workspace) == 4


@pytest.mark.django_db(transaction=True)
def test_a_duplicate_reference_raced_inside_a_senders_transaction_leaves_it_usable():
    """The second spender passes the look-up before the first commits, waits for the row, then
    hits the unique reference: its savepoint rolls back, its transaction goes on."""
    workspace = WorkspaceFactory()
    fund(workspace, earned=5)
    outcome: dict[str, Any] = {}

    def second_sender() -> None:
        try:
            with transaction.atomic():
                outcome["entry"] = credits_spend(workspace=workspace, amount=1, reference="m")
                credits_earn(workspace=workspace, amount=2, reference="w-1", reason="Warming")
        except Exception as error:
            outcome["error"] = error
        finally:
            connection.close()

    with transaction.atomic():
        first = credits_spend(workspace=workspace, amount=1, reference="m")
        thread = threading.Thread(target=second_sender)
        thread.start()
        wait_until(
            waiting_on_a_lock,
            timeout=10,
            interval=0.02,
            what="the second sender waiting for the row",
        )
    thread.join(timeout=30)
    assert "error" not in outcome, outcome
    assert outcome["entry"].pk == first.pk
    assert len(entries(workspace, CreditKind.SPEND)) == 1
    assert parts(workspace) == (0, 6)  # 5 - 1 + 2


def waiting_on_a_lock() -> bool:
    """Whether another session waits for a lock this one holds (pg_locks is live, unlike
    pg_stat_activity, which a transaction sees as of its first read)."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_locks "
            "WHERE NOT granted AND pg_backend_pid() = ANY(pg_blocking_pids(pid))"
        )
        return cursor.fetchone()[0] > 0


@pytest.mark.django_db(transaction=True)
def test_concurrent_runs_of_the_daily_grant_grant_once():
    workspace = WorkspaceFactory()
    fund(workspace, granted=10, earned=2, day=MONDAY)
    credits_spend(workspace=workspace, amount=4, reference="msg-1")
    results = race(6, lambda i: credits_grant_daily(workspace=workspace, day=TUESDAY, amount=10))
    assert all(isinstance(r, CreditEntry) for r in results), results
    assert len({r.pk for r in results}) == 1
    assert len(entries(workspace, CreditKind.GRANT)) == 2  # Monday's and Tuesday's
    assert [e.amount for e in entries(workspace, CreditKind.EXPIRE)] == [-6]
    assert parts(workspace) == (10, 2)
    assert ledger_sum(workspace) == 12


@pytest.mark.django_db(transaction=True)
def test_spends_racing_the_daily_grant_are_never_lost():
    workspace = WorkspaceFactory()
    fund(workspace, granted=20, earned=20, day=MONDAY)

    def call(i: int) -> Any:
        if i == 0:
            return credits_grant_daily(workspace=workspace, day=TUESDAY, amount=20)
        return credits_spend(workspace=workspace, amount=1, reference=f"msg-{i}")

    results = race(9, call)
    assert all(isinstance(r, CreditEntry) for r in results), results
    # Monday's leftover (20 less the spends before the grant) expired; the rest came after.
    (expired,) = entries(workspace, CreditKind.EXPIRE)
    spent_before = 20 + expired.amount
    assert parts(workspace) == (20 - (8 - spent_before), 20)
    assert ledger_sum(workspace) == balance(workspace)
    last = CreditEntry.objects.filter(workspace=workspace).order_by("-id").first()
    assert last is not None and last.balance_after == balance(workspace)


# --- Concurrent processes --------------------------------------------------------------------

SPENDER = """
import sys
import django
django.setup()
from django.db import connections
from accounts.models import Workspace
from billing.services.credits import InsufficientCredits, credits_spend
workspace = Workspace.objects.get(pk=int(sys.argv[1]))
print("ready", flush=True)
sys.stdin.readline()  # all start together
try:
    credits_spend(workspace=workspace, amount=1, reference=sys.argv[2])
    print("spent", flush=True)
except InsufficientCredits:
    print("refused", flush=True)
finally:
    connections.close_all()
"""


def spender(django_settings, workspace_pk: int, reference: str) -> subprocess.Popen:
    """A separate Python process, set up as the product runs, on the test database."""
    db = django_settings.DATABASES["default"]
    password = f":{db['PASSWORD']}" if db.get("PASSWORD") else ""
    env = dict(
        os.environ,
        DATABASE_URL=f"postgres://{db['USER']}{password}@{db['HOST']}:{db['PORT']}/{db['NAME']}",
        DJANGO_SETTINGS_MODULE="config.settings",
        CELERY_TASK_ALWAYS_EAGER="true",
        EMBEDDED_SCHEDULER="false",
    )
    return subprocess.Popen(
        [sys.executable, "-c", SPENDER, str(workspace_pk), reference],
        cwd=ROOT,
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


@pytest.mark.django_db(transaction=True)
def test_eight_processes_spending_five_credits_succeed_exactly_five_times(settings):
    workspace = WorkspaceFactory()
    fund(workspace, granted=2, earned=3)
    procs = [spender(settings, workspace.pk, f"msg-{i}") for i in range(8)]
    try:
        for proc in procs:
            assert proc.stdout is not None
            line = proc.stdout.readline().strip()
            assert line == "ready", proc.stderr.read() if proc.stderr else line
        for proc in procs:
            assert proc.stdin is not None
            proc.stdin.write("go\n")
            proc.stdin.flush()
        outcomes = []
        for proc in procs:
            out, err = proc.communicate(timeout=60)
            assert proc.returncode == 0, err
            outcomes.append(out.strip())
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    assert sorted(outcomes) == ["refused"] * 3 + ["spent"] * 5
    assert parts(workspace) == (0, 0)
    assert len(entries(workspace, CreditKind.SPEND)) == 5
    assert ledger_sum(workspace) == 0


# --- Any sequence of operations --------------------------------------------------------------

operations = st.lists(
    st.one_of(
        # A grant `step` days after the last one (0: the same day again, -1: a past day).
        st.tuples(st.just("grant"), st.integers(-1, 2), st.integers(0, 15)),
        st.tuples(st.just("earn"), st.just(0), st.integers(1, 10)),
        st.tuples(st.just("spend"), st.just(0), st.integers(1, 12)),
        st.tuples(st.just("adjust"), st.just(0), st.integers(-12, 12).filter(bool)),
    ),
    max_size=15,
)
_serial = itertools.count()


@pytest.mark.django_db
@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(ops=operations)
def test_the_balance_is_always_the_sum_of_the_ledger_and_never_negative(workspace, staff, ops):
    # The database fixture is per test, not per example: start each example from nothing.
    CreditEntry.objects.filter(workspace=workspace).delete()
    CreditAccount.objects.filter(workspace=workspace).delete()
    granted = earned = 0
    last_day: date | None = None
    day = MONDAY
    for op, step, amount in ops:
        ref = f"r{next(_serial)}"
        if op == "grant":
            day = day + timedelta(days=step)
            credits_grant_daily(workspace=workspace, day=day, amount=amount)
            if last_day is None or day > last_day:
                granted, last_day = amount, day
        elif op == "earn":
            credits_earn(workspace=workspace, amount=amount, reference=ref, reason="Warming")
            earned += amount
        elif op == "adjust" and amount > 0:
            credits_adjust(workspace=workspace, amount=amount, actor=staff, reason="Goodwill")
            earned += amount
        else:  # a spend or a removal: refused when the balance is short
            taken = amount if op == "spend" else -amount
            with contextlib.ExitStack() as refusal:
                if taken > granted + earned:
                    refusal.enter_context(pytest.raises(ApplicationError))
                if op == "spend":
                    credits_spend(workspace=workspace, amount=taken, reference=ref)
                else:
                    credits_adjust(workspace=workspace, amount=amount, actor=staff, reason="Fix")
            if taken <= granted + earned:
                from_grant = min(granted, taken)
                granted, earned = granted - from_grant, earned - (taken - from_grant)

        account = CreditAccount.objects.filter(workspace=workspace).first()
        now = (account.granted, account.earned) if account else (0, 0)
        assert now == (granted, earned)
        assert granted >= 0 and earned >= 0
        assert ledger_sum(workspace) == granted + earned
        last = CreditEntry.objects.filter(workspace=workspace).order_by("-id").first()
        assert (last.balance_after if last else 0) == granted + earned
        assert not CreditEntry.objects.filter(workspace=workspace, balance_after__lt=0).exists()


# --- Spending for a batch of campaign messages ------------------------------------------------


def test_a_batch_spends_what_the_balance_covers_grant_first_one_entry_each(workspace):
    fund(workspace, granted=2, earned=3)
    charged = credits.credits_spend_many(
        workspace=workspace, references=[f"send:{i}" for i in range(7)]
    )
    assert charged == [f"send:{i}" for i in range(5)]
    assert parts(workspace) == (0, 0)
    spends = entries(workspace, CreditKind.SPEND)
    assert [e.reference for e in spends] == charged
    assert [e.balance_after for e in spends] == [4, 3, 2, 1, 0]
    assert ledger_sum(workspace) == 0


def test_a_batch_never_charges_a_reference_twice(workspace):
    fund(workspace, earned=10)
    first = credits.credits_spend_many(workspace=workspace, references=["a", "b", "b"])
    again = credits.credits_spend_many(workspace=workspace, references=["b", "c", "a"])
    assert (first, again) == (["a", "b"], ["b", "c", "a"])
    assert balance(workspace) == 7 and len(entries(workspace, CreditKind.SPEND)) == 3


def test_a_batch_rolled_back_with_its_senders_transaction_charges_nothing(workspace):
    fund(workspace, earned=3)
    with contextlib.suppress(RuntimeError), transaction.atomic():
        credits.credits_spend_many(workspace=workspace, references=["x", "y"])
        raise RuntimeError("the reservation failed")
    assert balance(workspace) == 3 and not entries(workspace, CreditKind.SPEND)


def test_a_batch_with_a_bad_reference_is_refused_whole(workspace):
    fund(workspace, earned=3)
    with pytest.raises(ApplicationError, match="reference"):
        credits.credits_spend_many(workspace=workspace, references=["ok", ""])
    assert balance(workspace) == 3


@pytest.mark.django_db(transaction=True)
def test_dispatchers_racing_with_batches_never_overspend_nor_charge_twice():
    workspace = WorkspaceFactory()
    fund(workspace, earned=25)
    # Six dispatchers, overlapping batches of ten references out of twenty distinct ones.
    results = race(
        6,
        lambda i: credits.credits_spend_many(
            workspace=workspace, references=[f"send:{(i * 4 + k) % 20}" for k in range(10)]
        ),
    )
    assert all(isinstance(r, list) for r in results), results
    spends = entries(workspace, CreditKind.SPEND)
    assert len({e.reference for e in spends}) == len(spends) == 20
    assert balance(workspace) == 5 and ledger_sum(workspace) == 5
    assert sorted(e.balance_after for e in spends) == list(range(5, 25))
