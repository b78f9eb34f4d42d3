"""Pools, warm-up weights and the Redis map the KumoMTA policy reads (docs/pool-map.md)."""

import re
import threading
import tomllib
from datetime import date, timedelta
from pathlib import Path

import orjson
import pytest
from django.core.management import call_command
from django.db import connection
from django.utils import timezone
from hypothesis import given
from hypothesis import strategies as st
from lupa import lua54

from reputation.core.pool_map import key, kumo_redis, policy_settings, pool_map_export
from reputation.ipwarmup import TOTAL_WEIGHT, pool_weights, warmup_share, warmup_week
from reputation.models import EgressSource, Pool, PoolMembership
from sending.services.status import domain_cooldown, domain_quarantine
from tests.kumomta.conftest import LoopbackServer

POLICY_DIR = Path(__file__).resolve().parents[2] / "kumomta" / "policy"


@pytest.fixture
def redis_map(settings):
    """A private key prefix on the real Redis for this test."""
    import uuid

    settings.KUMO_REDIS_PREFIX = f"test:{uuid.uuid4().hex[:8]}:kumo:"
    client = kumo_redis()
    yield client
    for name in client.scan_iter(f"{settings.KUMO_REDIS_PREFIX}*"):
        client.delete(name)


@pytest.mark.parametrize(
    ("days", "share"),
    [
        (0, 0.05),
        (13, 0.05),
        (14, 0.15),
        (27, 0.15),
        (28, 0.30),
        (41, 0.30),
        (42, None),
        (400, None),
    ],
)
def test_warmup_shares_by_week(days, share):
    start = date(2026, 1, 1)
    assert warmup_share(start, start + timedelta(days=days)) == share


@given(st.lists(st.integers(min_value=0, max_value=120), min_size=1, max_size=8))
def test_weights_sum_to_the_total_and_follow_the_shares(ages):
    today = date(2026, 6, 1)
    sources = [(f"ip{n}", today - timedelta(days=age)) for n, age in enumerate(ages)]
    weights = pool_weights(sources, today)
    assert set(weights) == {name for name, _ in sources}
    assert all(w >= 1 for w in weights.values())
    assert abs(sum(weights.values()) - TOTAL_WEIGHT) <= len(sources)
    warmed = [name for name, start in sources if warmup_share(start, today) is None]
    if warmed and len(warmed) < len(sources):
        for name, start in sources:
            share = warmup_share(start, today)
            if share is not None and sum(warmup_share(s, today) or 0 for _, s in sources) <= 0.9:
                assert weights[name] == round(TOTAL_WEIGHT * share)


def test_a_week_one_ip_gets_five_percent_beside_a_warmed_one():
    today = date(2026, 6, 1)
    weights = pool_weights([("old", today - timedelta(days=90)), ("new", today)], today)
    assert weights == {"new": 50, "old": 950}
    assert warmup_week(today - timedelta(days=15), today) == 3


@pytest.fixture
def pools(db):
    today = timezone.localdate()
    old = EgressSource.objects.create(
        name="ip-1",
        source_address="198.51.100.1",
        ehlo_domain="mta1.platform.test",
        warmup_started_on=today - timedelta(days=90),
    )
    new = EgressSource.objects.create(
        name="ip-2",
        source_address="198.51.100.2",
        ehlo_domain="mta2.platform.test",
        warmup_started_on=today,
    )
    spare = EgressSource.objects.create(
        name="ip-3",
        source_address="198.51.100.3",
        ehlo_domain="mta3.platform.test",
        state="standby",
    )
    for name in Pool.Name.values:
        Pool.objects.get_or_create(name=name)
    premium = Pool.objects.get(name="premium")
    PoolMembership.objects.create(pool=premium, source=old)
    PoolMembership.objects.create(pool=premium, source=new)
    PoolMembership.objects.create(pool=Pool.objects.get(name="rehab"), source=spare)
    return old, new, spare


@pytest.mark.django_db
def test_the_export_writes_the_documented_layout(pools, redis_map, verified_domain, settings):
    export = pool_map_export()
    prefix = settings.KUMO_REDIS_PREFIX
    assert redis_map.hgetall(f"{prefix}tenant_pool") == {
        verified_domain.public_id.encode(): verified_domain.tier.encode()
    }
    premium = orjson.loads(redis_map.hget(f"{prefix}pools", "premium"))
    assert premium == {"entries": [{"name": "ip-1", "weight": 950}, {"name": "ip-2", "weight": 50}]}
    assert orjson.loads(redis_map.hget(f"{prefix}pools", "quarantine")) == {"entries": []}
    assert orjson.loads(redis_map.hget(f"{prefix}sources", "ip-1")) == {
        "source_address": "198.51.100.1",
        "ehlo_domain": "mta1.platform.test",
    }
    assert redis_map.hget(f"{prefix}sources", "ip-3") is None  # standby: not routable
    assert int(redis_map.get(f"{prefix}map_version")) == export.version == 1
    assert pool_map_export().version == 2
    assert not [k for k in redis_map.scan_iter(f"{prefix}*:tmp:*")]
    policy = redis_map.hgetall(f"{prefix}settings")
    assert policy[b"pool_ttl"] == b"1 minute"
    assert policy[b"accepted_ttl"] == b"604800"
    google = orjson.loads(policy[b"shaping"])["google"]
    assert google == {
        "max_connections": 3,
        "messages_per_hour": 300,
        "mx_suffixes": [".google.com", ".googlemail.com"],
    }


