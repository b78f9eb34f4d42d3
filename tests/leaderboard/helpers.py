"""Building leaderboard worlds: workspaces with verified domains and window volumes."""

from datetime import UTC, datetime

from accounts.models import Workspace
from accounts.services import leaderboard_handle_new
from leaderboard.models import Participant
from reputation.models import DomainDailyMetrics
from sending.models import SendingDomain
from tests.campaigns import builders


def workspace(name: str = "Acme") -> Workspace:
    return Workspace.objects.create(name=name, leaderboard_handle=leaderboard_handle_new())


def domain_with_volume(
    ws: Workspace,
    name: str,
    *,
    score: float | None,
    tier: str = "standard",
    sent: int = 0,
    warmup: int = 0,
    day=None,
) -> SendingDomain:
    """A verified domain that sent `sent` messages (of which `warmup` warm-up) today."""
    domain = builders.sending_domain(
        ws, name, tier=tier, score=score, verified_at=datetime(2026, 9, 1, tzinfo=UTC)
    )
    if sent:
        DomainDailyMetrics.objects.create(
            domain=domain, day=day or datetime.now(UTC).date(), sent=sent, warmup_sent=warmup
        )
    return domain


def join(ws: Workspace, *, joined_at: datetime | None = None) -> Participant:
    """A participant row as consent creates it (without the consent service's side effects)."""
    kw = {"joined_at": joined_at} if joined_at else {}
    return Participant.objects.create(workspace=ws, terms_version="test", **kw)
