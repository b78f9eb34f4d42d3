"""The daily warm-up pairing planner: who sends to whom today. Pure: no Django, no database.

Input: every mailbox enrolled in warming as a `Node` (customers' mailboxes and the operator's
golden seeds), the pairs that exchanged mail in the last 7 days, a seed and the day. Output: a
`Plan` (one row per message: sender, recipient, cluster, send time) and the report of the sends
that could not be placed, with the reason.

The rules
---------
- Quarantined mailboxes take no part: they send nothing (their volume is reported unplaced with
  the reason "quarantine") and receive nothing.
- Healthy, new and rehab mailboxes exchange mail inside their own cluster only (rehab stays
  among rehab: contagion stays contained). Golden seeds (cluster "seed") exchange mail with
  healthy and new mailboxes only; their rows carry the cluster "seed".
- Never two mailboxes of the same domain or the same workspace.
- A pair is unordered: A->B and B->A are the same pair. A pair that exchanged mail in the last
  7 days (`recent_pairs`, either direction) gets none today, and a pair exchanges at most one
  message a day. Treating the reverse as the same pair keeps two mailboxes from looking like a
  ring that just swaps messages.
- A mailbox sends at most its volume (`Node.sends`; a seed: `seed_budget`) and receives at most
  its capacity (`Node.receive_capacity`, by default its volume; a seed: `seed_budget`).
- Balance: every customer mailbox (not a seed) ends the day with
  0.8 * sent <= received <= 1.2 * sent (so a mailbox that sends nothing receives nothing).
- Provider mix: a customer mailbox that sends two or more messages does not send them all to one
  provider when the mailboxes it may write to (its cluster's mailboxes that can receive today,
  plus the seeds for healthy and new mailboxes; not its own domain or workspace, not a recent
  pair, not one that writes to it today) include another provider.
- Seeds serve new mailboxes first, in each direction: a seed writes to (or receives from) a
  healthy mailbox only when no new mailbox it may pair with can take more seed mail (what a
  mailbox may take from seeds is capped, see step 1; a new mailbox may always take one).
- A send that cannot be placed without breaking a rule is left unplaced and reported.

The algorithm, in plain words
-----------------------------
Keys, domains, workspaces and providers become small ints; each mailbox keeps two short lists,
the mailboxes it writes to today and the ones it hears from. A pair is one int (a * n + b with
a < b): the recent pairs are one set of them, today's pairs another, so "may this pair exchange
mail" is two comparisons and two set look-ups.

1. Seeds first. New mailboxes, then healthy ones, are put in a shuffled ring per cluster. The
   seeds take turns (one message each per turn, so the budget spreads); each takes the next
   mailbox of the ring, from a cursor shared by all seeds, that it may pair with and that still
   has room, and moves on to the healthy ring only once a full turn of the new ring finds
   nobody. Mailboxes without room leave the ring. Done once for seed -> mailbox, once for
   mailbox -> seed. A pair exchanges one message a day, so a seed that writes to a mailbox
   can no longer hear from it: in the seed -> mailbox phase a mailbox with few partners (its
   peers, counted from below from per-workspace and per-domain tallies, plus the seeds it may
   pair with) takes at most half of them (at least one), which leaves seeds for the
   mailbox -> seed phase and lets the mailbox balance; one with plenty takes up to its
   receive goal.
2. Each cluster is paired on its own. Every mailbox's remaining sends and remaining receives
   are spread over R rounds (R = the largest volume), at most one of each per round, evenly
   spaced with a random phase, so a mailbox's messages never meet the same partner twice in a
   row. Senders fill the rounds in one shuffled order of the cluster, recipients in another,
   and each round turns its recipients by a random offset (two shuffles per cluster instead of
   two per round). In each round the senders take recipients from the head of a queue; a
   recipient that does not fit the sender (itself, same domain or workspace, a pair already
   used today or recently, or, for a sender whose recipients so far are all of one provider,
   that provider again during the first few tries) is set aside and put back at the head of the
   queue for the next sender. Conflicts are rare, so that is O(1) amortised per send. Unused
   recipients and senders that found nobody carry over to the next round.
3. Repairs. A leftover send is matched with a leftover recipient directly, or by a swap with a
   random placed message of the cluster (y->b becomes y->d and a->b). A sender whose recipients
   are all of one provider swaps one of them with a random placed message to another provider.
4. Settling. Every customer mailbox is checked against the balance and provider-mix rules,
   from a work queue. A mailbox that sends too much for what it receives first looks for one
   more message from a cluster mate with sends left (and room in its own balance); failing
   that it drops sends. One that receives too much first looks for one more recipient for its
   own unsent volume; failing that it drops incoming messages (their senders report them
   unplaced). A sender without a mix first tries the swap of step 3 again, else is cut to one
   message. Cuts take peer messages before seed messages (so seed mail survives as long as the
   mailbox keeps any) and, first, partners that stay balanced with one message less (so a cut
   does not run on through the cluster). Additions are capped, cuts only remove, so settling
   ends; dropped sends are reported ("balance", "provider mix").
5. Send times: each sender's messages, in shuffled order, get the moments `send_times` spreads
   over its `working_day` (its window and time zone), jittered.

Everything random comes from one generator seeded by (seed, day), and every loop runs in a fixed
order, so the same input and seed give the same plan.
"""