@pytest.mark.django_db
def test_a_tier_change_is_one_hset_after_commit_then_an_epoch_bump(
    pools, redis_map, verified_domain, django_capture_on_commit_callbacks, settings
):
    pool_map_export()
    node = LoopbackServer()
    threading.Thread(target=node.serve_forever, args=(0.02,), daemon=True).start()
    seen_at_bump = []
    node.on_request = lambda method, path: seen_at_bump.append(
        (method, path, redis_map.hget(key("tenant_pool"), verified_domain.public_id))
    )
    settings.KUMO_NODES = [node.url + "/"]
    try:
        with django_capture_on_commit_callbacks(execute=True):
            domain_quarantine(domain=verified_domain, actor=None, reason="test")
    finally:
        node.shutdown()
        node.server_close()
    assert redis_map.hget(key("tenant_pool"), verified_domain.public_id) == b"quarantine"
    assert int(redis_map.get(key("map_version"))) == 1  # no full export needed
    # The node is told to read the map again, after the write.
    assert seen_at_bump == [("POST", "/api/admin/bump-config-epoch", b"quarantine")]


@pytest.mark.django_db
def test_cooldown_routes_to_rehab_and_retiring_removes_the_tenant_and_its_key(
    pools, redis_map, verified_domain, django_capture_on_commit_callbacks
):
    from sending.services.domains import domain_retire

    with django_capture_on_commit_callbacks(execute=True):
        domain_cooldown(domain=verified_domain, actor=None, reason="spam block")
    assert redis_map.hget(key("tenant_pool"), verified_domain.public_id) == b"rehab"
    with django_capture_on_commit_callbacks(execute=True):
        domain_retire(domain=verified_domain, actor=None)
    assert redis_map.hget(key("tenant_pool"), verified_domain.public_id) is None
    assert not redis_map.exists(key(f"dkim:{verified_domain.name}"))


@pytest.mark.django_db
def test_verification_publishes_the_dkim_key_for_the_signer(
    zone, domain, redis_map, django_capture_on_commit_callbacks
):
    from sending.services.verification import domain_verify
    from tests.conftest import publish

    publish(zone, domain)
    with django_capture_on_commit_callbacks(execute=True):
        domain_verify(domain=domain)
    stored = redis_map.hgetall(key(f"dkim:{domain.name}"))
    assert stored[b"selector"].decode() == domain.dkim_keys.get().selector
    assert stored[b"key"].startswith(b"-----BEGIN PRIVATE KEY-----")


@pytest.mark.django_db
def test_export_pool_map_prints_what_it_wrote(pools, redis_map, verified_domain, capsys):
    call_command("export_pool_map")
    out = capsys.readouterr().out
    assert "map version 1: 1 tenants" in out
    assert "pool premium: ip-1=950, ip-2=50" in out
    assert "pool quarantine: no sources" in out


def _insert_tenants(workspace_id: int, n: int, tier: str) -> None:
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO sending_sendingdomain (workspace_id, name, public_id, status, "
            "status_reason, status_changed_at, ownership_token, provider, dns_results, "
            "created_at, trust_score, tier, score_provisional, scoring_version, score_metrics) "
            "SELECT %s, 'bulk' || i || '.example.com', 'dom_bulk' || i, 'verified', '', now(), "
            "'t', 'unknown', '[]', now(), 80, %s, false, 1, '{}' FROM generate_series(1, %s) i",
            [workspace_id, tier, n],
        )


@pytest.mark.django_db(transaction=True)
def test_a_reader_never_sees_a_half_written_map(owner, redis_map, pools):
    _insert_tenants(owner.workspace_id, 100_000, "standard")
    first = pool_map_export()
    connection.cursor().execute("UPDATE sending_sendingdomain SET tier = 'premium'")
    sample = [f"dom_bulk{i}" for i in range(1, 100_001, 997)]
    seen, stop = [], threading.Event()

    def reader() -> None:
        client = kumo_redis()
        while not stop.is_set():
            pipe = client.pipeline(transaction=True)
            pipe.get(key("map_version"))
            pipe.hmget(key("tenant_pool"), sample)
            version, pools_seen = pipe.execute()
            seen.append((int(version), tuple(pools_seen)))

    thread = threading.Thread(target=reader)
    thread.start()
    try:
        second = pool_map_export()
    finally:
        stop.set()
        thread.join()
    assert second.tenants == first.tenants == 100_000
    assert len(seen) > 3
    for version, pools_seen in seen:
        assert None not in pools_seen, "a tenant went missing during the export"
        expected = b"standard" if version == first.version else b"premium"
        assert set(pools_seen) == {expected}, f"mixed map at version {version}"


