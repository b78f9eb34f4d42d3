"""The tenant->pool map and pool definitions in Redis, for the KumoMTA policy (docs/pool-map.md).

Full exports build new hashes under temporary names and swap them in with RENAME inside one
MULTI/EXEC, so a reader sees the old map or the new one, never a mix; a tier change is one HSET
on the live hash right after commit.
"""

import logging
import secrets
import time
from collections.abc import Mapping
from datetime import date
from functools import cache
from typing import Any

import orjson
import redis
from celery.exceptions import Retry
from django.conf import settings
from django.core.cache import caches
from django.db import connection, transaction
from django.db.models import Q
from django.utils import timezone
from redis.typing import EncodableT

from config.celery import task_enqueue
from config.http import post_json
from reputation.ipwarmup import pool_weights
from reputation.models import EgressSource, Pool, PoolMapExport
from sending.models import DkimKeyState, DomainStatus, SendingDomain

logger = logging.getLogger(__name__)

CHUNK = 20000
ROUTABLE = (DomainStatus.VERIFIED, DomainStatus.COOLDOWN, DomainStatus.QUARANTINED)
POOL_NAMES = frozenset(Pool.Name.values)  # Django recomputes `.values` on every access


@cache
def _fake() -> redis.Redis:
    import fakeredis

    return fakeredis.FakeRedis()


def kumo_redis() -> redis.Redis:
    """The Redis the MTA reads (a process-local stand-in in the embedded profile)."""
    if settings.KUMO_REDIS_URL:
        return redis.Redis.from_url(settings.KUMO_REDIS_URL)
    return _fake()


# What redis-py accepts as a hash's fields and values.
RedisHash = Mapping[EncodableT, EncodableT]


def _text(value: str | bytes) -> str:
    return value.decode() if isinstance(value, bytes) else value


def key(name: str) -> str:
    return f"{settings.KUMO_REDIS_PREFIX}{name}"


def pool_for(status: str, tier: str) -> str:
    """The pool a routable domain's mail takes; the status wins over a stale tier."""
    if status == DomainStatus.QUARANTINED:
        return Pool.Name.QUARANTINE
    if status == DomainStatus.COOLDOWN and tier != Pool.Name.QUARANTINE:
        return Pool.Name.REHAB
    return tier if tier in POOL_NAMES else Pool.Name.REHAB


def tenant_pool(domain: SendingDomain) -> str:
    return pool_for(domain.status, domain.tier)


def pools_definition(today: date | None = None) -> tuple[dict[str, bytes], dict[str, bytes]]:
    """`pools` and `sources` hash contents: weights follow each source's warm-up
    (docs/pool-map.md#ip-warm-up-weights)."""
    today = today or timezone.localdate()
    pools: dict[str, dict[str, list[dict[str, Any]]]] = {
        name: {"entries": []} for name in Pool.Name.values
    }
    sources = {}
    for pool in Pool.objects.prefetch_related("memberships__source"):
        if pool.name == Pool.Name.QUARANTINE:
            continue  # always empty: the MTA holds quarantined mail
        members = [m.source for m in pool.memberships.all()]
        active = [(s.name, s.warmup_started_on) for s in members if s.state == "active"]
        weights = pool_weights(active, today)
        pools[pool.name]["entries"] = [
            {"name": s.name, "weight": weights.get(s.name, 0)}
            for s in members
            if s.state in ("active", "pulled")
        ]
    for source in EgressSource.objects.exclude(state=EgressSource.State.STANDBY):
        sources[source.name] = {
            "source_address": source.source_address,
            "ehlo_domain": source.ehlo_domain,
        }
    return (
        {name: orjson.dumps(value) for name, value in pools.items()},
        {name: orjson.dumps(value) for name, value in sources.items()},
    )


def _write_hash(pipe, name: str, items) -> None:
    batch = {}
    for field, value in items:
        batch[field] = value
        if len(batch) >= CHUNK:
            pipe.hset(name, mapping=batch)
            batch = {}
    if batch:
        pipe.hset(name, mapping=batch)


