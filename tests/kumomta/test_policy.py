"""The KumoMTA policy (kumomta/policy/), run in Lua 5.4 against the stand-in and a real Redis."""

import base64
import json
import os
import shutil
import socket
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import dkim
import pytest
import redis
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.kumomta.kumo_standin import (
    POLICY_DIR,
    KumoStandin,
    PolicyError,
    Rejected,
    delete_prefix,
    message_text,
    policy_env,
    publish_map,
    redis_calls_for,
    to_python,
)

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
SETTINGS = {"memoize_ttl": "5 seconds"}


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


@pytest.fixture
def contract() -> Iterator[RedisContract]:
    client = redis.Redis.from_url(REDIS_URL)
    prefix = f"test:{uuid.uuid4().hex}:"
    yield RedisContract(REDIS_URL, client, prefix)
    delete_prefix(client, prefix)
    client.close()


@pytest.fixture
def make_policy(contract: RedisContract) -> Iterator[Callable[..., KumoStandin]]:
    made: list[KumoStandin] = []

    def make(*, redis_url: str | None = None, **env: str) -> KumoStandin:
        env.setdefault("TRUSTGATE_HOOK_TOKEN", HOOK_TOKEN)
        standin = KumoStandin(env=policy_env(redis_url or contract.url, contract.prefix, **env))
        standin.load_policy()
        standin.start()
        made.append(standin)
        return standin

    yield make
    for standin in made:
        standin.close()