from __future__ import annotations

import random
from array import array
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, tzinfo
from typing import NamedTuple

from warming.schedule import send_times, working_day

HEALTHY = "healthy"
NEW = "new"
REHAB = "rehab"
QUARANTINE = "quarantine"
SEED = "seed"
CLUSTERS = (HEALTHY, NEW, REHAB, QUARANTINE, SEED)

GOOGLE = "google"
MICROSOFT = "microsoft"
OTHER = "other"

RECENT_DAYS = 7  # the caller passes the pairs of this many previous days
DEFAULT_WINDOW = (time(9, 0), time(17, 0))

REASON_QUARANTINE = "quarantine"
REASON_NO_RECIPIENT = "no eligible recipient"
REASON_BALANCE = "balance"
REASON_MIX = "provider mix"

_H, _N, _R, _Q, _S = range(5)  # cluster codes, in the order of CLUSTERS
_TRIES = 48  # recipients a sender looks at in one round before it waits for the next
_PREFER = 8  # of those, how many may be skipped only for repeating the sender's one provider
_REPAIR_TRIES = 64
_FIX_LOOKS = 400  # recipients of another provider a mix repair looks at before giving up


@dataclass(frozen=True, slots=True)
class Node:
    """One mailbox enrolled in warming, as the planner sees it today.

    A golden seed has cluster "seed": it sends at most `seed_budget` messages today and receives
    at most `seed_budget` (its `sends` and `receive_capacity` are not used). `provider` is a
    label ("google", "microsoft", "other"); mailboxes with equal labels count as one provider.
    """

    key: str
    workspace: str
    domain: str
    provider: str
    cluster: str
    sends: int = 0
    receive_capacity: int | None = None
    seed_budget: int = 0
    window: tuple[time, time] = DEFAULT_WINDOW
    tz: tzinfo = UTC

    @property
    def volume(self) -> int:
        """Messages it may send today."""
        if self.cluster == SEED:
            return max(0, self.seed_budget)
        return max(0, self.sends)

    @property
    def capacity(self) -> int:
        """Messages it may receive today."""
        if self.cluster == SEED:
            return max(0, self.seed_budget)
        if self.cluster == QUARANTINE:
            return 0
        return max(0, self.sends if self.receive_capacity is None else self.receive_capacity)


class PlanRow(NamedTuple):
    sender: str
    recipient: str
    cluster: str  # "healthy", "new", "rehab", or "seed" for an exchange with a golden seed
    send_at: datetime | None


@dataclass(frozen=True, slots=True)
class Unplaced:
    """Sends of one sender left unplaced today, and why."""

    sender: str
    count: int
    reason: str


@dataclass(frozen=True, slots=True)
class Plan:
    """One day's plan, stored compactly (indices into `keys`); `rows()` yields readable rows."""

    day: date
    keys: tuple[str, ...]
    senders: array[int]
    recipients: array[int]
    clusters: array[int]  # codes into CLUSTERS
    send_at: list[datetime | None]
    unplaced: list[Unplaced]

    def __len__(self) -> int:
        return len(self.senders)

    def rows(self) -> Iterator[PlanRow]:
        keys = self.keys
        for sender, recipient, cluster, moment in zip(
            self.senders, self.recipients, self.clusters, self.send_at, strict=True
        ):
            yield PlanRow(keys[sender], keys[recipient], CLUSTERS[cluster], moment)

    def pairs(self) -> Iterator[tuple[str, str]]:
        """(sender, recipient) keys: what tomorrow's `recent_pairs` takes from today."""
        keys = self.keys
        for sender, recipient in zip(self.senders, self.recipients, strict=True):
            yield keys[sender], keys[recipient]

    def sent(self) -> dict[str, int]:
        return self._count(self.senders)

    def received(self) -> dict[str, int]:
        return self._count(self.recipients)

    def unplaced_total(self) -> int:
        return sum(item.count for item in self.unplaced)

    def _count(self, column: array[int]) -> dict[str, int]:
        counts = [0] * len(self.keys)
        for index in column:
            counts[index] += 1
        return {key: count for key, count in zip(self.keys, counts, strict=True) if count}


def plan_day(
    nodes: Sequence[Node],
    *,
    recent_pairs: Iterable[tuple[str, str]],
    seed: int,
    day: date,
    with_times: bool = True,
) -> Plan:
    """Today's warm-up messages for every enrolled mailbox (see the module docstring)."""
    planner = _Planner(nodes, recent_pairs, seed, day)
    planner.seed_phase(outgoing=True)
    planner.seed_phase(outgoing=False)
    for cluster in (_N, _H, _R):
        planner.pair_cluster(cluster)
    planner.settle()
    return planner.plan(with_times=with_times)


