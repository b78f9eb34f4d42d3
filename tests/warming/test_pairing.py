"""The daily pairing planner (pure: no database). The rules are checked here on their own, not
with the module's `check_plan` (which is only checked to agree)."""

import random
from collections import Counter
from datetime import date, time, timedelta, timezone

from hypothesis import given, settings
from hypothesis import strategies as st

from warming.pairing import (
    REASON_BALANCE,
    REASON_MIX,
    REASON_NO_RECIPIENT,
    REASON_QUARANTINE,
    Node,
    Plan,
    check_plan,
    plan_day,
)

DAY = date(2026, 12, 1)
PROVIDERS = ("google", "microsoft", "other")
CUSTOMER_CLUSTERS = ("healthy", "new", "rehab", "quarantine")
MAY_WRITE_TO = {
    "healthy": {"healthy", "seed"},
    "new": {"new", "seed"},
    "rehab": {"rehab"},
    "quarantine": set(),
    "seed": {"healthy", "new"},
}


def pair(a, b):
    return (a, b) if a < b else (b, a)


def can_receive(node):
    if node.cluster == "seed":
        return node.seed_budget >= 1
    return node.cluster != "quarantine" and node.capacity >= 1 and node.sends >= 1


def may_pair(a, b, recent):
    return (
        a.key != b.key
        and a.domain != b.domain
        and a.workspace != b.workspace
        and pair(a.key, b.key) not in recent
    )


def assert_rules(nodes, plan, recent_pairs):
    """Every rule of the planner, checked from the plan's rows and the input only."""
    by_key = {node.key: node for node in nodes}
    recent = {pair(a, b) for a, b in recent_pairs}
    rows = list(plan.rows())
    sent, received = Counter(), Counter()
    to_seeds, from_seeds = Counter(), Counter()
    recipients = {node.key: [] for node in nodes}
    today = set()
    for row in rows:
        a, b = by_key[row.sender], by_key[row.recipient]
        # Isolation: rehab only with rehab, quarantine never, seeds only with healthy and new.
        assert b.cluster in MAY_WRITE_TO[a.cluster], (a.cluster, b.cluster)
        assert row.cluster == ("seed" if "seed" in (a.cluster, b.cluster) else a.cluster)
        assert a.domain != b.domain and a.workspace != b.workspace
        assert pair(a.key, b.key) not in recent
        assert pair(a.key, b.key) not in today  # one message per (unordered) pair a day
        today.add(pair(a.key, b.key))
        sent[a.key] += 1
        received[b.key] += 1
        recipients[a.key].append(b)
        if b.cluster == "seed":
            to_seeds[a.key] += 1
        if a.cluster == "seed":
            from_seeds[b.key] += 1
    reported = Counter()
    for item in plan.unplaced:
        assert item.count > 0
        reported[item.sender] += item.count
    for node in nodes:
        budget = node.seed_budget if node.cluster == "seed" else node.sends
        capacity = (
            node.seed_budget
            if node.cluster == "seed"
            else (node.sends if node.receive_capacity is None else node.receive_capacity)
        )
        assert sent[node.key] <= budget
        assert received[node.key] <= max(0, capacity)
        # Every send is either placed or reported.
        assert sent[node.key] + reported[node.key] == max(0, budget)
        if node.cluster == "quarantine":
            assert sent[node.key] == received[node.key] == 0
        if node.cluster != "seed":
            # Balance: 0.8 * sent <= received <= 1.2 * sent, for every customer mailbox.
            assert 4 * sent[node.key] <= 5 * received[node.key] <= 6 * sent[node.key], node
        # Provider mix: two or more sends are not all to one provider when the mailbox may
        # write to another provider (its cluster, plus seeds for healthy and new; mailboxes that
        # can receive today; not its domain or workspace; not a recent pair; not one that writes
        # to it today).
        providers = {b.provider for b in recipients[node.key]}
        if node.cluster != "seed" and sent[node.key] >= 2 and len(providers) == 1:
            (only,) = providers
            assert not any(
                b.provider != only
                and b.cluster in MAY_WRITE_TO[node.cluster]
                and can_receive(b)
                and may_pair(node, b, recent)
                and pair(node.key, b.key) not in today
                for b in nodes
            ), node
    # Seeds serve new mailboxes first, in each direction.
    new = [m for m in nodes if m.cluster == "new" and sent[m.key] >= 1]
    for row in rows:
        a, b = by_key[row.sender], by_key[row.recipient]
        if a.cluster == "seed" and b.cluster == "healthy":
            for m in new:
                if m.capacity >= 1 and may_pair(a, m, recent):
                    assert from_seeds[m.key] >= 1, (a.key, b.key, m.key)
        if b.cluster == "seed" and a.cluster == "healthy":
            for m in new:
                if may_pair(b, m, recent):
                    assert to_seeds[m.key] + from_seeds[m.key] >= 1, (a.key, b.key, m.key)
    assert check_plan(nodes, plan, recent_pairs) == []


