"""Daily warm-up pairing benchmark: `plan_day` for 100,000 enrolled mailboxes (5 % rehab, 20 %
new, 75 % healthy, 200 golden seeds; about 3 million sends from the ramp) with the pairs of the
two previous days as history, timed, its peak memory read from the planning process's maximum
RSS, the result checked against every rule; against a naive planner that picks random
recipients and retries while a rule fails, in the same run. Pure: no database. Run with
`make bench` (or `python benchmarks/warming_plan.py`)."""

from __future__ import annotations

import os
import pickle
import random
import resource
import subprocess
import sys
import tempfile
import time
from array import array
from collections.abc import Iterable, Iterator
from datetime import date, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from warming.pairing import (  # noqa: E402
    CLUSTERS,
    Node,
    Plan,
    check_plan,
    plan_day,
    sender_times,
)
from warming.schedule import MailboxWarming, today_volume  # noqa: E402

MAILBOXES = int(os.environ.get("BENCH_MAILBOXES", 100_000))
SEEDS = 200
SEED_BUDGET = 150  # messages a seed may send, and receive, a day
DAY = date(2026, 12, 2)
HISTORY_DAYS = 2
NAIVE_SLICE = int(os.environ.get("BENCH_NAIVE_SLICE", 10_000))
NAIVE_TRIES = 200  # retries per send before the naive planner gives up on it
NAIVE_TIMEOUT = 600
TARGET_SECONDS = 60
TARGET_BYTES = 2 * 1024**3


def network(count: int, *, seed: int = 1) -> list[Node]:
    """Workspaces of 1-5 domains with 1-10 mailboxes each (most small), providers mixed,
    today's volume from the ramp for a spread of start dates."""
    rng = random.Random(seed)
    nodes: list[Node] = []
    workspace = 0
    while len(nodes) < count:
        workspace += 1
        for d in range(rng.choice((1, 1, 1, 2, 2, 3, 4, 5))):
            domain = f"w{workspace}-{d}.example"
            for m in range(min(rng.choice((1, 1, 2, 2, 3, 4, 5, 10)), count - len(nodes))):
                cluster = rng.choices(("healthy", "new", "rehab"), (75, 20, 5))[0]
                if cluster == "new":
                    started = DAY - timedelta(days=rng.randint(0, 13))
                else:
                    started = DAY - timedelta(days=rng.randint(14, 200))
                key = f"mb{len(nodes)}"
                warming = MailboxWarming(
                    key=key,
                    started_on=started,
                    target=rng.choice((30, 40, 40, 50)),
                    daily_limit=rng.choice((200, 300, 400, 500)),
                    prewarmed=rng.random() < 0.1,
                )
                nodes.append(
                    Node(
                        key=key,
                        workspace=f"w{workspace}",
                        domain=domain,
                        provider=rng.choices(("google", "microsoft", "other"), (5, 3, 2))[0],
                        cluster=cluster,
                        sends=today_volume(warming, DAY).volume,
                    )
                )
                del m
    for s in range(SEEDS):
        nodes.append(
            Node(
                key=f"seed{s}",
                workspace="operator",
                domain=f"seed{s}.{'gmail' if s % 2 else 'outlook'}.example",
                provider="google" if s % 2 else "microsoft",
                cluster="seed",
                seed_budget=SEED_BUDGET,
            )
        )
    return nodes


