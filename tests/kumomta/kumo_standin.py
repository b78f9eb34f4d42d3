"""Runs the KumoMTA policy (kumomta/policy/init.lua) in Lua 5.4 with a stand-in `kumo` module.

KumoMTA cannot be installed here, so the policy runs in lupa's Lua 5.4 with `kumo`, `redis`,
`policy-extras.log_hooks` and `policy-extras.shaping` resolvable through `package.preload`. The
stand-in follows KumoMTA's documented API and its observed behaviour (see standin.lua): Redis
queries go to a real server, HTTP requests are real, and time is a controllable clock so memoize
TTLs are tested without sleeping.

`KumoStandin` is one kumod process. Its Lua *contexts* come and go as on a real node: a context
is a fresh Lua runtime that has loaded init.lua; `recycle()` replaces it (as kumod does every few
minutes) and a config epoch bump discards it. What kumod keeps in Rust outlives contexts and is
kept here in Python: memoize caches, the config epoch, the test's MX table, what the `init`
event configured, and the logs.
"""

from __future__ import annotations

import base64
import hashlib
import ipaddress
import itertools
import json
import os
import re
import tomllib
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections import Counter, OrderedDict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from email.utils import getaddresses
from pathlib import Path
from typing import Any

import dkim
import redis
from lupa import lua54

HERE = Path(__file__).resolve().parent
POLICY_DIR = HERE.parents[1] / "kumomta" / "policy"
SHAPING_FILE = POLICY_DIR / "shaping.toml"
STANDIN_LUA = HERE / "standin.lua"
LOG_HOOKS_LUA = HERE / "log_hooks_standin.lua"
SHAPING_LUA = HERE / "shaping_standin.lua"
# KumoMTA's own shaping file is not available here: this fixture stands in for it.
STOCK_SHAPING_PATH = "/opt/kumomta/share/policy-extras/shaping.toml"
STOCK_SHAPING = HERE / "stock_shaping.toml"

HOOK_NAME = "trustgate"
# memoize keeps a failed lookup this long, whatever the cache's ttl.
MEMOIZE_ERROR_TTL = 60.0
# Redis replies that are a status ("+OK"), which KumoMTA hands to Lua as `true`.
STATUS_COMMANDS = frozenset({"SET", "MSET", "SETEX", "PSETEX", "RENAME", "SELECT", "FLUSHDB"})


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


# --- memoize -----------------------------------------------------------------------------------


class _Table(dict):
    """A cached Lua table: integer or string keys, as KumoMTA's memoize keeps them."""


def _from_lua(value: Any) -> Any:
    if lua54.lua_type(value) == "table":
        return _Table((key, _from_lua(item)) for key, item in value.items())
    return value


@dataclass
class _Entry:
    kind: str  # 'null', 'single', 'multi' or 'error'
    value: Any
    expires: float
    built: dict[int, Any] = field(default_factory=dict)  # the Lua copy, per context


@dataclass
class _Cache:
    params: tuple
    entries: OrderedDict = field(default_factory=OrderedDict)


# --- shaping files -----------------------------------------------------------------------------

_DOMAIN_NAME = re.compile(r"^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*\.?$")
_DURATION = re.compile(r"^\s*(\d+\s*[A-Za-z]+\s*)+$")
_ACTIONS = {"Suspend", "SuspendTenant", "SuspendCampaign", "Bounce", "BounceTenant"}
_ACTIONS |= {"BounceCampaign"}
_MERGEABLE = {
    "additional_connection_limits",
    "additional_message_rate_throttles",
    "additional_source_selection_rates",
}


def _merge_params(target: dict, source: Mapping) -> None:
    for key, value in source.items():
        if key in _MERGEABLE and isinstance(target.get(key), dict) and isinstance(value, dict):
            target[key].update(value)
        else:
            target[key] = json.loads(json.dumps(value))


def _suffix_matches(candidate: str, suffix: str) -> bool:
    return candidate.removesuffix(".").endswith(suffix)