@st.composite
def networks(draw):
    workspaces = draw(st.integers(1, 7))
    nodes = []
    for w in range(workspaces):
        for d in range(draw(st.integers(1, 3))):
            for m in range(draw(st.integers(1, 4))):
                cluster = draw(st.sampled_from(CUSTOMER_CLUSTERS))
                sends = draw(st.integers(0, 8))
                capacity = draw(st.one_of(st.none(), st.integers(0, 10)))
                nodes.append(
                    Node(
                        key=f"w{w}d{d}m{m}",
                        workspace=f"w{w}",
                        domain=f"w{w}d{d}.test",
                        provider=draw(st.sampled_from(PROVIDERS)),
                        cluster=cluster,
                        sends=sends,
                        receive_capacity=capacity,
                    )
                )
    for s in range(draw(st.integers(0, 3))):
        nodes.append(
            Node(
                key=f"seed{s}",
                workspace="operator",
                domain=f"seed{s}.test",
                provider=draw(st.sampled_from(PROVIDERS[:2])),
                cluster="seed",
                seed_budget=draw(st.integers(0, 6)),
            )
        )
    keys = [node.key for node in nodes]
    recent = draw(
        st.lists(st.tuples(st.sampled_from(keys), st.sampled_from(keys)), max_size=len(keys) * 2)
    )
    return nodes, recent


@settings(max_examples=300, deadline=None)
@given(network=networks(), seed=st.integers(0, 2**32))
def test_it_keeps_every_rule(network, seed):
    nodes, recent = network
    plan = plan_day(nodes, recent_pairs=recent, seed=seed, day=DAY)
    assert_rules(nodes, plan, recent)


@settings(max_examples=60, deadline=None)
@given(network=networks(), seed=st.integers(0, 2**32))
def test_it_gives_the_same_plan_for_the_same_seed(network, seed):
    nodes, recent = network
    first = plan_day(nodes, recent_pairs=recent, seed=seed, day=DAY)
    second = plan_day(nodes, recent_pairs=list(recent), seed=seed, day=DAY)
    assert list(first.rows()) == list(second.rows())
    assert first.unplaced == second.unplaced


def mailbox(key, cluster="healthy", *, provider="google", sends=5, workspace=None, **more):
    return Node(
        key=key,
        workspace=workspace or f"ws-{key}",
        domain=f"{key}.test",
        provider=provider,
        cluster=cluster,
        sends=sends,
        **more,
    )


def seed_box(key, budget, provider="google"):
    return Node(key, "operator", f"{key}.test", provider, "seed", seed_budget=budget)


def network(count, *, seed=0, clusters=(70, 20, 5, 5), sends=(1, 30)):
    rng = random.Random(seed)
    nodes = []
    workspace = 0
    while len(nodes) < count:
        workspace += 1
        for d in range(rng.randint(1, 5)):
            for m in range(rng.randint(1, 4)):
                nodes.append(
                    Node(
                        key=f"w{workspace}d{d}m{m}",
                        workspace=f"w{workspace}",
                        domain=f"w{workspace}d{d}.test",
                        provider=rng.choices(PROVIDERS, (5, 3, 2))[0],
                        cluster=rng.choices(CUSTOMER_CLUSTERS, clusters)[0],
                        sends=rng.randint(*sends),
                    )
                )
    return nodes


