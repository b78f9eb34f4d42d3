"""Which mailbox sends a campaign message. Pure: no Django, no database.

One `Rotation` serves one dispatch run: it is built from the workspace's mailboxes (`Sender`)
and the daily caps (`Caps`, with what each domain and provider has already sent today), and
each `pick` returns the mailbox for the next message and counts that message.

The rules
---------
- A mailbox may send while it is active (not paused, cooling down or disconnected, and its
  domain is in an external tier), it is under its own limit (the smaller of its daily limit and
  the recommended ceiling per inbox), its domain is under the domain cap and its host provider
  is under that provider's cap (a provider without a cap is unlimited).
- A lead that already has a thread keeps its mailbox (`sticky`) so the conversation stays in
  one thread. When that mailbox is stopped, another mailbox of the same domain takes over (never
  another domain's: the reply would come from a stranger); when it is only full today, the lead
  waits for tomorrow. A sticky id that is not among the senders is treated as stopped with no
  mailbox to take over, so the lead waits as well.
- Otherwise the lowest recent bounce rate wins, compared in bands of `BOUNCE_BAND_WIDTH`
  percentage points so tiny differences do not starve a mailbox; within a band the mailbox
  least used relative to its limit goes next (an even rotation), ties broken by the lower id.
- With provider matching, a mailbox on the recipient's provider is preferred when one may send.

Every refusal only ever becomes permanent within a run (counts only grow), so each provider
keeps a heap of its mailboxes ordered by (band, share used, id) and drops entries lazily when
they reach the top: a pick costs O(log n).
"""

import heapq
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType

BOUNCE_BAND_WIDTH = 0.5
DEFAULT_PROVIDER_DAILY: Mapping[str, int] = MappingProxyType({"google": 1600, "microsoft": 3200})

# (bounce band, share of the limit used, sender id, sent when pushed, sender index)
_Entry = tuple[int, float, int, int, int]


@dataclass(frozen=True)
class Sender:
    id: int
    domain_id: int
    provider: str
    active: bool
    daily_limit: int
    sent_today: int
    bounce_rate: float


@dataclass(frozen=True)
class Caps:
    mailbox_ceiling: int = 250
    domain_daily: int = 1600
    provider_daily: Mapping[str, int] = field(default_factory=lambda: DEFAULT_PROVIDER_DAILY)
    domain_sent: Mapping[int, int] = field(default_factory=dict)
    provider_sent: Mapping[str, int] = field(default_factory=dict)


def bounce_band(bounce_rate: float) -> int:
    """The band of a recent bounce rate: rates in the same band count as equal."""
    return int(max(bounce_rate, 0.0) // BOUNCE_BAND_WIDTH)


class Rotation:
    def __init__(self, senders: Sequence[Sender], caps: Caps) -> None:
        ids = [sender.id for sender in senders]
        if len(set(ids)) != len(ids):
            raise ValueError("Each sender may appear only once.")
        self._senders = list(senders)
        self._caps = caps
        self._index = {sender.id: i for i, sender in enumerate(self._senders)}
        self._limit = [min(s.daily_limit, caps.mailbox_ceiling) for s in self._senders]
        self._band = [bounce_band(s.bounce_rate) for s in self._senders]
        self._sent = [s.sent_today for s in self._senders]
        self._domain_sent: dict[int, int] = dict(caps.domain_sent)
        self._provider_sent: dict[str, int] = dict(caps.provider_sent)
        self._provider_cap: dict[str, int] = dict(caps.provider_daily)
        for sender in self._senders:
            self._domain_sent.setdefault(sender.domain_id, 0)
            self._provider_sent.setdefault(sender.provider, 0)
        self._by_domain: dict[int, list[int]] = {}
        self._heaps: dict[str, list[_Entry]] = {}
        for i, sender in enumerate(self._senders):
            self._by_domain.setdefault(sender.domain_id, []).append(i)
            if sender.active and self._limit[i] > 0:
                self._heaps.setdefault(sender.provider, []).append(self._entry(i))
        for heap in self._heaps.values():
            heapq.heapify(heap)

    def pick(
        self,
        *,
        sticky: int | None,
        recipient_provider: str = "other",
        provider_matching: bool = False,
    ) -> int | None:
        """The sender id for the next message, counted against its caps; None if none may send."""
        if sticky is not None:
            chosen = self._sticky_choice(sticky, recipient_provider, provider_matching)
        else:
            chosen = self._free_choice(recipient_provider, provider_matching)
        if chosen is None:
            return None
        self._count(chosen)
        return self._senders[chosen].id

    def _sticky_choice(
        self, sticky: int, recipient_provider: str, provider_matching: bool
    ) -> int | None:
        index = self._index.get(sticky)
        if index is None:
            return None
        if self._senders[index].active:
            return index if self._may_send(index) else None
        best: _Entry | None = None
        best_matching: _Entry | None = None
        for i in self._by_domain[self._senders[index].domain_id]:
            if not self._may_send(i):
                continue
            entry = self._entry(i)
            if best is None or entry < best:
                best = entry
            if self._senders[i].provider == recipient_provider and (
                best_matching is None or entry < best_matching
            ):
                best_matching = entry
        if provider_matching and best_matching is not None:
            return best_matching[4]
        return None if best is None else best[4]

    def _free_choice(self, recipient_provider: str, provider_matching: bool) -> int | None:
        if provider_matching:
            matching = self._top(recipient_provider)
            if matching is not None:
                return matching[4]
        best: _Entry | None = None
        for provider in self._heaps:
            top = self._top(provider)
            if top is not None and (best is None or top < best):
                best = top
        return None if best is None else best[4]

    def _top(self, provider: str) -> _Entry | None:
        """The best entry of a provider's heap, dropping stale entries and stopped mailboxes."""
        heap = self._heaps.get(provider)
        if not heap:
            return None
        if not self._provider_open(provider):
            heap.clear()
            return None
        while heap:
            entry = heap[0]
            index = entry[4]
            if entry[3] == self._sent[index] and self._may_send(index):
                return entry
            heapq.heappop(heap)
        return None

    def _entry(self, index: int) -> _Entry:
        sent = self._sent[index]
        limit = self._limit[index]
        share = sent / limit if limit > 0 else 1.0
        return (self._band[index], share, self._senders[index].id, sent, index)

    def _provider_open(self, provider: str) -> bool:
        cap = self._provider_cap.get(provider)
        return cap is None or self._provider_sent[provider] < cap

    def _may_send(self, index: int) -> bool:
        sender = self._senders[index]
        return (
            sender.active
            and self._sent[index] < self._limit[index]
            and self._domain_sent[sender.domain_id] < self._caps.domain_daily
            and self._provider_open(sender.provider)
        )

    def _count(self, index: int) -> None:
        sender = self._senders[index]
        self._sent[index] += 1
        self._domain_sent[sender.domain_id] += 1
        self._provider_sent[sender.provider] += 1
        heap = self._heaps[sender.provider]
        if heap[0][4] == index:
            heapq.heapreplace(heap, self._entry(index))
        else:
            # Its old entry is now stale (the sent count no longer matches): dropped lazily.
            heapq.heappush(heap, self._entry(index))