class ShapingData:
    """Shaping files merged the way `kumo.shaping.load` documents it: `["default"]`, domains
    (rolled up to their MX site unless `mx_rollup = false`), providers (`[provider."name"]`
    with `match` rules), each with `sources`, `automation` and `replace_base`."""

    def __init__(self, egress_fields: frozenset[str], mx: Mapping[str, list[str]]) -> None:
        self.egress_fields = egress_fields
        self.mx = mx
        self.by_site: dict[str, dict] = {}
        self.by_domain: dict[str, dict] = {}
        self.providers: dict[str, dict] = {}
        self.warnings: list[str] = []

    def site_of(self, domain: str) -> str | None:
        hosts = self.mx.get(domain.lower())
        if not hosts:
            return None
        return ",".join(sorted(h.lower() for h in hosts))

    def _check(self, where: str, params: Mapping, extra: set[str] = frozenset()) -> None:
        for key in params:
            if key not in self.egress_fields and key not in extra:
                raise ValueError(f"{where}: `{key}` is not an egress path parameter")

    def _check_automation(self, where: str, rules: list) -> None:
        for rule in rules:
            regexes = rule["regex"] if isinstance(rule["regex"], list) else [rule["regex"]]
            for regex in regexes:
                re.compile(regex)
            actions = rule["action"] if isinstance(rule["action"], list) else [rule["action"]]
            for action in actions:
                if isinstance(action, dict):
                    [(kind, config)] = action.items()
                    if kind not in ("SetConfig", "SetDomainConfig"):
                        raise ValueError(f"{where}: unknown automation action {action!r}")
                    self._check(where, {config["name"]: config["value"]})
                elif action not in _ACTIONS:
                    raise ValueError(f"{where}: unknown automation action {action!r}")
            if not _DURATION.match(str(rule["duration"])):
                raise ValueError(f"{where}: bad automation duration {rule['duration']!r}")
            extra = set(rule) - {"regex", "action", "duration", "trigger", "match_internal"}
            if extra:
                raise ValueError(f"{where}: unknown automation fields {sorted(extra)}")

    @staticmethod
    def _partial(raw: Mapping) -> tuple[dict, bool, bool]:
        raw = dict(raw)
        rollup = raw.pop("mx_rollup", True)
        replace = raw.pop("replace_base", False)
        entry = {
            "automation": list(raw.pop("automation", [])),
            "sources": {name: dict(value) for name, value in raw.pop("sources", {}).items()},
            "params": raw,
        }
        return entry, rollup, replace

    @staticmethod
    def _merge_entry(target: dict, name: str, entry: dict, replace: bool) -> None:
        existing = target.get(name)
        if existing is None or replace:
            target[name] = entry
            return
        _merge_params(existing["params"], entry["params"])
        for source, params in entry["sources"].items():
            _merge_params(existing["sources"].setdefault(source, {}), params)
        existing["automation"].extend(entry["automation"])

    def merge(self, where: str, document: Mapping) -> None:
        for name, raw in document.items():
            if name == "provider":
                for provider, spec in raw.items():
                    self._merge_provider(f"{where}: provider {provider}", provider, spec)
                continue
            entry, rollup, replace = self._partial(raw)
            self._check(f"{where}: {name}", entry["params"])
            self._check_automation(f"{where}: {name}", entry["automation"])
            if name == "default" or not rollup:
                self._merge_entry(self.by_domain, name, entry, replace)
                continue
            site = self.site_of(name)
            if site is None:
                self.warnings.append(f"{where}: {name}: no MX, entry ignored")
                continue
            self._merge_entry(self.by_site, site, entry, replace)

    def _merge_provider(self, where: str, name: str, spec: Mapping) -> None:
        spec = dict(spec)
        rules = spec.pop("match", [])
        limits = {
            key: spec.pop(key)
            for key in ("provider_connection_limit", "provider_max_message_rate")
            if key in spec
        }
        entry, _rollup, replace = self._partial(spec)
        self._check(where, entry["params"], {"provider_source_selection_rate"})
        self._check_automation(where, entry["automation"])
        for rule in rules:
            [(kind, _value)] = rule.items()
            if kind not in ("MXSuffix", "DomainSuffix", "HostName"):
                raise ValueError(f"{where}: unknown match rule {rule!r}")
        existing = self.providers.get(name)
        if existing is None or replace:
            self.providers[name] = {"match": list(rules), "limits": limits, **entry}
            return
        existing["match"].extend(rules)
        existing["limits"].update(limits)
        self._merge_entry({name: existing}, name, entry, False)

    def _provider_matches(self, provider: dict, domain: str) -> bool:
        need_mx = False
        for rule in provider["match"]:
            [(kind, value)] = rule.items()
            if kind == "DomainSuffix" and _suffix_matches(domain, value):
                return True
            need_mx = need_mx or kind != "DomainSuffix"
        hosts = self.mx.get(domain.lower()) if need_mx else None
        if not hosts:
            return False
        for host in hosts:
            host = host.lower().removesuffix(".")
            if not any(
                (kind == "MXSuffix" and _suffix_matches(host, value))
                or (kind == "HostName" and host == value.lower().removesuffix("."))
                for rule in provider["match"]
                for kind, value in rule.items()
            ):
                return False
        return True

    @staticmethod
    def _apply_provider(name: str, provider: dict, source: str, target: dict) -> None:
        implied: dict[str, Any] = {"provider_name": name}
        limits = provider["limits"]
        if "provider_connection_limit" in limits:
            implied["additional_connection_limits"] = {
                f"shaping-provider-{name}-{source}-limit": str(limits["provider_connection_limit"])
            }
        if "provider_max_message_rate" in limits:
            implied["additional_message_rate_throttles"] = {
                f"shaping-provider-{name}-{source}-rate": limits["provider_max_message_rate"]
            }
        if "provider_source_selection_rate" in target:
            implied["additional_source_selection_rates"] = {
                f"shaping-provider-{name}-{source}-selection-rate": target.pop(
                    "provider_source_selection_rate"
                )
            }
        _merge_params(target, implied)

    def params(self, domain: str, source: str, site: str) -> dict:
        params: dict[str, Any] = {}
        if "default" in self.by_domain:
            _merge_params(params, self.by_domain["default"]["params"])
        if _DOMAIN_NAME.match(domain):
            with_sources = []
            for name, provider in self.providers.items():
                if self._provider_matches(provider, domain):
                    _merge_params(params, provider["params"])
                    self._apply_provider(name, provider, source, params)
                    if provider["sources"]:
                        with_sources.append((name, provider))
            for name, provider in with_sources:
                if source in provider["sources"]:
                    _merge_params(params, provider["sources"][source])
                    self._apply_provider(name, provider, source, params)
        for table, key in ((self.by_site, site), (self.by_domain, domain)):
            if key in table:
                _merge_params(params, table[key]["params"])
        for table, key in ((self.by_site, site), (self.by_domain, domain)):
            if key in table and source in table[key]["sources"]:
                _merge_params(params, table[key]["sources"][source])
        return params

    def rules(self) -> Iterable[dict]:
        for table in (self.by_domain, self.by_site, self.providers):
            for entry in table.values():
                yield from entry["automation"]

    def matches(self, record: Mapping) -> bool:
        content = str((record.get("response") or {}).get("content", ""))
        for rule in self.rules():
            if content.startswith("KumoMTA internal: ") and not rule.get("match_internal"):
                continue
            regexes = rule["regex"] if isinstance(rule["regex"], list) else [rule["regex"]]
            if any(re.search(regex, content) for regex in regexes):
                return True
        return False