def pool_map_export(*, client: redis.Redis | None = None) -> PoolMapExport:
    """Write the whole map under temporary keys, then swap them in atomically."""
    started = time.perf_counter()
    started_at = timezone.now()
    client = client or kumo_redis()
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT public_id, status, tier FROM {SendingDomain._meta.db_table} WHERE status IN "
            f"({', '.join(['%s'] * len(ROUTABLE))})",
            [str(status) for status in ROUTABLE],
        )
        tenants = cursor.fetchall()
    pools, sources = pools_definition()
    suffix = f":tmp:{secrets.token_hex(6)}"
    live = {name: key(name) for name in ("tenant_pool", "pools", "sources")}
    count = 0

    def tenant_items():
        nonlocal count
        for public_id, status, tier in tenants:
            count += 1
            yield public_id, pool_for(status, tier)

    pipe = client.pipeline(transaction=False)
    _write_hash(pipe, live["tenant_pool"] + suffix, tenant_items())
    _write_hash(pipe, live["pools"] + suffix, pools.items())
    _write_hash(pipe, live["sources"] + suffix, sources.items())
    pipe.execute()
    swap = client.pipeline(transaction=True)
    for name, target in live.items():
        temporary = target + suffix
        if (name == "tenant_pool" and not count) or (name == "sources" and not sources):
            swap.delete(target)  # RENAME needs a source key: an empty hash is no key at all
        else:
            swap.rename(temporary, target)
    swap.incr(key("map_version"))
    # Replaced whole, so a field the policy no longer reads does not linger for operators.
    swap.delete(key("settings"))
    swap.hset(key("settings"), mapping=policy_settings())
    version = swap.execute()[-3]
    _republish_changed_since(client, started_at)
    export = PoolMapExport.objects.create(
        version=version,
        tenants=count,
        pools={name: orjson.loads(value)["entries"] for name, value in pools.items()},
        duration_ms=round(1000 * (time.perf_counter() - started)),
    )
    failed = _bump_config_epoch()
    if failed:
        _bump_retry_later(failed)
    return export


def policy_settings() -> RedisHash:
    """The settings hash the KumoMTA policy reads (Python decides the numbers; Lua only reads).

    Every field the policy reads is here, and the policy's fallback for each equals the value
    exported by default (kumomta/policy/defaults.lua; both checked by tests). `shaping` carries,
    per provider, the limits and the MX host suffixes the policy recognises it by."""
    shaping = {provider: dict(limits) for provider, limits in settings.KUMO_SHAPING.items()}
    for provider, suffixes in settings.KUMO_PROVIDER_MX_SUFFIXES.items():
        if provider in shaping:
            shaping[provider]["mx_suffixes"] = list(suffixes)
    # The log hook's URL is deliberately not here: the nodes take it from their own environment
    # only, or whoever can write this Redis could send the hook's bearer token elsewhere.
    return {
        "pool_ttl": settings.KUMO_POOL_TTL,
        "accepted_ttl": str(settings.KUMO_ACCEPTED_TTL_SECONDS),
        "shaping": orjson.dumps(shaping).decode(),
    }


def _republish_changed_since(client: redis.Redis, since) -> None:
    """A tier change whose HSET landed between the export's read and its swap was overwritten by
    the swap: apply every change since the export began again."""
    changed = SendingDomain.objects.filter(
        Q(score_updated_at__gte=since) | Q(status_changed_at__gte=since)
    ).values_list("public_id", "status", "tier")
    pipe = client.pipeline(transaction=False)
    for public_id, status, tier in changed:
        if status in ROUTABLE:
            pipe.hset(key("tenant_pool"), public_id, pool_for(status, tier))
        else:
            pipe.hdel(key("tenant_pool"), public_id)
    pipe.execute()


def _bump_config_epoch(nodes: list[str] | None = None) -> list[str]:
    """Ask every node (or those given) to read the map again now: its queues (refresh strategy
    'Epoch') and its memoized lookups follow a config epoch bump. Returns the nodes that could
    not be reached; the queued bump retries them (config_epoch_bump)."""
    failed = []
    for node in settings.KUMO_NODES if nodes is None else nodes:
        try:
            post_json(node.rstrip("/") + "/api/admin/bump-config-epoch", b"{}", timeout=5)
        except (OSError, ValueError) as error:
            logger.warning("could not bump the config epoch on %s: %s", node, error)
            failed.append(node)
    return failed