def test_it_keeps_rehab_among_rehab_and_quarantine_out():
    nodes = [
        *(mailbox(f"r{i}", "rehab", provider=PROVIDERS[i % 3], sends=2) for i in range(30)),
        *(mailbox(f"h{i}", "healthy", provider=PROVIDERS[i % 3], sends=2) for i in range(30)),
        mailbox("q", "quarantine", sends=7),
    ]
    plan = plan_day(nodes, recent_pairs=[], seed=1, day=DAY)
    assert_rules(nodes, plan, [])
    for row in plan.rows():
        assert row.sender[0] == row.recipient[0]  # r with r, h with h
        assert row.cluster == {"r": "rehab", "h": "healthy"}[row.sender[0]]
    assert {row.cluster for row in plan.rows()} == {"rehab", "healthy"}
    assert ("q", 7, REASON_QUARANTINE) in [(u.sender, u.count, u.reason) for u in plan.unplaced]
    assert "q" not in plan.sent() and "q" not in plan.received()


def test_it_never_pairs_a_workspace_with_itself():
    nodes = [mailbox(f"a{i}", workspace="one", sends=3) for i in range(4)]
    plan = plan_day(nodes, recent_pairs=[], seed=1, day=DAY)
    assert len(plan) == 0
    assert {(u.sender, u.count, u.reason) for u in plan.unplaced} == {
        (f"a{i}", 3, REASON_NO_RECIPIENT) for i in range(4)
    }


def test_it_treats_the_reverse_of_a_recent_pair_as_the_same_pair():
    nodes = [mailbox(k, sends=1, provider="google") for k in "abc"]
    recent = [("b", "a"), ("c", "b")]  # only a - c remains, once a day
    plan = plan_day(nodes, recent_pairs=recent, seed=5, day=DAY)
    pairs = {pair(r.sender, r.recipient) for r in plan.rows()}
    assert pairs <= {("a", "c")}
    assert_rules(nodes, plan, recent)


def test_it_drops_sends_that_would_break_the_balance():
    # A and B share a workspace; C is the only partner of each, one message per pair a day:
    # nobody can receive as many as it sends, so the balance rule leaves nearly all unplaced.
    nodes = [
        mailbox("a", workspace="ab", sends=4),
        mailbox("b", workspace="ab", sends=4),
        mailbox("c", sends=4),
    ]
    plan = plan_day(nodes, recent_pairs=[], seed=2, day=DAY)
    assert_rules(nodes, plan, [])
    assert plan.unplaced_total() == 12 - len(plan)
    reasons = {u.reason for u in plan.unplaced}
    assert reasons <= {REASON_BALANCE, REASON_NO_RECIPIENT, REASON_MIX}


def test_it_gives_seed_mail_to_new_mailboxes_first():
    new = [mailbox(f"n{i}", "new", sends=2, provider=PROVIDERS[i % 3]) for i in range(6)]
    healthy = [mailbox(f"h{i}", "healthy", sends=3, provider=PROVIDERS[i % 3]) for i in range(6)]
    seeds = [seed_box("s0", 3), seed_box("s1", 3, "microsoft")]
    plan = plan_day([*new, *healthy, *seeds], recent_pairs=[], seed=3, day=DAY)
    assert_rules([*new, *healthy, *seeds], plan, [])
    seed_rows = [r for r in plan.rows() if r.cluster == "seed"]
    assert seed_rows
    assert all(r.recipient.startswith("n") for r in seed_rows if r.sender.startswith("s"))
    assert all(r.sender.startswith("n") for r in seed_rows if r.recipient.startswith("s"))
    # Six new mailboxes, budget 3 + 3: each new mailbox gets one message from a seed.
    assert Counter(r.recipient for r in seed_rows if r.sender.startswith("s")) == Counter(
        {f"n{i}": 1 for i in range(6)}
    )


def test_it_gives_seed_mail_to_healthy_mailboxes_once_new_ones_are_full():
    new = [mailbox(f"n{i}", "new", sends=4, provider=PROVIDERS[i % 3]) for i in range(12)]
    healthy = [mailbox(f"h{i}", "healthy", sends=4, provider=PROVIDERS[i % 3]) for i in range(12)]
    nodes = [*new, *healthy, seed_box("s0", 15), seed_box("s1", 15, "microsoft")]
    plan = plan_day(nodes, recent_pairs=[], seed=4, day=DAY)
    assert_rules(nodes, plan, [])  # includes: healthy only once no new mailbox can take more
    from_seeds = Counter(r.recipient for r in plan.rows() if r.sender.startswith("s"))
    # Each new mailbox can take one message from each seed (one per pair a day): 24 of the 30.
    assert all(from_seeds[f"n{i}"] == 2 for i in range(12) if f"n{i}" in plan.sent())
    assert sum(count for key, count in from_seeds.items() if key.startswith("h")) >= 1