# --- one Lua context ---------------------------------------------------------------------------


class _Context:
    """A Lua runtime with the stand-in modules, as kumod builds one per pooled context."""

    _ids = itertools.count(1)

    def __init__(self, process: KumoStandin) -> None:
        self.id = next(self._ids)
        self.process = process
        self.lua = lua54.LuaRuntime(unpack_returned_tuples=True, register_eval=False)
        p = process
        py = self.lua.table_from(
            {
                "now": lambda: p.clock.now,
                "new_userdata": object,
                "log": p._log,
                "yield_refused": p.refused_yields.append,
                "record_config": p._record_config,
                "bump_config_epoch": p.bump_config_epoch,
                "memoize_define": p._memoize_define,
                "memoize_get": lambda name, key: p._memoize_get(self, name, key),
                "memoize_put": p._memoize_put,
                "memoize_fail": p._memoize_fail,
                "memoize_built": lambda name, key: p._memoize_built(self, name, key),
                "redis_query": lambda *args: p._redis_query(self, *args),
                "float_text": repr,
                "http_send": p._http_send,
                "json_encode": p._json_encode,
                "json_parse": lambda text: p._json_parse(self, text),
                "dkim_sign": p._dkim_sign,
                "parse_addresses": lambda value: self.lua.table_from(
                    p._parse_addresses(value), recursive=True
                ),
                "trace_payload": p._trace_payload,
                "base64": lambda text: base64.b64encode(text.encode()).decode(),
                "is_ip_address": p._is_ip_address,
                "shaping_load": lambda names: p._shaping_load(self, names),
                "shaping_params": lambda handle, *args: self.lua.table_from(
                    p._shaping[handle].params(*args), recursive=True
                ),
                "shaping_matches": lambda handle, record: p._shaping[handle].matches(
                    to_python(record)
                ),
            }
        )
        load = self.lua.eval("function(path, py) return assert(loadfile(path))(py) end")
        self.standin, self.kumo, self.redis = load(str(STANDIN_LUA), py)
        self.standin.memoize_enabled = process.memoize_enabled
        install = self.lua.eval(
            """
            function(kumo, redis, standin, log_hooks_path, shaping_path, env)
              package.preload['kumo'] = function() return kumo end
              package.preload['redis'] = function() return redis end
              package.preload['policy-extras.log_hooks'] = function()
                return assert(loadfile(log_hooks_path))()
              end
              package.preload['policy-extras.shaping'] = function()
                return assert(loadfile(shaping_path))(standin.shaping)
              end
              -- The node's environment is the test's, not this process's.
              os.getenv = function(name) return env[name] end
            end
            """
        )
        install(
            self.kumo,
            self.redis,
            self.standin,
            str(LOG_HOOKS_LUA),
            str(SHAPING_LUA),
            self.lua.table_from(dict(process.env)),
        )
        self.egress_fields = frozenset(str(k) for k, _ in self.standin.EGRESS_PATH.items())

    def to_lua(self, value: Any) -> Any:
        if isinstance(value, dict):
            table = self.lua.table()
            for key, item in value.items():
                table[key] = self.to_lua(item)
            return table
        if isinstance(value, list):
            table = self.lua.table()
            for index, item in enumerate(value, start=1):
                table[index] = self.to_lua(item)
            return table
        return value