# --- the policy's side of the settings -----------------------------------------------------------


def _lua_module(name: str) -> dict:
    """A data-only policy module (no require), evaluated with an empty node environment."""
    lua = lua54.LuaRuntime(unpack_returned_tuples=True, register_eval=False)
    lua.execute("os.getenv = function() return nil end")
    return _python(lua.execute((POLICY_DIR / f"{name}.lua").read_text()))


def _python(value):
    if lua54.lua_type(value) != "table":
        return value
    items = dict(value.items())
    if items and list(items) == list(range(1, len(items) + 1)):
        return [_python(v) for v in items.values()]
    return {key: _python(item) for key, item in items.items()}


def _settings_read_by_the_policy() -> set[str]:
    # Every read of the settings hash goes through store.setting('<field>', ...).
    pattern = re.compile(r"""\bsetting\s*\(?\s*['"](\w+)['"]""")
    return {
        field for path in POLICY_DIR.glob("*.lua") for field in pattern.findall(path.read_text())
    }


def test_the_export_holds_every_setting_the_policy_reads_and_no_other():
    read = _settings_read_by_the_policy()

    assert {"pool_ttl", "accepted_ttl", "shaping"} <= read
    assert set(policy_settings()) == read


def test_the_hook_url_is_never_published_to_redis():
    # The nodes take it from their environment only: whoever can write Redis must not be able
    # to point the hook's bearer token elsewhere.
    assert "hook_url" not in policy_settings()
    assert "hook_url" not in _settings_read_by_the_policy()


def test_the_policys_fallbacks_equal_what_the_platform_exports_by_default():
    fallbacks = _lua_module("defaults")
    exported = policy_settings()

    assert set(fallbacks) <= set(exported)
    assert fallbacks["pool_ttl"] == exported["pool_ttl"]
    assert fallbacks["accepted_ttl"] == int(exported["accepted_ttl"])
    assert fallbacks["shaping"] == orjson.loads(exported["shaping"])


def test_the_node_settings_default_to_the_platforms_values(settings):
    node = _lua_module("node_config")

    assert node["memoize_ttl"] == settings.KUMO_MEMOIZE_TTL
    assert node["hook_batch_size"] == settings.KUMO_HOOK_BATCH_SIZE
    assert node["inject_username"] == settings.KUMO_INJECT_USERNAME
    assert node["key_prefix"] == "kumo:"


def test_the_shaping_file_recognises_each_provider_by_the_platforms_mx_suffixes(settings):
    document = tomllib.loads((POLICY_DIR / "shaping.toml").read_text())
    in_file = {
        name: sorted(rule["MXSuffix"] for rule in provider["match"])
        for name, provider in document["provider"].items()
    }

    assert in_file == {
        name: sorted(suffixes) for name, suffixes in settings.KUMO_PROVIDER_MX_SUFFIXES.items()
    }
    assert set(settings.KUMO_PROVIDER_MX_SUFFIXES) < set(settings.KUMO_SHAPING)


@pytest.mark.parametrize(
    ("provider", "response"),
    [
        ("yahoo", "421 4.7.0 [TSS04] Messages from 192.0.2.1 temporarily deferred"),
        ("yahoo", "421 4.7.0 [TS04] Messages from 192.0.2.1 temporarily deferred"),
        ("outlook", "451 4.7.500 Server busy. Please try again later from [192.0.2.1]. (S77719)"),
        ("office365", "451 4.7.650 The mail server [192.0.2.1] has been temporarily rate limited"),
    ],
)
def test_the_shaping_file_suspends_a_path_on_provider_throttling(provider, response):
    document = tomllib.loads((POLICY_DIR / "shaping.toml").read_text())
    rules = document["provider"][provider]["automation"]

    matching = [
        rule
        for rule in rules
        if any(
            re.search(regex, response)
            for regex in (rule["regex"] if isinstance(rule["regex"], list) else [rule["regex"]])
        )
    ]

    assert [rule["action"] for rule in matching] == ["Suspend"]