BUMP_PENDING = "kumo:config-epoch-bump-pending"
BUMP_TASK = "reputation.tasks.config_epoch_bump"
# Seconds between a map change and its bump: the changes made meanwhile (a rescoring run may move
# hundreds of tenants) share it, so a storm of tier changes makes at most one bump per BUMP_DELAY
# (each bump discards every Lua context on every node).
BUMP_DELAY = 3.0
# A node that could not be bumped is tried again BUMP_RETRIES times, BUMP_RETRY_DELAY seconds
# later, then twice that, and so on (10 s to 160 s: about 5 minutes in all); the next full
# export (at most 10 minutes away) bumps every node anyway.
BUMP_RETRY_DELAY = 10.0
BUMP_RETRIES = 5


def config_epoch_bump_soon() -> None:
    """Queue one bump for every map change made in the next moment (a rescoring run may move
    hundreds of tenants; each bump makes every node re-read every queue's config)."""
    try:
        if not caches["default"].add(BUMP_PENDING, 1, timeout=30):
            return  # a bump is queued and runs after this change was written
    except Exception:  # the cache is down: bump without the debounce
        logger.warning("cache unavailable; bumping the config epoch without debounce")
    try:
        task_enqueue(BUMP_TASK, countdown=BUMP_DELAY)
    except Retry:
        return  # run in place (eager tasks): it failed and scheduled its own retries
    except Exception:  # the broker is down: bump now rather than not at all
        logger.warning("could not queue the config epoch bump; bumping now")
        config_epoch_bump()


def config_epoch_bump(nodes: list[str] | None = None) -> list[str]:
    """The queued bump (every node), or its retry (`nodes`, those that failed); returns the nodes
    that failed. The flag goes first, so a change written after it queues another bump."""
    if nodes is None:
        try:
            caches["default"].delete(BUMP_PENDING)
        except Exception:
            logger.warning("cache unavailable while bumping the config epoch")
    return _bump_config_epoch(nodes)


def _bump_retry_later(nodes: list[str]) -> None:
    """The full export's bump failed on `nodes`: the queued task retries them."""
    try:
        task_enqueue(BUMP_TASK, nodes, countdown=BUMP_RETRY_DELAY)
    except Exception:
        logger.warning("could not queue a retry of the config epoch bump on %s", ", ".join(nodes))


def tenant_pool_publish(*, domain: SendingDomain) -> None:
    """One HSET (or HDEL for a domain that may not send) after the current commit; when that
    changed the map, a config epoch bump so that the nodes route the tenant's mail by it at once."""
    public_id = domain.public_id
    pool = tenant_pool(domain) if domain.status in ROUTABLE else None

    def publish() -> None:
        try:
            client = kumo_redis()
            if pool is None:
                changed = bool(client.hdel(key("tenant_pool"), public_id))
            else:
                pipe = client.pipeline(transaction=True)
                pipe.hget(key("tenant_pool"), public_id)
                pipe.hset(key("tenant_pool"), public_id, pool)
                previous, _ = pipe.execute()
                changed = previous is None or _text(previous) != pool
        except redis.RedisError:
            logger.exception(
                "could not publish %s's pool; the periodic full export will", public_id
            )
            return
        if changed:  # a status change also republishes an unchanged pool: no need to bump
            config_epoch_bump_soon()

    transaction.on_commit(publish)


def pool_map_read(*, client: redis.Redis | None = None) -> dict[str, Any]:
    """What the MTA sees now (for the console and the export command)."""
    client = client or kumo_redis()
    version = client.get(key("map_version"))
    return {
        "version": int(version) if version else 0,
        "tenants": client.hlen(key("tenant_pool")),
        "pools": {
            _text(k): orjson.loads(v)["entries"] for k, v in client.hgetall(key("pools")).items()
        },
    }


def dkim_key_publish(*, domain: SendingDomain) -> None:
    """Put the domain's signing key where the policy's signer reads it (after commit); remove it
    when the domain may no longer send."""
    name = domain.name
    active = domain.dkim_keys.filter(state=DkimKeyState.ACTIVE).first()
    payload: RedisHash | None = None
    if active is not None and domain.status in ROUTABLE and active.private_key_encrypted:
        payload = {"selector": active.selector, "key": active.private_key_pem()}

    def publish() -> None:
        try:
            client = kumo_redis()
            if payload is None:
                client.delete(key(f"dkim:{name}"))
            else:
                client.hset(key(f"dkim:{name}"), mapping=payload)
        except redis.RedisError:
            logger.exception("could not publish the DKIM key of %s", name)

    transaction.on_commit(publish)