# --- the process -------------------------------------------------------------------------------


class KumoStandin:
    """One kumod process running the policy; load it with `load_policy()`, then `start()`."""

    def __init__(
        self,
        *,
        env: Mapping[str, str] | None = None,
        clock: FakeClock | None = None,
        memoize: bool = True,
        mx: Mapping[str, list[str]] | None = None,
    ) -> None:
        self.env = dict(env or {})
        self.clock = clock or FakeClock()
        self.memoize_enabled = memoize
        # The test's DNS: recipient domain -> MX host names (for shaping's MXSuffix rules).
        self.mx: dict[str, list[str]] = {k.lower(): list(v) for k, v in (mx or {}).items()}
        self.epoch = 0
        self.contexts_created = 0
        self.redis_calls: Counter[str] = Counter()
        # Every Redis query in order, as its arguments, with the URL it went to.
        self.redis_log: list[tuple[str, list[str]]] = []
        # Called with (url, arguments) before each Redis query: lets a test change Redis between
        # two queries of one event (another node writing meanwhile).
        self.before_redis_query: Callable[[str, list[str]], None] | None = None
        self._redis_clients: dict[tuple, redis.Redis] = {}
        self._http = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        self._caches: dict[str, _Cache] = {}
        self._configured: dict[str, list] = {}
        self._logs: list[dict] = []
        # Tracebacks of async calls made where Lua cannot yield (a `require`d module's main
        # chunk): on a real node each is an error, whether or not the policy caught it.
        self.refused_yields: list[str] = []
        self._shaping: dict[str, ShapingData] = {}
        self._policy_dir: Path | None = None
        self._context: _Context | None = None

    # --- contexts --------------------------------------------------------------------------

    def load_policy(self, policy_dir: Path = POLICY_DIR) -> None:
        """Load init.lua in a fresh context the way kumod does, with policy_dir on package.path."""
        self._policy_dir = policy_dir
        self.recycle()

    def recycle(self) -> None:
        """Replace the Lua context with a fresh one that loads init.lua again (kumod does this
        every 300 s or 1,024 uses, and after an epoch bump); `init` does not run again."""
        context = _Context(self)
        self._context = context
        self.contexts_created += 1
        if self._policy_dir is None:
            return
        package = context.lua.globals().package
        package.path = f"{self._policy_dir}/?.lua;" + package.path
        self._outcome(context.standin.load_policy(str(self._policy_dir / "init.lua")))

    def bump_config_epoch(self) -> None:
        """POST /api/admin/bump-config-epoch: a new epoch, and every pooled context discarded."""
        self.epoch += 1
        self._context = None

    @property
    def context(self) -> _Context:
        if self._context is None:
            self.recycle()
        assert self._context is not None
        return self._context

    @property
    def _standin(self) -> Any:
        return self.context.standin

    def start(self) -> None:
        """Fire pre_init then init, as kumod does at start-up."""
        self.fire("pre_init")
        self.fire("init")

    def run(self, code: str) -> Any:
        """Run a Lua chunk as top-level policy code (it may `require 'kumo'`)."""
        return self._outcome(self._standin.run_chunk(code))

    def fire(self, event: str, *args: Any) -> Any:
        """Call the handler(s) of an event; raises Rejected or PolicyError."""
        return self._outcome(self._standin.fire(event, *args))

    def handler_count(self, event: str) -> int:
        return self._standin.handler_count(event)

    def configured(self, name: str) -> list[dict]:
        """The parameters of each call to kumo.<name> (configure_*, define_spool, start_*,
        spawn_task)."""
        return list(self._configured.get(name, []))

    @property
    def logs(self) -> list[dict]:
        return list(self._logs)

    def _outcome(self, result: Any) -> Any:
        status, *rest = result if isinstance(result, tuple) else (result,)
        if status == "ok":
            return rest[0] if len(rest) == 1 else (tuple(rest) or None)
        if status == "none":
            return None
        if status == "reject":
            raise Rejected(int(rest[0]), str(rest[1]))
        raise PolicyError(str(rest[0]) if rest else "unknown Lua error")

    def _log(self, level: str, text: str) -> None:
        self._logs.append({"level": level, "text": text})

    def _record_config(self, name: str, params: Any) -> None:
        self._configured.setdefault(name, []).append(to_python(params))

    # --- messages --------------------------------------------------------------------------

    def new_message(
        self,
        data: str,
        *,
        sender: str = "bounces@mail.example.net",
        recipient: str = "someone@example.org",
        meta: Mapping[str, Any] | None = None,
    ) -> Any:
        """A message object as the reception events receive it (in the current context)."""
        lua = self.context.lua
        return self._standin.new_message(
            sender, recipient, data, lua.table_from(dict(meta or {}), recursive=True)
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
        table = self.context.lua.table_from([dict(r) for r in records], recursive=True)
        return to_python(self._outcome(self._standin.deliver_log_records(hook, table)))

    # --- memoize ---------------------------------------------------------------------------

    def _memoize_define(self, name, ttl, capacity, invalidate_with_epoch, allow_stale) -> None:
        params = (float(ttl), int(capacity), bool(invalidate_with_epoch), bool(allow_stale))
        cache = self._caches.get(name)
        if cache is None or cache.params != params:  # other parameters replace the cache
            self._caches[name] = _Cache(params)

    def _memoize_key(self, name: str, key: str) -> tuple[_Cache, tuple]:
        cache = self._caches[name]
        _ttl, _capacity, invalidate_with_epoch, allow_stale = cache.params
        epoch = self.epoch if invalidate_with_epoch and not allow_stale else None
        return cache, (epoch, key)

    def _memoize_get(self, context: _Context, name: str, key: str) -> tuple:
        cache, full_key = self._memoize_key(name, key)
        entry = cache.entries.get(full_key)
        if entry is None:
            return ("miss",)
        if entry.expires <= self.clock.now:
            del cache.entries[full_key]
            return ("miss",)
        cache.entries.move_to_end(full_key)
        if entry.kind == "error":
            return ("error", entry.value)
        return ("hit", entry.kind, self._built(context, entry))

    def _store(self, name: str, key: str, entry: _Entry) -> None:
        cache, full_key = self._memoize_key(name, key)
        cache.entries[full_key] = entry
        cache.entries.move_to_end(full_key)
        while len(cache.entries) > cache.params[1]:
            cache.entries.popitem(last=False)

    def _memoize_put(self, name: str, key: str, kind: str, value: Any) -> None:
        ttl = self._caches[name].params[0]
        if kind == "multi":
            value = [item for _, item in sorted(_from_lua(value).items())]
        else:
            value = _from_lua(value)
        self._store(name, key, _Entry(kind, value, self.clock.now + ttl))

    def _memoize_fail(self, name: str, key: str, text: str) -> None:
        self._store(name, key, _Entry("error", text, self.clock.now + MEMOIZE_ERROR_TTL))

    def _memoize_built(self, context: _Context, name: str, key: str) -> Any:
        cache, full_key = self._memoize_key(name, key)
        return self._built(context, cache.entries[full_key])

    def _built(self, context: _Context, entry: _Entry) -> Any:
        if entry.kind == "null":
            return None
        if context.id not in entry.built:
            if entry.kind == "multi":
                entry.built[context.id] = context.to_lua(
                    [dict(item) if isinstance(item, _Table) else item for item in entry.value]
                )
            else:
                entry.built[context.id] = context.to_lua(entry.value)
        return entry.built[context.id]

    def memoized_keys(self, name: str) -> list[tuple]:
        """The (epoch, arguments) keys a memoize cache holds."""
        cache = self._caches.get(name)
        return list(cache.entries) if cache else []

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

    def _redis_query(self, context, node, connect_timeout, response_timeout, args):
        args = [str(a) for a in to_python(args) or []]
        command = args[0].upper() if args else ""
        self.redis_calls[command] += 1
        self.redis_log.append((node, args))
        if self.before_redis_query is not None:
            self.before_redis_query(node, args)
        try:
            key = (node, connect_timeout, response_timeout)
            client = self._redis_clients.get(key)
            if client is None:
                # Raw replies, as KumoMTA's client returns them: RESP2 (HGETALL is a flat
                # list) unless the URL asks for RESP3 (HGETALL is a map).
                parts = urllib.parse.urlsplit(node)
                query = urllib.parse.parse_qs(parts.query)
                protocol = 3 if query.pop("protocol", ["resp2"])[0].lower() == "resp3" else 2
                url = parts._replace(query=urllib.parse.urlencode(query, doseq=True)).geturl()
                client = redis.Redis.from_url(
                    url,
                    protocol=protocol,
                    socket_connect_timeout=connect_timeout,
                    socket_timeout=response_timeout,
                    retry=None,
                )
                client.response_callbacks.clear()
                self._redis_clients[key] = client
            value = client.execute_command(*args)
        except redis.RedisError as error:
            return False, f"redis: {error}"
        if command in STATUS_COMMANDS and value in (b"OK", "OK"):
            return True, True
        return True, self._reply_to_lua(context, value)

    def _reply_to_lua(self, context: _Context, value: Any) -> Any:
        # Nil elements of an array collapse (KumoMTA pushes each onto a Lua sequence).
        if isinstance(value, list | tuple | set):
            table = context.lua.table()
            index = 0
            for item in value:
                if item is not None:
                    index += 1
                    table[index] = self._reply_to_lua(context, item)
            return table
        if isinstance(value, dict):
            table = context.lua.table()
            for key, item in value.items():
                table[self._reply_to_lua(context, key)] = self._reply_to_lua(context, item)
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

    def _json_parse(self, context: _Context, text):
        try:
            value = json.loads(text)
        except (TypeError, ValueError) as error:
            return False, f"json_parse: {error}"
        return True, context.to_lua(value)

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

    @staticmethod
    def _parse_addresses(value) -> list[dict]:
        return [{"name": name, "email": email} for name, email in getaddresses([value]) if email]

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

    # --- shaping ---------------------------------------------------------------------------

    def _shaping_load(self, context: _Context, names) -> tuple:
        data = ShapingData(context.egress_fields, self.mx)
        try:
            for name in to_python(names) or []:
                if name.startswith(("http://", "https://")):
                    try:
                        with self._http.open(name, timeout=5) as response:
                            text = response.read().decode()
                    except (urllib.error.URLError, OSError) as error:
                        # A URL that cannot be read is skipped: the other files still apply.
                        data.warnings.append(f"{name}: {error}")
                        self._log("warn", f"shaping: skipping {name}: {error}")
                        continue
                elif name == STOCK_SHAPING_PATH:
                    text = STOCK_SHAPING.read_text()
                else:
                    text = Path(name).read_text()
                data.merge(name, tomllib.loads(text))
        except (OSError, ValueError, KeyError, re.error) as error:
            return False, f"shaping: {error}"
        handle = hashlib.sha256(
            json.dumps(
                [data.by_site, data.by_domain, data.providers], sort_keys=True, default=str
            ).encode()
        ).hexdigest()
        self._shaping[handle] = data
        return True, context.to_lua({"handle": handle, "hash": handle})


@dataclass
class ScheduledQueue:
    """A scheduled queue as kumod keeps it: its config comes from get_queue_config and is asked
    again when due (refresh_strategy 'Ttl': after refresh_interval; 'Epoch': once the config
    epoch has changed)."""

    standin: KumoStandin
    domain: str
    tenant: str | None
    config: dict = field(default_factory=dict)
    _epoch: int = -1
    _due: float = 0.0
    refreshes: int = 0

    def pool(self) -> str:
        strategy = self.config.get("refresh_strategy", "Ttl")
        if (
            not self.config
            or (strategy == "Epoch" and self._epoch != self.standin.epoch)
            or (strategy == "Ttl" and self.standin.clock.now >= self._due)
        ):
            self.config = to_python(
                self.standin.fire("get_queue_config", self.domain, self.tenant, None, None)
            )
            self._epoch = self.standin.epoch
            interval = self.config.get("refresh_interval", "1 minute")
            self._due = self.standin.clock.now + _seconds(interval)
            self.refreshes += 1
        return self.config["egress_pool"]


def _seconds(duration: str) -> float:
    units = {"second": 1, "seconds": 1, "s": 1, "minute": 60, "minutes": 60, "m": 60}
    amount, unit = re.match(r"^\s*(\d+)\s*([a-z]+)\s*$", duration).groups()
    return int(amount) * units[unit]


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
    return {
        "TRUSTGATE_REDIS_URL": redis_url,
        "TRUSTGATE_KEY_PREFIX": prefix,
        "TRUSTGATE_SHAPING_FILE": str(SHAPING_FILE),
        **extra,
    }


_message_ids = itertools.count(1)


def message_text(
    *,
    tenant: str | None,
    from_address: str = "News <news@brand.example>",
    to: str = "someone@example.org",
    campaign: str | None = None,
    kind: str | None = None,
    message_id: str | None = "",
    resend: bool = False,
) -> str:
    """An RFC 5322 message as the platform injects it. `message_id` is the Message-ID header's
    whole value ("" for a fresh unique one, None for no header); `resend` adds `X-Resend: 1`
    (an earlier attempt of this message may have been accepted)."""
    if message_id == "":
        message_id = f"<{next(_message_ids)}.{uuid.uuid4().hex}@brand.example>"
    headers = [f"From: {from_address}", f"To: {to}", "Subject: Hello"]
    if message_id is not None:
        headers.append(f"Message-ID: {message_id}")
    if tenant is not None:
        headers.append(f"X-Tenant: {tenant}")
    if campaign is not None:
        headers.append(f"X-Campaign: {campaign}")
    if kind is not None:
        headers.append(f"X-Kind: {kind}")
    if resend:
        headers.append("X-Resend: 1")
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

    Each message goes through reception (re-send check, tenant check, trace header, DKIM key
    lookup, the Message-ID note) and get_queue_config, all within one memoize TTL (the clock
    does not move). Every tenant signs with its own domain, whose DKIM key lookup is made (and
    cached) even though none is published, so that no signing cost is measured. Policy loading
    is not counted. Only reads of the map are counted: the re-send check and the note (one GET
    and one SET NX per message on the primary, whatever the caching) are not something memoize
    could save.
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
        return standin.redis_call_count - standin.redis_calls["GET"] - standin.redis_calls["SET"]
    finally:
        if standin is not None:
            standin.close()
        delete_prefix(client, prefix)
        client.close()
