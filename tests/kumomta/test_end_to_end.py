"""The product and the policy agree: MTA records move a tenant's tier, the export puts it in
Redis, and the policy (in the stand-in) routes the tenant's next queue to the new pool."""

import os

import pytest

from reputation.core.pool_map import pool_map_export
from reputation.models import EgressSource, Pool, PoolMembership
from tests.kumomta.kumo_standin import KumoStandin, delete_prefix, policy_env, to_python
from tests.reputation.records import traffic


@pytest.mark.django_db
def test_bad_traffic_moves_the_tenant_to_rehab_and_the_policy_follows(
    post, verified_domain, settings, django_capture_on_commit_callbacks
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
    pool_map_export()
    standin = KumoStandin(env=policy_env(os.environ["REDIS_URL"], prefix))
    try:
        standin.load_policy()
        standin.start()

        def routed() -> str:
            config = standin.fire(
                "get_queue_config", "gmail.com", verified_domain.public_id, None, None
            )
            return to_python(config)["egress_pool"]

        assert routed() == "standard"
        post(traffic(verified_domain, 100, bounces=10))  # 10 % bounces: score 0, rehab
        verified_domain.refresh_from_db()
        assert verified_domain.tier == "rehab"
        assert client.hget(f"{prefix}tenant_pool", verified_domain.public_id) == b"rehab"
        assert routed() == "standard"  # memoized until the TTL passes
        standin.clock.advance(6)
        assert routed() == "rehab"
        pool = to_python(standin.fire("get_egress_pool", "rehab"))
        assert [e["name"] for e in to_python(pool["entries"])] == ["ip-1"]
    finally:
        standin.close()
        delete_prefix(client, prefix)
