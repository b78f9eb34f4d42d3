"""The product and the policy agree: MTA records move a tenant's tier, the platform puts it in
Redis and bumps the nodes' config epoch, and the policy (in the stand-in) routes the tenant's
queue, already there, to the new pool at once."""

import os

import pytest

from reputation.core.pool_map import pool_map_export
from reputation.models import EgressSource, Pool, PoolMembership
from tests.kumomta.kumo_standin import (
    KumoStandin,
    ScheduledQueue,
    delete_prefix,
    policy_env,
    to_python,
)
from tests.reputation.records import traffic


@pytest.mark.django_db
def test_bad_traffic_moves_the_tenant_to_rehab_and_the_policy_follows(
    post, verified_domain, settings, loopback_server
):
    import redis

    settings.KUMO_REDIS_PREFIX = prefix = "test:e2e:kumo:"
    client = redis.Redis.from_url(os.environ["REDIS_URL"])
    for name in Pool.Name.values:
        Pool.objects.get_or_create(name=name)
    source = EgressSource.objects.create(
        name="ip-1", source_address="198.51.100.1", ehlo_domain="mta1.test"
    )
    for name in ("premium", "standard", "rehab"):
        PoolMembership.objects.create(pool=Pool.objects.get(name=name), source=source)
    verified_domain.tier = "standard"
    verified_domain.save(update_fields=["tier"])
    standin = KumoStandin(env=policy_env(os.environ["REDIS_URL"], prefix))
    # The node's admin API: the platform's bumps reach the stand-in.
    node = loopback_server()
    node.on_request = lambda method, path: (
        standin.bump_config_epoch() if path == "/api/admin/bump-config-epoch" else None
    )
    settings.KUMO_NODES = [node.url]
    pool_map_export()
    try:
        standin.load_policy()
        standin.start()
        queue = ScheduledQueue(standin, "gmail.com", verified_domain.public_id)
        assert queue.pool() == "standard"

        post(traffic(verified_domain, 100, bounces=10))  # 10 % bounces: score 0, rehab

        verified_domain.refresh_from_db()
        assert verified_domain.tier == "rehab"
        assert client.hget(f"{prefix}tenant_pool", verified_domain.public_id) == b"rehab"
        assert queue.pool() == "rehab"  # no waiting for a TTL: the epoch was bumped
        pool = to_python(standin.fire("get_egress_pool", "rehab"))
        assert [e["name"] for e in to_python(pool["entries"])] == ["ip-1"]
    finally:
        standin.close()
        delete_prefix(client, prefix)