def test_it_leaves_room_for_mail_to_seeds_when_seeds_are_the_only_partners():
    # Four mailboxes of one workspace (no peer partners) and four seeds: each mailbox can
    # exchange with at most 4 seeds, one message per pair, so about 2 sent and 2 received.
    nodes = [
        Node(f"m{i}", "1", "1" if i < 3 else "2", "google", "healthy", sends=6) for i in range(4)
    ]
    nodes += [
        Node(f"s{i}", f"seed-{i}", "seeds.example", provider, "seed", seed_budget=10)
        for i, provider in enumerate(["google", "microsoft", "google", "other"])
    ]
    plan = plan_day(nodes, recent_pairs=set(), seed=1, day=DAY)
    assert_rules(nodes, plan, [])
    assert len(plan) >= 12  # of the 16 possible
    sent, received = plan.sent(), plan.received()
    for i in range(4):
        assert sent.get(f"m{i}", 0) >= 1 and received.get(f"m{i}", 0) >= 1


def test_it_mixes_providers():
    nodes = [mailbox(f"g{i}", provider="google", sends=6) for i in range(10)] + [
        mailbox(f"m{i}", provider="microsoft", sends=6) for i in range(3)
    ]
    for seed in range(20):
        plan = plan_day(nodes, recent_pairs=[], seed=seed, day=DAY)
        assert_rules(nodes, plan, [])
        by_sender = {}
        for row in plan.rows():
            by_sender.setdefault(row.sender, set()).add(row.recipient[0])
        assert all(len(kinds) == 2 for kinds in by_sender.values() if len(kinds) >= 2)
        assert len(plan) >= 60  # of 78


def test_it_spreads_sends_over_the_working_day_in_the_senders_time_zone():
    tz = timezone(timedelta(hours=-5))
    nodes = [
        mailbox(f"a{i}", sends=8, window=(time(8), time(12)), tz=tz, provider=PROVIDERS[i % 3])
        for i in range(12)
    ]
    plan = plan_day(nodes, recent_pairs=[], seed=6, day=DAY)
    moments = {}
    for row in plan.rows():
        assert row.send_at.tzinfo == tz
        assert time(8) <= row.send_at.time() <= time(12) and row.send_at.date() == DAY
        moments.setdefault(row.sender, []).append(row.send_at)
    for times in moments.values():
        assert times == sorted(times) and len(set(times)) == len(times)
    assert plan_day(nodes, recent_pairs=[], seed=6, day=DAY, with_times=False).send_at == [
        None
    ] * len(plan)


def test_it_pairs_a_large_network_with_few_sends_left_over():
    nodes = network(3000, seed=7)
    first = plan_day(nodes, recent_pairs=[], seed=7, day=DAY)
    recent = list(first.pairs())
    plan = plan_day(nodes, recent_pairs=recent, seed=8, day=DAY + timedelta(days=1))
    assert check_plan(nodes, plan, recent) == []
    volume = sum(n.sends for n in nodes if n.cluster != "quarantine")
    left = Counter()
    for item in plan.unplaced:
        left[item.reason] += item.count
    assert left[REASON_NO_RECIPIENT] + left[REASON_BALANCE] + left[REASON_MIX] < volume * 0.02


def test_check_plan_finds_a_broken_rule():
    nodes = [mailbox(k, sends=1) for k in "ab"] + [mailbox("c", "rehab", sends=1)]
    broken = Plan(
        day=DAY,
        keys=("a", "b", "c"),
        senders=__import__("array").array("i", [0, 2]),
        recipients=__import__("array").array("i", [1, 0]),
        clusters=__import__("array").array("b", [0, 0]),
        send_at=[None, None],
        unplaced=[],
    )
    problems = check_plan(nodes, broken, recent_pairs=[("b", "a")])
    assert any(p.startswith("cluster") for p in problems)
    assert any(p.startswith("recent pair") for p in problems)
    assert any(p.startswith("balance") for p in problems)
