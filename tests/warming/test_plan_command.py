"""`manage.py warming_plan --date --json`: the day's plan from the database, one object a line."""

import json
from datetime import date
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from accounts.services import workspace_create
from sending.models import DomainStatus, Mailbox, SendingDomain
from tests.factories import UserFactory
from warming.models import GoldenSeed, WarmupSend

pytestmark = pytest.mark.django_db
DAY = date(2026, 12, 1)  # a Tuesday


def _network(clusters: dict[str, tuple[str, bool]], per_domain: int = 3) -> None:
    """One workspace per domain; domain name -> (tier, provisional)."""
    for name, (tier, provisional) in clusters.items():
        workspace = workspace_create(owner=UserFactory(), name=name)
        domain = SendingDomain.objects.create(
            workspace=workspace,
            name=name,
            status=DomainStatus.VERIFIED,
            tier=tier,
            score_provisional=provisional,
        )
        for i in range(per_domain):
            Mailbox.objects.create(
                domain=domain, local_part=f"m{i}", connection="platform", provider="google"
            )


def _plan(*args: str) -> list[dict]:
    out = StringIO()
    call_command("warming_plan", "--date", DAY.isoformat(), "--json", *args, stdout=out)
    return [json.loads(line) for line in out.getvalue().splitlines()]


def test_the_plan_pairs_across_workspaces_inside_clusters_and_is_repeatable():
    _network(
        {
            **{f"healthy{i}.com": ("premium", False) for i in range(4)},
            **{f"rehab{i}.com": ("rehab", False) for i in range(3)},
            "locked.com": ("quarantine", False),
        }
    )
    GoldenSeed.objects.create(address="seed@gmail.com", provider="google", daily_budget=3)
    rows = _plan()
    assert rows and set(rows[0]) == {"sender", "recipient", "cluster", "send_at"}
    for row in rows:
        sender_domain = row["sender"].split("@")[1]
        recipient_domain = row["recipient"].split("@")[1]
        assert sender_domain != recipient_domain
        assert "locked.com" not in (sender_domain, recipient_domain)
        if row["cluster"] == "rehab":
            assert sender_domain.startswith("rehab") and recipient_domain.startswith("rehab")
        if "rehab" in sender_domain or "rehab" in recipient_domain:
            assert row["cluster"] == "rehab"
        assert row["send_at"].startswith("2026-12-01T")
    assert any(row["cluster"] == "seed" for row in rows)
    assert _plan() == rows  # same day, same plan


def test_pairs_of_the_last_seven_days_are_not_repeated():
    _network({f"d{i}.com": ("premium", False) for i in range(3)}, per_domain=1)
    first = _plan()
    a, b = Mailbox.objects.order_by("pk")[:2]
    WarmupSend.objects.create(
        day=date(2026, 11, 28),
        sender=a,
        recipient=b,
        cluster="healthy",
        send_at="2026-11-28T10:00Z",
    )
    again = _plan()
    pairs = {frozenset((r["sender"], r["recipient"])) for r in again}
    assert frozenset((a.address, b.address)) not in pairs
    assert first != again


def test_a_bad_date_is_refused_clearly():
    with pytest.raises(CommandError, match="YYYY-MM-DD"):
        call_command("warming_plan", "--date", "01/12/2026")