@pytest.mark.django_db
def test_tier_changes_made_while_a_bump_is_queued_share_that_bump(
    pools, redis_map, verified_domain, django_capture_on_commit_callbacks, settings
):
    from django.core.cache import cache

    from reputation.core.pool_map import BUMP_PENDING, config_epoch_bump

    node = LoopbackServer()
    threading.Thread(target=node.serve_forever, args=(0.02,), daemon=True).start()
    bumps = []
    node.on_request = lambda method, path: bumps.append(path)
    settings.KUMO_NODES = [node.url]
    try:
        cache.set(BUMP_PENDING, 1, 30)  # an earlier change queued a bump that has not run yet
        with django_capture_on_commit_callbacks(execute=True):
            domain_quarantine(domain=verified_domain, actor=None, reason="test")
        assert redis_map.hget(key("tenant_pool"), verified_domain.public_id) == b"quarantine"
        assert bumps == []  # written, and covered by the queued bump
        config_epoch_bump()  # the queued bump runs: after the write
        assert bumps == ["/api/admin/bump-config-epoch"]
        assert cache.get(BUMP_PENDING) is None  # the next change queues its own
    finally:
        node.shutdown()
        node.server_close()


def test_a_tier_change_queues_one_bump_three_seconds_later(monkeypatch):
    from django.core.cache import cache

    from reputation.core import pool_map

    queued = []
    monkeypatch.setattr(
        pool_map,
        "task_enqueue",
        lambda name, *args, countdown=None: queued.append((name, countdown)),
    )
    cache.delete(pool_map.BUMP_PENDING)

    pool_map.config_epoch_bump_soon()
    pool_map.config_epoch_bump_soon()  # within the delay: shares the queued bump

    assert queued == [("reputation.tasks.config_epoch_bump", 3.0)]
    cache.delete(pool_map.BUMP_PENDING)


@pytest.fixture
def nodes(settings, monkeypatch):
    """Two nodes' admin APIs: `flaky` fails its first `failures` bumps (500), `steady` none.

    Celery runs tasks at once here; its retries too, when a retry is not raised to the caller
    (as a worker does), so that each test sees every attempt."""
    from config.celery import app

    monkeypatch.setitem(app.conf, "task_eager_propagates", False)
    servers: list[LoopbackServer] = []

    def server() -> LoopbackServer:
        node = LoopbackServer()
        threading.Thread(target=node.serve_forever, args=(0.02,), daemon=True).start()
        servers.append(node)
        return node

    def start(failures: int) -> tuple[LoopbackServer, LoopbackServer]:
        flaky, steady = server(), server()
        flaky.status = 500

        def recover(method: str, path: str) -> None:
            if len(flaky.received) > failures:
                flaky.status = 200

        flaky.on_request = recover
        settings.KUMO_NODES = [flaky.url, steady.url + "/"]
        return flaky, steady

    yield start
    for node in servers:
        node.shutdown()
        node.server_close()


@pytest.fixture
def bump_delays(monkeypatch) -> list[float]:
    """The countdowns the bump task's retries ask for (the retries still run)."""
    from reputation import tasks

    delays: list[float] = []
    retry = tasks.config_epoch_bump.retry
    monkeypatch.setattr(
        tasks.config_epoch_bump,
        "retry",
        lambda *args, **kwargs: delays.append(kwargs["countdown"]) or retry(*args, **kwargs),
    )
    return delays


def test_a_failed_bump_is_retried_on_the_nodes_that_failed_only(nodes, caplog, bump_delays):
    from config.celery import task_enqueue

    flaky, steady = nodes(failures=1)

    task_enqueue("reputation.tasks.config_epoch_bump")  # run at once (eager Celery)

    assert [r["path"] for r in flaky.received] == ["/api/admin/bump-config-epoch"] * 2
    assert [r["path"] for r in steady.received] == ["/api/admin/bump-config-epoch"]
    assert bump_delays == [10.0]
    warnings = [r for r in caplog.records if r.levelname == "WARNING"]
    assert any(flaky.url in r.getMessage() for r in warnings)
    assert not [r for r in caplog.records if r.levelname == "ERROR"]


def test_a_bump_that_keeps_failing_is_given_up_with_an_error(nodes, caplog, bump_delays):
    from config.celery import task_enqueue

    flaky, steady = nodes(failures=100)

    task_enqueue("reputation.tasks.config_epoch_bump")

    assert len(flaky.received) == 6  # the first attempt and five retries
    assert len(steady.received) == 1
    assert bump_delays == [10.0, 20.0, 40.0, 80.0, 160.0]
    [error] = [r for r in caplog.records if r.levelname == "ERROR"]
    assert "gave up" in error.getMessage() and flaky.url in error.getMessage()


@pytest.mark.django_db
def test_a_full_exports_failed_bump_is_retried(pools, redis_map, nodes):
    flaky, steady = nodes(failures=1)

    pool_map_export()

    assert len(flaky.received) == 2
    assert len(steady.received) == 1
