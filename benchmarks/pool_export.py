"""Pool map export benchmark: the full map for 100,000 tenants, against a naive loop of one
HSET per tenant without pipelining, in the same run; plus the Redis calls the KumoMTA policy
makes for 10,000 messages across 100 tenants with memoize on. Run with `make bench`."""

import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.support import fresh_database  # noqa: E402

TENANTS = 100_000


def main() -> None:
    fresh_database("trustgate_bench_pools")
    from django.db import connection

    from accounts.models import User
    from accounts.services import workspace_create
    from reputation.core.pool_map import key, kumo_redis, pool_map_export

    owner = User.objects.create_user(email="bench@bench.test")
    workspace = workspace_create(owner=owner, name="Bench")
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO sending_sendingdomain (workspace_id, name, public_id, status, "
            "status_reason, status_changed_at, ownership_token, provider, dns_results, "
            "created_at, trust_score, tier, score_provisional, scoring_version, score_metrics) "
            "SELECT %s, 'bulk' || i || '.example.com', 'dom_bulk' || i, 'verified', '', now(), "
            "'t', 'unknown', '[]', now(), 80, "
            "(ARRAY['premium','standard','rehab','quarantine'])[1 + i %% 4], false, 1, '{}' "
            "FROM generate_series(1, %s) i",
            [workspace.pk, TENANTS],
        )
    client = kumo_redis()
    for name in client.scan_iter("bench:kumo:*"):
        client.delete(name)

    pool_map_export()  # warm-up (connections, code paths)
    runs = []
    for _ in range(3):
        started = time.perf_counter()
        export = pool_map_export()
        runs.append(time.perf_counter() - started)
    fast = min(runs)
    assert client.hlen(key("tenant_pool")) == TENANTS
    print(
        f"full export of {export.tenants:,} tenants (temp keys + pipelined HSET + atomic "
        f"RENAME): {fast:.3f} s (best of 3)"
    )

    tenants = [(f"dom_bulk{i}", "standard") for i in range(1, TENANTS + 1)]
    started = time.perf_counter()
    for public_id, pool in tenants:
        client.hset("bench:kumo:naive_tenant_pool", public_id, pool)
    naive = time.perf_counter() - started
    client.delete("bench:kumo:naive_tenant_pool")
    print(f"naive loop, one HSET per tenant, no pipelining: {naive:.3f} s")
    print(f"ratio: {naive / fast:.1f}x faster")
    print(f"target (< 1 s and >= 20x): {'met' if fast < 1 and naive / fast >= 20 else 'NOT met'}")

    try:
        from tests.kumomta.kumo_standin import redis_calls_for
    except ImportError:
        print("policy Redis calls: the KumoMTA stand-in is not installed here")
    else:
        calls = redis_calls_for(10_000, 100)
        print(
            f"KumoMTA policy Redis calls for 10,000 messages across 100 tenants (memoize on): "
            f"{calls} (per tenant per TTL: one pool lookup and one DKIM key; without memoize "
            "about 4 per message)"
        )
    for name in client.scan_iter("bench:kumo:*"):
        client.delete(name)


if __name__ == "__main__":
    main()