def sender_times(
    node: Node, count: int, day: date, *, seed: int = 0, rng: random.Random | None = None
) -> list[datetime]:
    """`count` send moments for one sender, in order, spread over its working day (its own,
    inside its window and time zone) with jitter from `rng` (or one seeded by seed, key, day)."""
    if count <= 0:
        return []
    today = working_day(node.key, day, window=node.window, tz=node.tz)
    jitter = rng or random.Random(f"{seed}:{node.key}:{day.isoformat()}")
    moments = send_times(count, today, jitter)
    return moments if len(moments) == count else [today.start] * count


class _Planner:
    def __init__(
        self, nodes: Sequence[Node], recent_pairs: Iterable[tuple[str, str]], seed: int, day: date
    ) -> None:
        self.nodes = nodes
        self.day = day
        self.seed = seed
        self.rng = random.Random(f"pairing:{seed}:{day.isoformat()}")
        n = self.n = len(nodes)
        index: dict[str, int] = {}
        domains: dict[str, int] = {}
        workspaces: dict[str, int] = {}
        providers: dict[str, int] = {}
        codes = {name: code for code, name in enumerate(CLUSTERS)}
        self.dom: list[int] = []
        self.ws: list[int] = []
        self.prov: list[int] = []
        self.cl: list[int] = []
        self.vol: list[int] = []
        self.cap: list[int] = []
        for position, node in enumerate(nodes):
            if node.key in index:
                raise ValueError(f"duplicate mailbox key {node.key!r}")
            if node.cluster not in codes:
                raise ValueError(f"unknown cluster {node.cluster!r} for {node.key!r}")
            index[node.key] = position
            self.dom.append(domains.setdefault(node.domain, len(domains)))
            self.ws.append(workspaces.setdefault(node.workspace, len(workspaces)))
            self.prov.append(providers.setdefault(node.provider, len(providers)))
            self.cl.append(codes[node.cluster])
            self.vol.append(node.volume)
            self.cap.append(node.capacity)
        self.index = index
        recent: set[int] = set()
        get = index.get
        for first, second in recent_pairs:
            a = get(first)
            b = get(second)
            if a is None or b is None or a == b:
                continue
            recent.add(a * n + b if a < b else b * n + a)
        self.recent = recent
        self.today: set[int] = set()  # pairs (same code) that exchange mail today
        self.outs: list[list[int]] = [[] for _ in range(n)]
        self.ins: list[list[int]] = [[] for _ in range(n)]
        self.mono = [-1] * n  # provider of all recipients so far; -1 none yet, -2 mixed
        self.balance_cut = [0] * n
        self.mix_cut = [0] * n
        self.members: list[list[int]] = [[] for _ in CLUSTERS]
        for position, cluster in enumerate(self.cl):
            self.members[cluster].append(position)
        self._other_cache: dict[tuple[int, int], int] = {}
        self._buckets: dict[int, dict[int, list[int]]] = {}
        self._seed_cap: list[int] = [0] * n  # see `_seed_caps`

    # -- small rules ---------------------------------------------------------------------------

    def allowed(self, a: int, b: int) -> bool:
        """The pair may exchange mail, ignoring today's messages and capacities."""
        if a == b or self.dom[a] == self.dom[b] or self.ws[a] == self.ws[b]:
            return False
        n = self.n
        return (a * n + b if a < b else b * n + a) not in self.recent

    def free(self, a: int, b: int) -> bool:
        """The pair may exchange mail today (static rules and no message yet today)."""
        n = self.n
        return self.allowed(a, b) and (a * n + b if a < b else b * n + a) not in self.today

    def can_receive(self, b: int) -> bool:
        if self.cl[b] == _S:
            return self.cap[b] >= 1
        return self.cl[b] != _Q and self.cap[b] >= 1 and self.vol[b] >= 1

    def place(self, a: int, b: int) -> None:
        n = self.n
        self.today.add(a * n + b if a < b else b * n + a)
        self.outs[a].append(b)
        self.ins[b].append(a)
        mono = self.mono[a]
        if mono == -1:
            self.mono[a] = self.prov[b]
        elif mono >= 0 and mono != self.prov[b]:
            self.mono[a] = -2

    def remove(self, a: int, b: int) -> None:
        n = self.n
        self.today.discard(a * n + b if a < b else b * n + a)
        self.outs[a].remove(b)
        self.ins[b].remove(a)
        self.mono[a] = self.mono_of(a)

    def mono_of(self, a: int) -> int:
        targets = self.outs[a]
        if not targets:
            return -1
        prov = self.prov
        first = prov[targets[0]]
        for b in targets:
            if prov[b] != first:
                return -2
        return first

    def receive_goal(self, b: int) -> int:
        """What a customer mailbox aims to receive: as many as it sends, within capacity."""
        return min(self.cap[b], self.vol[b])

    # -- 1. seeds ------------------------------------------------------------------------------

    def seed_phase(self, *, outgoing: bool) -> None:
        seeds = [s for s in self.members[_S] if (self.vol[s] if outgoing else self.cap[s]) > 0]
        if not seeds:
            return
        if outgoing:
            self._seed_cap = self._seed_caps(seeds)
        rings: list[list[int]] = []
        for cluster in (_N, _H):
            ring = [m for m in self.members[cluster] if self._seed_room(m, outgoing) > 0]
            self.rng.shuffle(ring)
            rings.append(ring)
        cursors = [0, 0]
        tier = dict.fromkeys(seeds, 0)
        budget = {s: self.vol[s] if outgoing else self.cap[s] for s in seeds}
        active = seeds
        while active:
            still: list[int] = []
            for s in active:
                if self._seed_one(s, outgoing, rings, cursors, tier):
                    budget[s] -= 1
                    if budget[s] > 0:
                        still.append(s)
            active = still

    def _seed_room(self, m: int, outgoing: bool) -> int:
        if outgoing:  # seed -> m: m's receives (all from seeds so far), up to its seed cap
            return self._seed_cap[m] - len(self.ins[m])
        return self.vol[m] - len(self.outs[m])

    def _seed_caps(self, seeds: list[int]) -> list[int]:
        """How much seed mail each healthy or new mailbox may take in the seed -> mailbox phase.
        Its receive goal when it has plenty of partners; otherwise about half of the partners
        it may pair with (peers of its cluster and seeds), at least one, so that the
        mailbox -> seed phase still finds seeds that have not written to it (a pair exchanges
        one message a day). Peers are counted from below, without a pass over the cluster."""
        n, ws, dom = self.n, self.ws, self.dom
        caps = [0] * n
        recent_deg = [0] * n
        for code in self.recent:
            recent_deg[code // n] += 1
            recent_deg[code % n] += 1
        for cluster in (_N, _H):
            members = self.members[cluster]
            takers = [m for m in members if self.can_receive(m)]
            by_ws: dict[int, int] = {}
            by_dom: dict[int, int] = {}
            for m in takers:
                by_ws[ws[m]] = by_ws.get(ws[m], 0) + 1
                by_dom[dom[m]] = by_dom.get(dom[m], 0) + 1
            for m in members:
                goal = self.receive_goal(m)
                if goal <= 0:
                    continue
                peers = len(takers) - by_ws.get(ws[m], 0) - by_dom.get(dom[m], 0) - recent_deg[m]
                if peers >= 2 * goal:
                    caps[m] = goal
                    continue
                partners = max(0, peers) + sum(1 for s in seeds if self.allowed(s, m))
                caps[m] = max(1, min(goal, partners // 2))
        return caps

    def _seed_one(
        self,
        s: int,
        outgoing: bool,
        rings: list[list[int]],
        cursors: list[int],
        tier: dict[int, int],
    ) -> bool:
        while tier[s] < 2:
            level = tier[s]
            ring = rings[level]
            size = len(ring)
            position = cursors[level]
            dead = 0
            for _ in range(size):
                if position >= size:
                    position = 0
                m = ring[position]
                position += 1
                if self._seed_room(m, outgoing) <= 0:
                    dead += 1
                    continue
                if not self.free(s, m):
                    continue
                if outgoing:
                    self.place(s, m)
                else:
                    self.place(m, s)
                cursors[level] = position
                if dead * 4 > size:
                    self._compact(rings, cursors, level, outgoing)
                return True
            if dead * 4 > size:
                self._compact(rings, cursors, level, outgoing)
            tier[s] = level + 1
        return False

    def _compact(
        self, rings: list[list[int]], cursors: list[int], level: int, outgoing: bool
    ) -> None:
        ring = rings[level]
        cursor = cursors[level]
        before = sum(1 for m in ring[:cursor] if self._seed_room(m, outgoing) > 0)
        rings[level] = [m for m in ring if self._seed_room(m, outgoing) > 0]
        cursors[level] = before

    # -- 2. one cluster ------------------------------------------------------------------------

    def pair_cluster(self, cluster: int) -> None:
        rng = self.rng
        outs, ins, vol = self.outs, self.ins, self.vol
        # Two independent shuffles of the cluster fill the rounds, senders in one order and
        # recipients in the other; each round then turns the recipients by a random offset.
        members = list(self.members[cluster])
        rng.shuffle(members)
        send_left = [vol[m] - len(outs[m]) for m in members]
        takers = list(self.members[cluster])
        rng.shuffle(takers)
        take_left = [max(0, self.receive_goal(m) - len(ins[m])) for m in takers]
        rounds = max([1, *send_left, *take_left])
        senders_by_round: list[list[int]] = [[] for _ in range(rounds)]
        takers_by_round: list[list[int]] = [[] for _ in range(rounds)]
        # Stub j of a mailbox with k of them goes to round (j * R + phase) // k: k distinct
        # rounds, evenly spaced, phase random in [0, R).
        randrange = rng.randrange
        for m, count in zip(members, send_left, strict=True):
            if count > 0:
                phase = randrange(rounds)
                for t in range(phase, count * rounds + phase, rounds):
                    senders_by_round[t // count].append(m)
        for m, count in zip(takers, take_left, strict=True):
            if count > 0:
                phase = randrange(rounds)
                for t in range(phase, count * rounds + phase, rounds):
                    takers_by_round[t // count].append(m)
        pending: deque[int] = deque()
        carry: list[int] = []
        for r in range(rounds):
            senders = senders_by_round[r]
            senders_by_round[r] = []
            if r % 2:
                senders.reverse()
            senders.extend(carry)
            fresh = takers_by_round[r]
            takers_by_round[r] = []
            if fresh:
                turn = rng.randrange(len(fresh))
                pending.extend(fresh[turn:])
                pending.extend(fresh[:turn])
            carry = self._round(senders, pending)
        self._repair(cluster, carry, list(pending))
        self._mix_swaps(cluster)

    def _round(self, senders: list[int], pending: deque[int]) -> list[int]:
        """Give each sender one recipient from the queue; return the senders that found none."""
        dom, ws, prov, outs, ins, mono = (
            self.dom,
            self.ws,
            self.prov,
            self.outs,
            self.ins,
            self.mono,
        )
        recent, today, n = self.recent, self.today, self.n
        add_today = today.add
        popleft, extendleft = pending.popleft, pending.extendleft
        appendleft = pending.appendleft
        failed: list[int] = []
        for a in senders:
            out_a, mono_a = outs[a], mono[a]
            if pending:  # the usual case: the head of the queue fits
                b = popleft()
                code = a * n + b if a < b else b * n + a
                if (
                    ws[b] != ws[a]
                    and dom[b] != dom[a]
                    and (mono_a < 0 or prov[b] != mono_a)
                    and code not in today
                    and code not in recent
                ):
                    add_today(code)
                    out_a.append(b)
                    ins[b].append(a)
                    if mono_a == -1:
                        mono[a] = prov[b]
                    elif mono_a >= 0:
                        mono[a] = -2
                    continue
                appendleft(b)
            skipped: list[int] = []
            tries = 0
            found = -1
            dom_a, ws_a = dom[a], ws[a]
            while pending and tries < _TRIES:
                b = popleft()
                tries += 1
                code = a * n + b if a < b else b * n + a
                if (
                    b == a
                    or dom[b] == dom_a
                    or ws[b] == ws_a
                    or (mono_a >= 0 and tries <= _PREFER and prov[b] == mono_a)
                    or code in today
                    or code in recent
                ):
                    skipped.append(b)
                    continue
                found = b
                add_today(code)
                break
            if skipped:
                skipped.reverse()
                extendleft(skipped)
            if found < 0:
                failed.append(a)
                continue
            out_a.append(found)
            ins[found].append(a)
            if mono_a == -1:
                mono[a] = prov[found]
            elif mono_a >= 0 and prov[found] != mono_a:
                mono[a] = -2
        return failed

    # -- 3. repairs ----------------------------------------------------------------------------

    def _random_edge(self, cluster: int) -> tuple[int, int] | None:
        """A random placed message between two mailboxes of `cluster` (not a seed message)."""
        members = self.members[cluster]
        rng = self.rng
        for _ in range(8):
            y = members[rng.randrange(len(members))]
            targets = self.outs[y]
            if targets:
                b = targets[rng.randrange(len(targets))]
                if self.cl[b] == cluster:
                    return y, b
        return None

    def _repair(self, cluster: int, senders: list[int], takers: list[int]) -> None:
        rng = self.rng
        for a in senders:
            if not takers:
                return
            placed = False
            for _ in range(min(_REPAIR_TRIES, 4 * len(takers))):
                i = rng.randrange(len(takers))
                b = takers[i]
                if self.free(a, b):
                    self.place(a, b)
                    takers[i] = takers[-1]
                    takers.pop()
                    placed = True
                    break
            if placed:
                continue
            for _ in range(_REPAIR_TRIES):
                i = rng.randrange(len(takers))
                d = takers[i]
                edge = self._random_edge(cluster)
                if edge is None:
                    break
                y, b = edge
                if y == a or b == d or not self.free(a, b):
                    continue
                self.remove(y, b)
                if self.free(y, d):
                    self.place(y, d)
                    self.place(a, b)
                    takers[i] = takers[-1]
                    takers.pop()
                    break
                self.place(y, b)

    def _mix_swaps(self, cluster: int) -> None:
        """Senders whose recipients are all of one provider trade one of them (see `fix_mix`)."""
        outs, mono = self.outs, self.mono
        for x in self.members[cluster]:
            if mono[x] >= 0 and len(outs[x]) >= 2 and self.has_other(x, mono[x]):
                self.fix_mix(x)

    def fix_mix(self, x: int) -> list[int]:
        """Give `x`, whose recipients are all of one provider, a recipient of another: x->b and
        y->q (q of another provider) become x->q and y->b, where y keeps its own mix."""
        cl, prov, outs, ins = self.cl, self.prov, self.outs, self.ins
        cluster = cl[x]
        mine = [b for b in outs[x] if cl[b] == cluster]
        if not mine or self.mono[x] < 0:
            return []
        provider = self.mono[x]
        looked = 0
        for other, group in self._bucket(cluster).items():
            if other == provider:
                continue
            for q in group:
                if looked >= _FIX_LOOKS:
                    return []
                if cl[q] != cluster or not self.free(x, q):
                    continue
                looked += 1
                for y in ins[q]:
                    if y == x or cl[y] != cluster:
                        continue
                    for b in mine:
                        if b == q or not self.free(y, b):
                            continue
                        kinds = {prov[t] for t in outs[y] if t != q}
                        kinds.add(prov[b])
                        if len(outs[y]) >= 2 and len(kinds) < 2:
                            continue
                        self.remove(y, q)
                        self.remove(x, b)
                        self.place(y, b)
                        self.place(x, q)
                        return [x, y, q, b]
        return []

    def _bucket(self, cluster: int) -> dict[int, list[int]]:
        """The mailboxes a sender of `cluster` may write to, by provider, in a shuffled order."""
        if cluster not in self._buckets:
            targets = list(self.members[cluster])
            if cluster in (_H, _N):
                targets.extend(self.members[_S])
            by_provider: dict[int, list[int]] = {}
            for b in targets:
                if self.can_receive(b):
                    by_provider.setdefault(self.prov[b], []).append(b)
            for group in by_provider.values():
                self.rng.shuffle(group)
            self._buckets[cluster] = by_provider
        return self._buckets[cluster]

    def has_other(self, x: int, provider: int) -> bool:
        """`x` may write to some mailbox of another provider than `provider`: static rules, and
        not one that already writes to `x` today."""
        key = (x, provider)
        found = self._other_cache.get(key, -1)
        if found >= 0 and found not in self.ins[x]:
            return True
        for other, group in self._bucket(self.cl[x]).items():
            if other == provider:
                continue
            for b in group:
                if self.allowed(x, b) and b not in self.ins[x]:
                    self._other_cache[key] = b
                    return True
        self._other_cache[key] = -1
        return False

    # -- 4. settling ---------------------------------------------------------------------------

    def settle(self) -> None:
        cl, outs, ins = self.cl, self.outs, self.ins
        customers = [m for m in range(self.n) if cl[m] != _S and (outs[m] or ins[m])]
        self._spare_send: dict[int, list[int]] = {}
        self._spare_take: dict[int, list[int]] = {}
        for cluster in (_H, _N, _R):
            members = self.members[cluster]
            self._spare_send[cluster] = [m for m in members if self._can_add_send(m)]
            self._spare_take[cluster] = [m for m in members if self._can_add_take(m)]
        self._adds_left = 2 * len(customers) + 16  # so that settling always ends
        work: deque[int] = deque(customers)
        queued = bytearray(self.n)
        for m in customers:
            queued[m] = 1
        while work:
            m = work.popleft()
            queued[m] = 0
            touched = self._settle_one(m)
            for t in touched:
                if not queued[t] and cl[t] != _S:
                    queued[t] = 1
                    work.append(t)

    def _can_add_send(self, y: int) -> bool:
        """`y` has volume left and one more send keeps it balanced."""
        sent = len(self.outs[y])
        return sent < self.vol[y] and 5 * len(self.ins[y]) >= 4 * (sent + 1)

    def _can_add_take(self, r: int) -> bool:
        """`r` has capacity left and one more message keeps it balanced."""
        got = len(self.ins[r])
        return got < self.cap[r] and 5 * (got + 1) <= 6 * len(self.outs[r])

    def _find(
        self, pool: list[int], room: Callable[[int], bool], fits: Callable[[int], bool]
    ) -> int:
        """The first mailbox of `pool` with room that fits, or -1; looks at `_FIX_LOOKS` at most
        and drops from the pool those without room on the way."""
        looked = 0
        i = 0
        while i < len(pool) and looked < _FIX_LOOKS:
            y = pool[i]
            looked += 1
            if not room(y):
                pool[i] = pool[-1]
                pool.pop()
                continue
            if fits(y):
                return y
            i += 1
        return -1

    def _add(self, a: int, b: int) -> None:
        self.place(a, b)
        self._adds_left -= 1
        if self.balance_cut[a]:
            self.balance_cut[a] -= 1
        elif self.mix_cut[a]:
            self.mix_cut[a] -= 1

    def _cut(self, a: int, b: int, *, mix: bool = False) -> None:
        self.remove(a, b)
        if mix:
            self.mix_cut[a] += 1
        else:
            self.balance_cut[a] += 1
        if self.cl[a] != _S:
            self._spare_send[self.cl[a]].append(a)
        if self.cl[b] != _S:
            self._spare_take[self.cl[b]].append(b)

    def _settle_one(self, m: int) -> list[int]:
        outs, ins, cl, prov = self.outs, self.ins, self.cl, self.prov
        sent = len(outs[m])
        got = len(ins[m])
        touched: list[int] = []
        cluster = cl[m]
        if 5 * got < 4 * sent:  # sends too much for what it receives: more mail, or fewer sends
            if self._adds_left > 0 and got < self.cap[m]:
                y = self._find(
                    self._spare_send[cluster], self._can_add_send, lambda t: self.free(t, m)
                )
                if y >= 0:
                    self._add(y, m)
                    return [y, m]
            for _ in range(sent - (5 * got) // 4):
                counts: dict[int, int] = {}
                for b in outs[m]:
                    counts[prov[b]] = counts.get(prov[b], 0) + 1
                # Peers before seeds; first those that stay balanced with one message less, so
                # that a cut does not run on from mailbox to mailbox; keep the provider mix.
                b = outs[m][0]
                best = (-1, -1)
                for t in outs[m]:
                    steady = cl[t] == _S or 5 * (len(ins[t]) - 1) >= 4 * len(outs[t])
                    rank = (2 * (cl[t] != _S) + steady, counts[prov[t]])
                    if rank > best:
                        b, best = t, rank
                self._cut(m, b)
                touched.append(b)
        elif 5 * got > 6 * sent:  # receives too much for what it sends: more sends, or less mail
            if self._adds_left > 0 and sent < self.vol[m]:
                r = self._find(
                    self._spare_take[cluster], self._can_add_take, lambda t: self.free(m, t)
                )
                if r >= 0:
                    self._add(m, r)
                    return [r, m]
            for _ in range(got - (6 * sent) // 5):
                y = ins[m][0]
                best = (-1, -1)
                for t in ins[m]:
                    steady = cl[t] == _S or 5 * len(ins[t]) <= 6 * (len(outs[t]) - 1)
                    rank = (2 * (cl[t] != _S) + steady, len(outs[t]))
                    if rank > best:
                        y, best = t, rank
                self._cut(y, m)
                touched.append(y)
        elif sent >= 2:
            provider = self.mono[m]
            if provider >= 0 and self.has_other(m, provider):
                swapped = self.fix_mix(m)
                if swapped:
                    return swapped
                seeds = [b for b in outs[m] if cl[b] == _S]
                keep = seeds[0] if seeds else outs[m][0]
                for b in list(outs[m]):
                    if b != keep:
                        self._cut(m, b, mix=True)
                        touched.append(b)
        if touched:
            touched.append(m)
        return touched

    # -- 5. the plan ---------------------------------------------------------------------------

    def plan(self, *, with_times: bool) -> Plan:
        nodes, outs, cl = self.nodes, self.outs, self.cl
        senders: array[int] = array("i")
        recipients: array[int] = array("i")
        clusters: array[int] = array("b")
        moments: list[datetime | None] = []
        rng = self.rng
        for a in range(self.n):
            targets = outs[a]
            if not targets:
                continue
            order = list(targets)
            rng.shuffle(order)
            count = len(order)
            senders.extend([a] * count)
            recipients.extend(order)
            if cl[a] == _S:
                clusters.extend([_S] * count)
            else:
                clusters.extend([_S if cl[b] == _S else cl[a] for b in order])
            if with_times:
                moments.extend(sender_times(nodes[a], count, self.day, rng=rng))
            else:
                moments.extend([None] * count)
        unplaced: list[Unplaced] = []
        for a, node in enumerate(nodes):
            missing = self.vol[a] - len(outs[a])
            if missing <= 0:
                continue
            if cl[a] == _Q:
                unplaced.append(Unplaced(node.key, missing, REASON_QUARANTINE))
                continue
            rest = missing - self.balance_cut[a] - self.mix_cut[a]
            for count, reason in (
                (rest, REASON_NO_RECIPIENT),
                (self.balance_cut[a], REASON_BALANCE),
                (self.mix_cut[a], REASON_MIX),
            ):
                if count > 0:
                    unplaced.append(Unplaced(node.key, count, reason))
        return Plan(
            day=self.day,
            keys=tuple(node.key for node in nodes),
            senders=senders,
            recipients=recipients,
            clusters=clusters,
            send_at=moments,
            unplaced=unplaced,
        )


def check_plan(
    nodes: Sequence[Node], plan: Plan, recent_pairs: Iterable[tuple[str, str]]
) -> list[str]:
    """Every rule the plan breaks, as sentences (empty: none). Used by the benchmark and by
    operators; the tests check the same rules on their own."""
    problems: list[str] = []
    n = len(nodes)
    index = {node.key: i for i, node in enumerate(nodes)}
    if len(index) != n or plan.keys != tuple(node.key for node in nodes):
        return ["the plan is not for these mailboxes"]
    recent: set[int] = set()
    for first, second in recent_pairs:
        a, b = index.get(first), index.get(second)
        if a is not None and b is not None:
            recent.add(a * n + b if a < b else b * n + a)
    cluster = [CLUSTERS.index(node.cluster) for node in nodes]
    sent = [0] * n
    got = [0] * n
    to_seeds = [0] * n
    from_seeds = [0] * n
    today: set[int] = set()
    outs: list[list[int]] = [[] for _ in range(n)]
    allowed_with = {_H: (_H, _S), _N: (_N, _S), _R: (_R,), _Q: (), _S: (_H, _N)}
    for a, b in zip(plan.senders, plan.recipients, strict=True):
        na, nb = nodes[a], nodes[b]
        code = a * n + b if a < b else b * n + a
        if cluster[b] not in allowed_with[cluster[a]]:
            problems.append(f"cluster: {na.key} ({na.cluster}) -> {nb.key} ({nb.cluster})")
        if na.domain == nb.domain or na.workspace == nb.workspace or a == b:
            problems.append(f"same domain or workspace: {na.key} -> {nb.key}")
        if code in recent:
            problems.append(f"recent pair: {na.key} -> {nb.key}")
        if code in today:
            problems.append(f"pair twice today: {na.key} -> {nb.key}")
        today.add(code)
        sent[a] += 1
        got[b] += 1
        outs[a].append(b)
        if cluster[b] == _S:
            to_seeds[a] += 1
        if cluster[a] == _S:
            from_seeds[b] += 1
    reported = [0] * n
    for item in plan.unplaced:
        reported[index[item.sender]] += item.count
    for i, node in enumerate(nodes):
        if sent[i] > node.volume:
            problems.append(f"{node.key} sends {sent[i]} > {node.volume}")
        if got[i] > node.capacity:
            problems.append(f"{node.key} receives {got[i]} > {node.capacity}")
        if sent[i] + reported[i] != node.volume:
            problems.append(f"{node.key}: {node.volume - sent[i]} unplaced, {reported[i]} reported")
        if cluster[i] != _S and not (4 * sent[i] <= 5 * got[i] <= 6 * sent[i]):
            problems.append(f"balance: {node.key} sends {sent[i]}, receives {got[i]}")
    problems.extend(_check_mix(nodes, cluster, outs, recent))
    problems.extend(_check_seeds(nodes, cluster, plan, recent, sent, to_seeds, from_seeds))
    return problems


def _receivable(node: Node) -> bool:
    if node.cluster == SEED:
        return node.capacity >= 1
    return node.cluster != QUARANTINE and node.capacity >= 1 and node.volume >= 1


def _pair_ok(nodes: Sequence[Node], recent: set[int], a: int, b: int) -> bool:
    n = len(nodes)
    na, nb = nodes[a], nodes[b]
    return (
        a != b
        and na.domain != nb.domain
        and na.workspace != nb.workspace
        and (a * n + b if a < b else b * n + a) not in recent
    )


def _check_mix(
    nodes: Sequence[Node], cluster: list[int], outs: list[list[int]], recent: set[int]
) -> list[str]:
    problems: list[str] = []
    by_cluster: dict[int, list[int]] = {}
    for i, node in enumerate(nodes):
        if _receivable(node):
            by_cluster.setdefault(cluster[i], []).append(i)
    heard: list[set[int]] = [set() for _ in nodes]
    for a, targets in enumerate(outs):
        for b in targets:
            heard[b].add(a)
    for x, targets in enumerate(outs):
        if cluster[x] == _S or len(targets) < 2:
            continue
        providers = {nodes[b].provider for b in targets}
        if len(providers) > 1:
            continue
        (provider,) = providers
        pool = list(by_cluster.get(cluster[x], []))
        if cluster[x] in (_H, _N):
            pool += by_cluster.get(_S, [])
        if any(
            nodes[b].provider != provider and b not in heard[x] and _pair_ok(nodes, recent, x, b)
            for b in pool
        ):
            problems.append(f"provider mix: {nodes[x].key} writes only to {provider}")
    return problems


def _check_seeds(
    nodes: Sequence[Node],
    cluster: list[int],
    plan: Plan,
    recent: set[int],
    sent: list[int],
    to_seeds: list[int],
    from_seeds: list[int],
) -> list[str]:
    """If a seed exchanges mail with a healthy mailbox in one direction, every new mailbox it
    may pair with that sends today already has seed mail in that direction (receiving: at
    least one message from a seed; sending: at least one message to a seed, or one from
    one)."""
    problems: list[str] = []
    to_healthy: set[int] = set()
    from_healthy: set[int] = set()
    for a, b in zip(plan.senders, plan.recipients, strict=True):
        if cluster[a] == _S and cluster[b] == _H:
            to_healthy.add(a)
        elif cluster[b] == _S and cluster[a] == _H:
            from_healthy.add(b)
    new = [m for m in range(len(nodes)) if cluster[m] == _N and sent[m] >= 1]
    for s in sorted(to_healthy):
        for m in new:
            if nodes[m].capacity >= 1 and _pair_ok(nodes, recent, s, m) and from_seeds[m] == 0:
                problems.append(f"seed {nodes[s].key} wrote to healthy before new {nodes[m].key}")
    for s in sorted(from_healthy):
        for m in new:
            if _pair_ok(nodes, recent, s, m) and to_seeds[m] == 0 and from_seeds[m] == 0:
                problems.append(f"seed {nodes[s].key} heard from healthy before new {nodes[m].key}")
    return problems
