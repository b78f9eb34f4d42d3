"""Fixtures for the KumoMTA policy tests: the platform's side of the Redis contract, policies in
the stand-in, a loopback log hook and throwaway Redis servers."""

import os
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import redis

from tests.kumomta.kumo_standin import KumoStandin, delete_prefix, policy_env, publish_map
from tests.servers.chaos import RedisServer

REDIS_URL = os.environ["REDIS_URL"]
HOOK_TOKEN = "hook-token-for-tests"

TENANTS = {
    "dom_premium": "premium",
    "dom_standard": "standard",
    "dom_rehab": "rehab",
    "dom_quarantined": "quarantine",
}
POOLS = {
    "premium": {"entries": [{"name": "ip-1", "weight": 5}, {"name": "ip-2", "weight": 1}]},
    "standard": {"entries": [{"name": "ip-3", "weight": 1}, {"name": "ip-4", "weight": 0}]},
    "rehab": {"entries": [{"name": "ip-5", "weight": 1}]},
    "quarantine": {"entries": []},
}
SOURCES = {
    f"ip-{n}": {"source_address": f"192.0.2.{n}", "ehlo_domain": f"mta{n}.example.net"}
    for n in range(1, 6)
}
SETTINGS = {"pool_ttl": "1 minute"}
# The test's DNS for the shaping helper's MX matching.
MX = {
    "gmail.com": ["gmail-smtp-in.l.google.com", "alt1.gmail-smtp-in.l.google.com"],
    "company.example": ["aspmx.l.google.com", "alt2.aspmx.l.google.com"],
    "hotmail.co.uk": ["eur.olc.protection.outlook.com"],
    "contoso.example": ["contoso-example.mail.protection.outlook.com"],
    "aol.com": ["mx-aol.mail.gm0.yahoodns.net"],
    "mixed.example": ["aspmx.l.google.com", "mx.backup.example"],
    "example.org": ["mx.example.org"],
}


@dataclass
class RedisContract:
    """The platform's side of the Redis contract, under a key prefix of its own."""

    url: str
    client: redis.Redis
    prefix: str

    def publish(self, **overrides) -> None:
        values = {
            "tenants": TENANTS,
            "pools": POOLS,
            "sources": SOURCES,
            "settings": SETTINGS,
        } | overrides
        publish_map(self.client, self.prefix, **values)

    def set_pool(self, tenant: str, pool: str) -> None:
        self.client.hset(f"{self.prefix}tenant_pool", tenant, pool)

    def on(self, server: RedisServer) -> "RedisContract":
        """The same contract (same prefix) on another Redis server."""
        return RedisContract(server.url, redis.Redis.from_url(server.url), self.prefix)


@pytest.fixture
def contract() -> Iterator[RedisContract]:
    client = redis.Redis.from_url(REDIS_URL)
    prefix = f"test:{uuid.uuid4().hex}:"
    yield RedisContract(REDIS_URL, client, prefix)
    delete_prefix(client, prefix)
    client.close()


@pytest.fixture
def make_policy(contract: RedisContract) -> Iterator[Callable[..., KumoStandin]]:
    """A started node running the policy; keyword arguments are node settings (environment)."""
    made: list[KumoStandin] = []

    def make(*, redis_url: str | None = None, mx: dict | None = None, **env: str) -> KumoStandin:
        env.setdefault("TRUSTGATE_HOOK_TOKEN", HOOK_TOKEN)
        standin = KumoStandin(
            env=policy_env(redis_url or contract.url, contract.prefix, **env),
            mx=MX if mx is None else mx,
        )
        standin.load_policy()
        standin.start()
        made.append(standin)
        return standin

    yield make
    for standin in made:
        standin.close()


@pytest.fixture
def redis_servers(tmp_path: Path) -> Iterator[Callable[[], RedisServer]]:
    """Throwaway redis-server processes (killed at the end of the test)."""
    started: list[RedisServer] = []

    def start() -> RedisServer:
        workdir = tmp_path / f"redis-{len(started)}"
        workdir.mkdir()
        server = RedisServer(workdir)
        server.start()
        started.append(server)
        return server

    yield start
    for server in started:
        server.kill()


def replicate(replica: RedisServer, primary: RedisServer, timeout: float = 10) -> None:
    """Make `replica` a replica of `primary` and wait until it holds the primary's data."""
    # Full syncs start at once rather than after Redis's default 5-second wait for others.
    redis.Redis.from_url(primary.url).config_set("repl-diskless-sync-delay", 0)
    client = redis.Redis.from_url(replica.url)
    client.execute_command("REPLICAOF", "127.0.0.1", str(primary.port))
    deadline = time.monotonic() + timeout
    while client.info("replication").get("master_link_status") != "up":
        assert time.monotonic() < deadline, "the replica did not catch up with its primary"
        time.sleep(0.02)
    client.close()


def wait_replicated(replica: RedisServer, primary: RedisServer, timeout: float = 10) -> None:
    """Wait until the replica has applied everything the primary has written so far."""
    # WAIT blocks until that many replicas acknowledged every write made so far.
    client = redis.Redis.from_url(primary.url)
    acknowledged = client.wait(1, int(timeout * 1000))
    client.close()
    assert acknowledged >= 1, "the replica did not apply the primary's writes"


# --- a loopback HTTP server (the platform's log hook, a TSA daemon, a node's admin API) -------


class RecordingHandler(BaseHTTPRequestHandler):
    def _answer(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.server.received.append(
            {"method": self.command, "path": self.path, "headers": self.headers, "body": body}
        )
        status, content_type, reply = self.server.reply(self.command, self.path)
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(reply)))
        self.end_headers()
        self.wfile.write(reply)

    do_GET = do_POST = _answer

    def log_message(self, *args) -> None:
        pass


class LoopbackServer(ThreadingHTTPServer):
    """Records every request; `status` (and `routes`, path -> body) decide the answers."""

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), RecordingHandler)
        self.received: list[dict] = []
        self.status = 200
        self.routes: dict[str, bytes] = {}
        self.on_request: Callable[[str, str], None] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def reply(self, method: str, path: str) -> tuple[int, str, bytes]:
        if self.on_request is not None:
            self.on_request(method, path)
        if path in self.routes:
            return 200, "text/plain", self.routes[path]
        if self.status < 300:
            return self.status, "application/json", b'{"stored": true}'
        return self.status, "application/json", b'{"error": "try later"}'


@pytest.fixture
def loopback_server() -> Iterator[Callable[[], LoopbackServer]]:
    servers: list[LoopbackServer] = []

    def start() -> LoopbackServer:
        server = LoopbackServer()
        threading.Thread(target=server.serve_forever, args=(0.02,), daemon=True).start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


@pytest.fixture
def hook_server(loopback_server) -> LoopbackServer:
    return loopback_server()


def hook_url(server: LoopbackServer) -> str:
    return f"{server.url}/hooks/kumomta/"
