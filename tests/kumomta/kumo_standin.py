"""Runs the KumoMTA policy (kumomta/policy/init.lua) in Lua 5.4 with a stand-in `kumo` module.

KumoMTA cannot be installed here, so the policy runs in lupa's Lua 5.4 with `kumo`, `redis` and
`policy-extras.log_hooks` resolvable through `package.preload`. The stand-in follows KumoMTA's
documented API (see standin.lua); Redis queries go to a real server, HTTP requests are real, and
time is a controllable clock so memoize TTLs are tested without sleeping.
"""

from __future__ import annotations

import base64
import ipaddress
import json
import os
import urllib.error
import urllib.request
import uuid
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from email.utils import getaddresses
from pathlib import Path
from typing import Any

import dkim
import redis
from lupa import lua54

HERE = Path(__file__).resolve().parent
POLICY_DIR = HERE.parents[1] / "kumomta" / "policy"
STANDIN_LUA = HERE / "standin.lua"
LOG_HOOKS_LUA = HERE / "log_hooks_standin.lua"

HOOK_NAME = "trustgate"


class Rejected(Exception):
    """The policy called kumo.reject(code, message)."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(f"{code} {message}")
        self.code = code
        self.message = message


class PolicyError(Exception):
    """A Lua error that is not a kumo.reject (KumoMTA would log it and fail the event)."""


@dataclass
class FakeClock:
    """The time memoize sees; tests advance it instead of sleeping."""

    now: float = 1_700_000_000.0

    def advance(self, seconds: float) -> None:
        self.now += seconds


def to_python(value: Any) -> Any:
    """A Lua table as a list (keys 1..n) or a dict; other values unchanged."""
    if lua54.lua_type(value) != "table":
        return value
    items = list(value.items())
    keys = [key for key, _ in items]
    if (
        keys
        and all(isinstance(k, int) for k in keys)
        and sorted(keys) == list(range(1, len(keys) + 1))
    ):
        return [to_python(v) for _, v in sorted(items)]
    return {str(k): to_python(v) for k, v in items}


class KumoStandin:
    """One Lua runtime with the stand-in `kumo`; load the policy with `load_policy()`."""

    def __init__(
        self,
        *,
        env: Mapping[str, str] | None = None,
        clock: FakeClock | None = None,
        memoize: bool = True,
    ) -> None:
        self.clock = clock or FakeClock()
        self.redis_calls: Counter[str] = Counter()
        self._redis_clients: dict[tuple, redis.Redis] = {}
        self._http = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        self.lua = lua54.LuaRuntime(unpack_returned_tuples=True, register_eval=False)
        py = self.lua.table_from(
            {
                "now": lambda: self.clock.now,
                "redis_query": self._redis_query,
                "http_send": self._http_send,
                "json_encode": self._json_encode,
                "json_parse": self._json_parse,
                "dkim_sign": self._dkim_sign,
                "parse_addresses": self._parse_addresses,
                "trace_payload": self._trace_payload,
                "base64": lambda text: base64.b64encode(text.encode()).decode(),
                "is_ip_address": self._is_ip_address,
            }
        )
        load = self.lua.eval("function(path, py) return assert(loadfile(path))(py) end")
        self._standin, self._kumo, self._redis = load(str(STANDIN_LUA), py)
        self._standin.memoize_enabled = memoize
        install = self.lua.eval(
            """
            function(kumo, redis, log_hooks_path, env)
              package.preload['kumo'] = function() return kumo end
              package.preload['redis'] = function() return redis end
              package.preload['policy-extras.log_hooks'] = function()
                return assert(loadfile(log_hooks_path))()
              end
              -- The node's environment is the test's, not this process's.
              os.getenv = function(name) return env[name] end
            end
            """
        )
        install(self._kumo, self._redis, str(LOG_HOOKS_LUA), self.lua.table_from(dict(env or {})))

    # --- loading and events ----------------------------------------------------------------

    def load_policy(self, policy_dir: Path = POLICY_DIR) -> None:
        """Load init.lua the way kumod does, with policy_dir on package.path."""
        package = self.lua.globals().package
        package.path = f"{policy_dir}/?.lua;" + package.path
        self._outcome(self._standin.load_policy(str(policy_dir / "init.lua")))

    def start(self) -> None:
        """Fire pre_init then init, as kumod does at start-up."""
        self.fire("pre_init")
        self.fire("init")

    def run(self, code: str) -> Any:
        """Run a Lua chunk as top-level policy code (it may `require 'kumo'`)."""
        try:
            return self.lua.execute(code)
        except lua54.LuaError as error:
            raise PolicyError(str(error)) from error

    def fire(self, event: str, *args: Any) -> Any:
        """Call the handler(s) of an event; raises Rejected or PolicyError."""
        return self._outcome(self._standin.fire(event, *args))

    def handler_count(self, event: str) -> int:
        return self._standin.handler_count(event)

    def configured(self, name: str) -> list[dict]:
        """The parameters of each call to kumo.<name> (configure_*, define_spool, start_*)."""
        return to_python(self._standin.configured[name]) or []

    @property
    def logs(self) -> list[dict]:
        return to_python(self._standin.logs) or []

    def _outcome(self, result: Any) -> Any:
        status, *rest = result if isinstance(result, tuple) else (result,)
        if status == "ok":
            return rest[0] if len(rest) == 1 else (tuple(rest) or None)
        if status == "none":
            return None
        if status == "reject":
            raise Rejected(int(rest[0]), str(rest[1]))
        raise PolicyError(str(rest[0]) if rest else "unknown Lua error")

    # --- messages --------------------------------------------------------------------------

    def new_message(
        self,
        data: str,
        *,
        sender: str = "bounces@mail.example.net",
        recipient: str = "someone@example.org",
        meta: Mapping[str, Any] | None = None,
    ) -> Any:
        """A message object as the reception events receive it."""
        return self._standin.new_message(
            sender, recipient, data, self.lua.table_from(dict(meta or {}), recursive=True)
        )

    def get_meta(self, msg: Any, key: str) -> Any:
        return to_python(msg._meta[key])

    def header_values(self, msg: Any, name: str) -> list[str]:
        return to_python(msg.get_all_named_header_values(msg, name)) or []

    def message_data(self, msg: Any) -> str:
        return msg.get_data(msg)

    def message_ops(self, msg: Any) -> list[str]:
        """Every change made to the message, in order (dkim_sign:..., set_meta:...)."""
        return to_python(msg._ops) or []

    def deliver_log_records(self, records: Iterable[Mapping], hook: str = HOOK_NAME) -> list[str]:
        """Deliver log records through the hook as kumod would; raises Rejected on failure."""
        table = self.lua.table_from([dict(r) for r in records], recursive=True)
        return to_python(self._outcome(self._standin.deliver_log_records(hook, table)))

    # --- Redis -----------------------------------------------------------------------------

    @property
    def redis_call_count(self) -> int:
        return sum(self.redis_calls.values())

    def reset_redis_calls(self) -> None:
        self.redis_calls.clear()

    def close(self) -> None:
        for client in self._redis_clients.values():
            client.close()
        self._redis_clients.clear()

    def _redis_query(self, node, connect_timeout, response_timeout, command, *args):
        self.redis_calls[str(command).upper()] += 1
        try:
            key = (node, connect_timeout, response_timeout)
            client = self._redis_clients.get(key)
            if client is None:
                # RESP2 and raw replies, as KumoMTA's client returns them (HGETALL is a flat list).
                client = redis.Redis.from_url(
                    node,
                    protocol=2,
                    socket_connect_timeout=connect_timeout,
                    socket_timeout=response_timeout,
                    retry=None,
                )
                client.response_callbacks.clear()
                self._redis_clients[key] = client
            value = client.execute_command(command, *args)
        except redis.RedisError as error:
            return False, f"redis: {error}"
        return True, self._to_lua(value)

    def _to_lua(self, value: Any) -> Any:
        if isinstance(value, list | tuple):
            table = self.lua.table()
            for index, item in enumerate(value, start=1):
                if item is not None:
                    table[index] = self._to_lua(item)
            return table
        return value

    # --- HTTP, JSON, DKIM ------------------------------------------------------------------

    def _http_send(self, method, url, headers, body, timeout):
        request = urllib.request.Request(
            url,
            data=body.encode() if isinstance(body, str) else body,
            headers=to_python(headers) or {},
            method=method,
        )
        try:
            with self._http.open(request, timeout=timeout) as response:
                text = response.read().decode("utf-8", "replace")
                return True, response.status, response.reason, text
        except urllib.error.HTTPError as error:
            return True, error.code, error.reason, error.read().decode("utf-8", "replace")
        except (urllib.error.URLError, OSError) as error:
            return False, f"error sending request for url ({url}): {error}"

    def _json_encode(self, value):
        try:
            return True, json.dumps(to_python(value), separators=(",", ":"))
        except (TypeError, ValueError) as error:
            return False, f"json_encode: {error}"

    def _json_parse(self, text):
        try:
            value = json.loads(text)
        except (TypeError, ValueError) as error:
            return False, f"json_parse: {error}"
        if isinstance(value, dict | list):
            return True, self.lua.table_from(value, recursive=True)
        return True, value

    def _dkim_sign(self, data, domain, selector, headers, key_data):
        try:
            signature = dkim.sign(
                data.encode(),
                selector.encode(),
                domain.encode(),
                key_data.encode(),
                include_headers=[name.encode() for name in to_python(headers)],
                canonicalize=(b"relaxed", b"relaxed"),
            ).decode()
        except (dkim.DKIMException, ValueError) as error:
            return False, str(error), None
        name, _, raw = signature.partition(":")
        return True, name, raw.rstrip("\r\n")

    def _parse_addresses(self, value):
        found = [{"name": name, "email": email} for name, email in getaddresses([value]) if email]
        return self.lua.table_from(found, recursive=True)

    def _trace_payload(self, payload):
        # The marker key first, then the recipient and meta, like KumoMTA's X-KumoRef.
        document = {"_@_": "\\_/", **to_python(payload)}
        return base64.b64encode(json.dumps(document, separators=(",", ":")).encode()).decode()

    @staticmethod
    def _is_ip_address(value) -> bool:
        try:
            ipaddress.ip_address(value)
        except ValueError:
            return False
        return True


# --- Redis contract helpers --------------------------------------------------------------------


def publish_map(
    client: redis.Redis,
    prefix: str,
    *,
    tenants: Mapping[str, str],
    pools: Mapping[str, Mapping] | None = None,
    sources: Mapping[str, Mapping] | None = None,
    settings: Mapping[str, Any] | None = None,
    dkim_keys: Mapping[str, tuple[str, str]] | None = None,
) -> None:
    """Write the keys the platform exports (docs/pool-map.md#redis-keys) under `prefix`."""
    pipe = client.pipeline()
    if tenants:
        pipe.hset(f"{prefix}tenant_pool", mapping=dict(tenants))
    if pools:
        pipe.hset(f"{prefix}pools", mapping={k: json.dumps(v) for k, v in pools.items()})
    if sources:
        pipe.hset(f"{prefix}sources", mapping={k: json.dumps(v) for k, v in sources.items()})
    if settings:
        pipe.hset(
            f"{prefix}settings",
            mapping={k: v if isinstance(v, str) else json.dumps(v) for k, v in settings.items()},
        )
    for domain, (selector, pem) in (dkim_keys or {}).items():
        pipe.hset(f"{prefix}dkim:{domain}", mapping={"selector": selector, "key": pem})
    pipe.incr(f"{prefix}map_version")
    pipe.execute()


def delete_prefix(client: redis.Redis, prefix: str) -> None:
    keys = list(client.scan_iter(match=f"{prefix}*", count=1000))
    if keys:
        client.delete(*keys)


def policy_env(redis_url: str, prefix: str, **extra: str) -> dict[str, str]:
    """The node environment the policy reads (kumomta/policy/node_config.lua)."""
    return {"TRUSTGATE_REDIS_URL": redis_url, "TRUSTGATE_KEY_PREFIX": prefix, **extra}


def message_text(
    *,
    tenant: str | None,
    from_address: str = "News <news@brand.example>",
    to: str = "someone@example.org",
    campaign: str | None = None,
    kind: str | None = None,
) -> str:
    """An RFC 5322 message as the platform injects it."""
    headers = [f"From: {from_address}", f"To: {to}", "Subject: Hello", "Message-ID: <1@brand>"]
    if tenant is not None:
        headers.append(f"X-Tenant: {tenant}")
    if campaign is not None:
        headers.append(f"X-Campaign: {campaign}")
    if kind is not None:
        headers.append(f"X-Kind: {kind}")
    return "\r\n".join(headers) + "\r\n\r\nHello there.\r\n"


TIERS = ("premium", "standard", "rehab")


def redis_calls_for(
    messages: int,
    tenants: int,
    *,
    memoize: bool = True,
    redis_url: str | None = None,
) -> int:
    """Redis queries the policy makes to receive and route `messages` spread over `tenants`.

    Each message goes through reception (tenant check, trace header, DKIM key lookup) and
    get_queue_config, all within one memoize TTL (the clock does not move). Every tenant signs
    with its own domain, whose DKIM key lookup is made (and cached) even though none is
    published, so that no signing cost is measured. Policy loading is not counted.
    """
    url = redis_url or os.environ["REDIS_URL"]
    prefix = f"bench:{uuid.uuid4().hex}:"
    client = redis.Redis.from_url(url)
    standin = None
    try:
        tenant_ids = [f"dom_{index:06d}" for index in range(tenants)]
        publish_map(
            client,
            prefix,
            tenants={tid: TIERS[index % len(TIERS)] for index, tid in enumerate(tenant_ids)},
            settings={"memoize_ttl": "5 seconds"},
        )
        standin = KumoStandin(env=policy_env(url, prefix), memoize=memoize)
        standin.load_policy()
        standin.start()
        standin.reset_redis_calls()
        for index in range(messages):
            tenant = tenant_ids[index % tenants]
            msg = standin.new_message(
                message_text(tenant=tenant, from_address=f"news@{tenant}.example"),
                recipient=f"user{index}@example.org",
            )
            standin.fire("smtp_server_message_received", msg, None)
            standin.fire("get_queue_config", "example.org", tenant, None, None)
        return standin.redis_call_count
    finally:
        if standin is not None:
            standin.close()
        delete_prefix(client, prefix)
        client.close()