@pytest.fixture(scope="module")
def dkim_key() -> tuple[str, str]:
    """A PEM private key (as the platform publishes it) and its DNS TXT record."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    public = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return pem, f"v=DKIM1; k=rsa; p={base64.b64encode(public).decode()}"


def queue_pool(standin: KumoStandin, tenant: str | None) -> str:
    config = to_python(standin.fire("get_queue_config", "example.org", tenant, None, None))
    assert config["refresh_strategy"] == "Ttl"
    return config["egress_pool"]


def receive(standin: KumoStandin, event: str = "smtp_server_message_received", **message):
    msg = standin.new_message(message_text(**message))
    standin.fire(event, msg, None)
    return msg


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# --- 1. syntax ---------------------------------------------------------------------------------


def test_it_passes_luac_on_every_lua_file():
    luac = shutil.which("luac5.4")
    assert luac, "luac5.4 is missing: install Debian's lua5.4 package"
    files = sorted(POLICY_DIR.parent.rglob("*.lua")) + sorted(Path(__file__).parent.glob("*.lua"))
    assert POLICY_DIR / "init.lua" in files
    for path in files:
        result = subprocess.run([luac, "-p", str(path)], capture_output=True, text=True)
        assert result.returncode == 0, result.stderr


# --- 2. routing from the map -------------------------------------------------------------------


def test_it_routes_each_tier_to_its_pool(contract, make_policy):
    contract.publish()
    standin = make_policy()

    for tenant, pool in TENANTS.items():
        assert queue_pool(standin, tenant) == pool


def test_it_builds_pools_and_sources_from_redis(contract, make_policy):
    contract.publish()
    standin = make_policy()

    premium = to_python(standin.fire("get_egress_pool", "premium"))
    assert premium["name"] == "premium"
    assert premium["entries"] == [{"name": "ip-1", "weight": 5}, {"name": "ip-2", "weight": 1}]
    standard = to_python(standin.fire("get_egress_pool", "standard"))
    assert standard["entries"][1] == {"name": "ip-4", "weight": 0}
    # A pool without sources is valid: KumoMTA pauses it, holding quarantined mail.
    assert not to_python(standin.fire("get_egress_pool", "quarantine"))["entries"]

    source = to_python(standin.fire("get_egress_source", "ip-2"))
    assert source["source_address"] == "192.0.2.2"
    assert source["ehlo_domain"] == "mta2.example.net"

    with pytest.raises(PolicyError, match="not defined"):
        standin.fire("get_egress_pool", "platinum")
    with pytest.raises(PolicyError, match="not defined"):
        standin.fire("get_egress_source", "ip-9")


def test_it_holds_mail_of_a_tenant_removed_from_the_map(contract, make_policy):
    contract.publish()
    standin = make_policy()

    assert queue_pool(standin, "dom_gone") == "quarantine"
    assert queue_pool(standin, None) == "quarantine"


def test_it_leaves_the_log_hook_queue_to_the_log_hook(contract, make_policy):
    contract.publish()
    standin = make_policy()

    config = to_python(standin.fire("get_queue_config", "trustgate.log_hook", None, None, None))

    assert "egress_pool" not in config
    assert config["protocol"]["custom_lua"]["constructor"] == "make.trustgate.log_hook"


# --- 3. memoize TTL ----------------------------------------------------------------------------


def test_it_sees_a_tier_change_only_after_the_memoize_ttl(contract, make_policy):
    contract.publish()
    standin = make_policy()
    assert queue_pool(standin, "dom_premium") == "premium"

    contract.set_pool("dom_premium", "standard")
    assert queue_pool(standin, "dom_premium") == "premium"
    standin.clock.advance(4.9)
    assert queue_pool(standin, "dom_premium") == "premium"
    standin.clock.advance(0.2)
    assert queue_pool(standin, "dom_premium") == "standard"

    contract.set_pool("dom_premium", "quarantine")
    receive(standin, tenant="dom_premium")
    standin.clock.advance(5.1)
    with pytest.raises(Rejected, match="quarantined"):
        receive(standin, tenant="dom_premium")


def test_it_takes_the_ttl_from_the_settings_hash(contract, make_policy):
    contract.publish(settings={"memoize_ttl": "30 seconds"})
    standin = make_policy()
    assert queue_pool(standin, "dom_rehab") == "rehab"

    contract.set_pool("dom_rehab", "standard")
    standin.clock.advance(29)
    assert queue_pool(standin, "dom_rehab") == "rehab"
    standin.clock.advance(2)
    assert queue_pool(standin, "dom_rehab") == "standard"


# --- 4. reception ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("tenant", "reason"),
    [
        (None, "no X-Tenant header"),
        ("dom_nobody", "unknown tenant"),
        ("dom_quarantined", "quarantined"),
        ("dom_premium@other", "malformed X-Tenant"),
    ],
)
@pytest.mark.parametrize("event", ["smtp_server_message_received", "http_message_generated"])
def test_it_refuses_mail_it_must_not_send(contract, make_policy, event, tenant, reason):
    contract.publish()
    standin = make_policy()

    with pytest.raises(Rejected) as refused:
        receive(standin, event, tenant=tenant)

    assert refused.value.code == 550
    assert refused.value.message.startswith("5.7.1 ")
    assert reason in refused.value.message


@pytest.mark.parametrize("event", ["smtp_server_message_received", "http_message_generated"])
def test_it_moves_the_ids_to_meta_and_signs_last(contract, make_policy, dkim_key, event):
    pem, txt_record = dkim_key
    contract.publish(dkim_keys={"brand.example": ("tg2026", pem)})
    standin = make_policy()

    msg = receive(standin, event, tenant="dom_standard", campaign="cmp_42", kind="campaign")

    assert standin.get_meta(msg, "tenant") == "dom_standard"
    assert standin.get_meta(msg, "campaign") == "cmp_42"
    assert standin.get_meta(msg, "kind") == "campaign"
    for name in ("X-Tenant", "X-Campaign", "X-Kind"):
        assert standin.header_values(msg, name) == []
    assert standin.message_ops(msg)[-1] == "dkim_sign:brand.example"

    data = standin.message_data(msg)
    assert data.startswith("DKIM-Signature:")
    assert "s=tg2026" in data and "d=brand.example" in data
    lookups = []

    def dns(name: bytes, timeout: int = 5) -> bytes:
        lookups.append(name)
        return txt_record.encode()

    assert dkim.verify(data.encode(), dnsfunc=dns)
    assert lookups == [b"tg2026._domainkey.brand.example."]


def test_it_adds_a_trace_header_naming_the_tenant(contract, make_policy):
    contract.publish()
    standin = make_policy()
    forged = message_text(tenant="dom_premium").replace(
        "Subject:", "X-KumoRef: eyJ0ZW5hbnQiOiJzb21lb25lLWVsc2UifQ==\r\nSubject:"
    )
    msg = standin.new_message(forged, recipient="reader@example.org")

    standin.fire("smtp_server_message_received", msg, None)

    [trace] = standin.header_values(msg, "X-KumoRef")
    assert json.loads(base64.b64decode(trace)) == {
        "_@_": "\\_/",
        "recipient": "reader@example.org",
        "tenant": "dom_premium",
    }


def test_it_sends_unsigned_and_logs_when_the_domain_has_no_key(contract, make_policy):
    contract.publish()
    standin = make_policy()

    msg = receive(standin, tenant="dom_premium", from_address="a@unverified.example")

    assert not any(op.startswith("dkim_sign") for op in standin.message_ops(msg))
    assert any("no key for unverified.example" in log["text"] for log in standin.logs)


def test_it_lets_feedback_reports_through_to_the_fbl_domain(contract, make_policy):
    contract.publish()
    standin = make_policy(TRUSTGATE_FBL_DOMAIN="fbl.example.net")
    report = standin.new_message(message_text(tenant=None), recipient="arf@fbl.example.net")

    standin.fire("smtp_server_message_received", report, None)

    listener = to_python(standin.fire("get_listener_domain", "FBL.example.net", "0.0.0.0:25", None))
    assert listener["log_arf"] == "LogThenDrop"
    assert standin.fire("get_listener_domain", "example.org", "0.0.0.0:25", None) is None


# --- 5. Redis down -----------------------------------------------------------------------------


@dataclass
class ThrowawayRedis:
    url: str
    client: redis.Redis
    process: subprocess.Popen = field(repr=False)

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=10)


@pytest.fixture
def throwaway_redis(tmp_path: Path) -> Iterator[ThrowawayRedis]:
    port = free_port()
    options = {"port": str(port), "bind": "127.0.0.1", "save": "", "appendonly": "no"}
    arguments = [part for name, value in options.items() for part in (f"--{name}", value)]
    process = subprocess.Popen(
        ["redis-server", *arguments, "--dir", str(tmp_path)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"redis://127.0.0.1:{port}/0"
    client = redis.Redis.from_url(url)
    deadline = time.monotonic() + 10
    while True:  # wait for the server to accept connections
        try:
            client.ping()
            break
        except redis.ConnectionError:
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                raise
            time.sleep(0.02)
    server = ThrowawayRedis(url, client, process)
    yield server
    if process.poll() is None:
        server.stop()
    client.close()


def test_it_keeps_the_last_known_map_when_redis_stops(throwaway_redis, contract, make_policy):
    contract = RedisContract(throwaway_redis.url, throwaway_redis.client, contract.prefix)
    contract.publish(tenants=TENANTS | {"dom_promoted": "rehab", "dom_unseen": "standard"})
    standin = make_policy(redis_url=throwaway_redis.url)
    for tenant in ("dom_premium", "dom_rehab", "dom_promoted"):
        receive(standin, tenant=tenant)
        assert queue_pool(standin, tenant) == TENANTS.get(tenant, "rehab")
    assert queue_pool(standin, "dom_quarantined") == "quarantine"
    standin.fire("get_egress_pool", "premium")
    standin.fire("get_egress_source", "ip-1")
    # Promoted after this node last looked, then Redis goes away.
    contract.set_pool("dom_promoted", "premium")
    throwaway_redis.stop()
    standin.clock.advance(60)

    assert queue_pool(standin, "dom_premium") == "premium"
    assert queue_pool(standin, "dom_promoted") == "rehab"
    assert queue_pool(standin, "dom_quarantined") == "quarantine"
    assert queue_pool(standin, "dom_unseen") == "rehab"
    receive(standin, tenant="dom_premium")
    with pytest.raises(Rejected, match="quarantined"):
        receive(standin, tenant="dom_quarantined")
    with pytest.raises(Rejected) as unseen:
        receive(standin, tenant="dom_unseen")
    assert unseen.value.code == 451
    premium = to_python(standin.fire("get_egress_pool", "premium"))
    assert [entry["name"] for entry in premium["entries"]] == ["ip-1", "ip-2"]
    assert to_python(standin.fire("get_egress_source", "ip-1"))["source_address"] == "192.0.2.1"
    with pytest.raises(PolicyError, match="unavailable"):
        standin.fire("get_egress_pool", "standard")
    assert any("redis lookup" in log["text"] for log in standin.logs)

    # A failed lookup is cached for the TTL: a dead Redis is not asked once per message.
    attempts = standin.redis_call_count
    for _ in range(50):
        queue_pool(standin, "dom_premium")
        receive(standin, tenant="dom_premium")
    assert standin.redis_call_count == attempts


# --- 6. log hook -------------------------------------------------------------------------------


class HookHandler(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.server.received.append({"path": self.path, "headers": self.headers, "body": body})
        status = self.server.status
        reply = b'{"stored": true}' if status < 300 else b'{"error": "try later"}'
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(reply)))
        self.end_headers()
        self.wfile.write(reply)

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def hook_server() -> Iterator[ThreadingHTTPServer]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), HookHandler)
    server.received = []
    server.status = 200
    thread = threading.Thread(target=server.serve_forever, args=(0.02,), daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def hook_url(server: ThreadingHTTPServer) -> str:
    return f"http://127.0.0.1:{server.server_address[1]}/hooks/kumomta/"


RECORDS = [
    {
        "type": "Delivery",
        "id": f"spool-{n}",
        "recipient": f"r{n}@example.org",
        "meta": {"tenant": "dom_premium", "campaign": "cmp_1", "kind": "campaign"},
        "response": {"code": 250, "content": "OK"},
    }
    for n in range(3)
]


def test_it_posts_log_batches_with_the_bearer_token(contract, make_policy, hook_server):
    contract.publish(settings=SETTINGS | {"hook_batch_size": "2"})
    standin = make_policy(TRUSTGATE_HOOK_URL=hook_url(hook_server))

    dispositions = standin.deliver_log_records(RECORDS)

    assert [d.split()[0] for d in dispositions] == ["200", "200"]
    assert len(hook_server.received) == 2
    first, second = hook_server.received
    assert first["path"] == "/hooks/kumomta/"
    assert first["headers"]["Authorization"] == f"Bearer {HOOK_TOKEN}"
    assert first["headers"]["Content-Type"] == "application/json"
    assert json.loads(first["body"]) == RECORDS[:2]
    assert json.loads(second["body"]) == RECORDS[2:]
    [hook] = standin.configured("configure_log_hook")
    assert hook["name"] == "trustgate"
    assert hook["meta"] == ["tenant", "campaign", "kind"]


@pytest.mark.parametrize(("status", "code"), [(503, 451), (500, 451), (429, 451), (400, 550)])
def test_it_retries_records_the_hook_could_not_take(
    contract, make_policy, hook_server, status, code
):
    contract.publish()
    standin = make_policy(TRUSTGATE_HOOK_URL=hook_url(hook_server))
    hook_server.status = status

    with pytest.raises(Rejected) as failed:
        standin.deliver_log_records(RECORDS[:1])

    assert failed.value.code == code
    assert str(status) in failed.value.message
    assert len(hook_server.received) == 1


def test_it_retries_records_when_the_hook_is_unreachable(contract, make_policy):
    contract.publish()
    standin = make_policy(TRUSTGATE_HOOK_URL=f"http://127.0.0.1:{free_port()}/hooks/kumomta/")

    with pytest.raises(Rejected) as failed:
        standin.deliver_log_records(RECORDS[:1])

    assert failed.value.code == 451
    assert "unreachable" in failed.value.message


def test_it_prefers_the_hook_url_from_the_settings_hash(contract, make_policy, hook_server):
    contract.publish(settings=SETTINGS | {"hook_url": hook_url(hook_server)})
    standin = make_policy(TRUSTGATE_HOOK_URL=f"http://127.0.0.1:{free_port()}/nowhere/")

    standin.deliver_log_records(RECORDS[:1])

    assert len(hook_server.received) == 1


# --- 7. the stand-in's registration rule -------------------------------------------------------

SINGLE_HANDLER_EVENTS = [
    "get_egress_pool",
    "get_egress_source",
    "get_egress_path_config",
    "smtp_server_message_received",
    "http_message_generated",
    "init",
]


@pytest.mark.parametrize("event", SINGLE_HANDLER_EVENTS)
def test_it_refuses_a_second_handler_for_a_single_handler_event(event):
    standin = KumoStandin()
    register = f"require('kumo').on('{event}', function() end)"
    standin.run(register)

    with pytest.raises(PolicyError, match=f"{event} event already has a handler"):
        standin.run(register)


def test_it_lets_several_get_queue_config_handlers_answer_in_order():
    standin = KumoStandin()
    standin.run(
        """
        local kumo = require 'kumo'
        kumo.on('get_queue_config', function(domain)
          if domain == 'first.example' then
            return kumo.make_queue_config { egress_pool = 'one' }
          end
        end)
        kumo.on('get_queue_config', function(domain)
          return kumo.make_queue_config { egress_pool = 'two' }
        end)
        """
    )

    first = standin.fire("get_queue_config", "first.example", None, None, None)
    other = standin.fire("get_queue_config", "other.example", None, None, None)

    assert (first["egress_pool"], other["egress_pool"]) == ("one", "two")
    assert standin.handler_count("get_queue_config") == 2


def test_it_refuses_registering_a_handler_inside_an_event():
    standin = KumoStandin()
    standin.run(
        """
        local kumo = require 'kumo'
        kumo.on('init', function() kumo.on('get_egress_pool', function() end) end)
        """
    )

    with pytest.raises(PolicyError, match="from within the event handler 'init'"):
        standin.fire("init")


# --- 8. Redis calls ----------------------------------------------------------------------------


def test_it_makes_about_one_redis_call_per_tenant_per_ttl():
    tenants = 100

    calls = redis_calls_for(10_000, tenants)

    assert calls <= 2 * tenants
    assert redis_calls_for(500, tenants, memoize=False) >= 500


# --- shaping and start-up configuration --------------------------------------------------------


def path_config(standin: KumoStandin, domain: str, site: str) -> dict:
    return to_python(standin.fire("get_egress_path_config", domain, "ip-1", site))


def test_it_shapes_the_big_providers_with_numbers_from_redis(contract, make_policy):
    shaping = {
        "gmail": {"max_connections": 4, "messages_per_hour": 900},
        "microsoft": {"max_connections": 2, "messages_per_hour": 400},
        "yahoo": {"max_connections": 1, "messages_per_hour": 250},
    }
    contract.publish(settings=SETTINGS | {"shaping": shaping})
    standin = make_policy()

    gmail = path_config(standin, "gmail.com", "gmail-smtp-in.l.google.com")
    assert (gmail["connection_limit"], gmail["max_message_rate"]) == (4, "900/h")
    hosted = path_config(standin, "company.example", "(alt1|alt2).aspmx.l.google.com")
    assert hosted["max_message_rate"] == "900/h"
    microsoft = path_config(standin, "hotmail.co.uk", "eur.olc.protection.outlook.com")
    assert microsoft["max_message_rate"] == "400/h"
    yahoo = path_config(standin, "aol.com", "mx-aol.mail.gm0.yahoodns.net")
    assert yahoo["connection_limit"] == 1
    other = path_config(standin, "example.org", "mx.example.org")
    assert "connection_limit" not in other and "max_message_rate" not in other


def test_it_falls_back_to_conservative_shaping_without_settings(contract, make_policy):
    contract.publish(settings=SETTINGS | {"shaping": "not json"})
    standin = make_policy()

    gmail = path_config(standin, "googlemail.com", "gmail-smtp-in.l.google.com")

    assert (gmail["connection_limit"], gmail["max_message_rate"]) == (3, "300/h")


def test_it_configures_the_node_at_init(contract, make_policy):
    contract.publish()
    standin = make_policy(TRUSTGATE_RELAY_HOSTS="10.0.0.5, 10.0.0.6")

    [classifier] = standin.configured("configure_bounce_classifier")
    assert classifier["files"][0].endswith("iana.toml")
    [throttles] = standin.configured("configure_redis_throttles")
    assert throttles["node"] == contract.url
    [listener] = standin.configured("start_esmtp_listener")
    assert listener["relay_hosts"] == ["10.0.0.5", "10.0.0.6"]
    assert listener["trace_headers"] == {"supplemental_header": False}
    [logs] = standin.configured("configure_local_logs")
    assert logs["meta"] == ["tenant", "campaign", "kind"]
    assert len(standin.configured("define_spool")) == 2
    assert standin.configured("start_http_listener")
