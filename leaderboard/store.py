"""Where the board lives in Redis: the client and the key names (docs/leaderboard.md)."""

from functools import cache

import redis
from django.conf import settings


@cache
def _fake() -> redis.Redis:
    import fakeredis

    return fakeredis.FakeRedis()


def board_redis() -> redis.Redis:
    """The Redis the board lives in (a process-local stand-in in the embedded profile)."""
    if settings.LEADERBOARD_REDIS_URL:
        return _client_for(settings.LEADERBOARD_REDIS_URL)
    return _fake()


@cache
def _client_for(url: str) -> redis.Redis:
    # One client (and connection pool) per URL and process; redis-py renews it after a fork.
    return redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2)


def board_key(name: str) -> str:
    return f"{settings.LEADERBOARD_REDIS_PREFIX}{name}"


RANKS, ENTRIES, BUILT, TOP = "ranks", "entries", "built", "top"
TOP_SIZE = 100  # the first page is kept ready-made under TOP