def max_rss() -> int:
    """This process's peak resident set size, in bytes (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def child_history(path: str) -> None:
    """Plan the previous days and keep their pairs (indices) for the measured run."""
    nodes = network(MAILBOXES)
    pairs: list[tuple[array[int], array[int]]] = []
    recent: list[tuple[str, str]] = []
    for back in range(HISTORY_DAYS, 0, -1):
        plan = plan_day(
            nodes, recent_pairs=recent, seed=back, day=DAY - timedelta(days=back), with_times=False
        )
        pairs.append((plan.senders, plan.recipients))
        recent = [pair for kept in pairs for pair in _keyed(plan.keys, *kept)]
    with open(path, "wb") as out:
        pickle.dump(pairs, out)


def _keyed(
    keys: tuple[str, ...], senders: array[int], recipients: array[int]
) -> Iterator[tuple[str, str]]:
    for a, b in zip(senders, recipients, strict=True):
        yield keys[a], keys[b]


def child_plan(history: str, result: str) -> None:
    """The measured run: today's plan with the history, timed, and the process's peak RSS."""
    nodes = network(MAILBOXES)
    with open(history, "rb") as source:
        pairs = pickle.load(source)
    keys = tuple(node.key for node in nodes)
    before = max_rss()
    started = time.perf_counter()
    recent = (pair for senders, recipients in pairs for pair in _keyed(keys, senders, recipients))
    plan = plan_day(nodes, recent_pairs=recent, seed=7, day=DAY)
    seconds = time.perf_counter() - started
    after = max_rss()
    with open(result, "wb") as out:
        pickle.dump((seconds, before, after, plan, pairs), out)


def naive_plan(
    nodes: list[Node], recent_pairs: Iterable[tuple[str, str]], seed: int
) -> tuple[int, int, int]:
    """Rejection sampling: for each send, a random mailbox of the clusters the sender may write
    to, retried while a rule fails (same domain or workspace, recent or repeated pair, recipient
    full, the sender's last send to the one provider of all its others); then the same send
    times as the planner. No seed priority and no balance (it cannot see them coming): a lower
    bound on the work. Returns (messages placed, sends given up, customer mailboxes out of
    balance)."""
    rng = random.Random(seed)
    n = len(nodes)
    index = {node.key: i for i, node in enumerate(nodes)}
    recent: set[int] = set()
    for first, second in recent_pairs:
        a, b = index[first], index[second]
        recent.add(a * n + b if a < b else b * n + a)
    pools: dict[str, list[int]] = {}
    for i, node in enumerate(nodes):
        pools.setdefault(node.cluster, []).append(i)
    allowed = {
        "healthy": pools.get("healthy", []) + pools.get("seed", []),
        "new": pools.get("new", []) + pools.get("seed", []),
        "rehab": pools.get("rehab", []),
        "seed": pools.get("new", []) + pools.get("healthy", []),
    }
    capacity = [node.capacity for node in nodes]
    received = [0] * n
    today: set[int] = set()
    placed = given_up = 0
    sent = [0] * n
    for a, sender in enumerate(nodes):
        pool = allowed.get(sender.cluster, [])
        providers: set[str] = set()
        count = 0
        for left in range(sender.volume, 0, -1):
            for _ in range(NAIVE_TRIES):
                b = pool[rng.randrange(len(pool))]
                other = nodes[b]
                code = a * n + b if a < b else b * n + a
                if (
                    a == b
                    or other.domain == sender.domain
                    or other.workspace == sender.workspace
                    or received[b] >= capacity[b]
                    or code in recent
                    or code in today
                    or (left == 1 and count and providers == {other.provider})
                ):
                    continue
                today.add(code)
                received[b] += 1
                providers.add(other.provider)
                count += 1
                break
            else:
                given_up += 1
        if count:
            sender_times(sender, count, DAY, seed=seed)
        placed += count
        sent[a] = count
    unbalanced = sum(
        1
        for i, node in enumerate(nodes)
        if node.cluster != "seed" and not 4 * sent[i] <= 5 * received[i] <= 6 * sent[i]
    )
    return placed, given_up, unbalanced


def child_naive(history: str, result: str, size: int) -> None:
    nodes = network(size)
    pairs: list[tuple[array[int], array[int]]] = []
    if size == MAILBOXES:
        with open(history, "rb") as source:
            pairs = pickle.load(source)
    keys = tuple(node.key for node in nodes)
    started = time.perf_counter()
    recent = (pair for senders, recipients in pairs for pair in _keyed(keys, senders, recipients))
    placed, given_up, unbalanced = naive_plan(nodes, recent, seed=3)
    seconds = time.perf_counter() - started
    wanted = sum(node.volume for node in nodes)
    with open(result, "wb") as out:
        pickle.dump((seconds, placed, given_up, unbalanced, wanted, max_rss()), out)


def main() -> None:
    me = str(Path(__file__).resolve())
    with tempfile.TemporaryDirectory() as folder:
        history = os.path.join(folder, "history.pickle")
        result = os.path.join(folder, "result.pickle")
        subprocess.run([sys.executable, me, "--history", history], check=True)
        subprocess.run([sys.executable, me, "--plan", history, result], check=True)
        with open(result, "rb") as source:
            seconds, before, after, plan, pairs = pickle.load(source)
    assert isinstance(plan, Plan)
    nodes = network(MAILBOXES)
    volume = sum(node.volume for node in nodes if node.cluster != "seed")
    by_cluster = {name: sum(1 for node in nodes if node.cluster == name) for name in CLUSTERS}
    print(
        f"network: {len(nodes):,} mailboxes ({by_cluster['healthy']:,} healthy, "
        f"{by_cluster['new']:,} new, {by_cluster['rehab']:,} rehab, {by_cluster['seed']} golden "
        f"seeds of {SEED_BUDGET} a day), {volume:,} customer sends wanted today, history "
        f"{sum(len(s) for s, _ in pairs):,} pairs of {HISTORY_DAYS} days"
    )
    reasons: dict[str, int] = {}
    for item in plan.unplaced:
        reasons[item.reason] = reasons.get(item.reason, 0) + item.count
    print(
        f"plan_day: {len(plan):,} messages placed with send times in {seconds:.1f} s; "
        f"unplaced: {', '.join(f'{n:,} {r}' for r, n in sorted(reasons.items())) or 'none'}"
    )
    print(
        f"memory: peak RSS of the planning process {after / 2**20:,.0f} MiB "
        f"({before / 2**20:,.0f} MiB before plan_day: network and history)"
    )
    keys = plan.keys
    started = time.perf_counter()
    recent = [pair for s, r in pairs for pair in _keyed(keys, s, r)]
    problems = check_plan(nodes, plan, recent)
    print(
        f"rule check ({time.perf_counter() - started:.0f} s): "
        + ("every rule kept" if not problems else f"{len(problems)} BROKEN, e.g. {problems[:3]}")
    )

    # Naive baseline: on the whole network with the same history if it finishes within ten
    # minutes; else on a slice without history, scaled by sends (rejection sampling gets no
    # faster on the whole network: its retries depend on how full the pools are).
    total = volume + SEEDS * SEED_BUDGET
    with tempfile.TemporaryDirectory() as folder:
        history = os.path.join(folder, "history.pickle")
        result = os.path.join(folder, "naive.pickle")
        with open(history, "wb") as out:
            pickle.dump(pairs, out)
        try:
            subprocess.run(
                [sys.executable, me, "--naive", history, result, str(MAILBOXES)],
                check=True,
                timeout=NAIVE_TIMEOUT,
            )
            where = "measured on the same network and history"
            scale = 1.0
        except subprocess.TimeoutExpired:
            subprocess.run(
                [sys.executable, me, "--naive", history, result, str(NAIVE_SLICE)], check=True
            )
            where = (
                f"did not finish in {NAIVE_TIMEOUT // 60} minutes: measured on a "
                f"{NAIVE_SLICE:,}-mailbox slice without history and extrapolated by sends"
            )
            scale = -1.0
        with open(result, "rb") as source:
            naive, placed, given_up, unbalanced, wanted, naive_rss = pickle.load(source)
    if scale < 0:
        scale = total / wanted
    estimate = naive * scale
    print(
        f"naive (rejection sampling, {where}): {estimate:.1f} s for {wanted:,} sends "
        f"({placed:,} placed, {given_up:,} given up after {NAIVE_TRIES} tries; no seed priority, "
        f"{unbalanced:,} mailboxes out of balance), peak RSS {naive_rss / 2**20:,.0f} MiB"
    )
    print(f"ratio: {estimate / seconds:.1f}x faster ({total / seconds:,.0f} sends/s)")
    met = seconds < TARGET_SECONDS and after < TARGET_BYTES and not problems
    print(f"target (< {TARGET_SECONDS} s, < 2 GiB, every rule kept): {'met' if met else 'NOT met'}")


if __name__ == "__main__":
    if sys.argv[1:2] == ["--history"]:
        child_history(sys.argv[2])
    elif sys.argv[1:2] == ["--plan"]:
        child_plan(sys.argv[2], sys.argv[3])
    elif sys.argv[1:2] == ["--naive"]:
        child_naive(sys.argv[2], sys.argv[3], int(sys.argv[4]))
    else:
        main()
