"""The stand-in behaves like KumoMTA where the policy could go wrong: memoized values, yields,
context recycling, event registration, Redis argument and reply conversion, the log hook's send
methods and the configuration objects' field checks."""

import textwrap
import uuid

import pytest
import redis

from tests.kumomta.conftest import REDIS_URL
from tests.kumomta.kumo_standin import (
    KumoStandin,
    PolicyError,
    delete_prefix,
    to_python,
)


def policy(tmp_path, modules: dict[str, str], **env: str) -> KumoStandin:
    """A node whose policy directory holds `modules` (name -> Lua source; `init` is loaded)."""
    for name, source in modules.items():
        (tmp_path / f"{name}.lua").write_text(textwrap.dedent(source))
    standin = KumoStandin(env=env)
    standin.load_policy(tmp_path)
    return standin


@pytest.fixture
def prefix():
    client = redis.Redis.from_url(REDIS_URL)
    value = f"test:{uuid.uuid4().hex}:"
    yield value
    delete_prefix(client, value)
    client.close()


# --- events ------------------------------------------------------------------------------------

SINGLE_HANDLER_EVENTS = [
    "get_egress_pool",
    "get_egress_source",
    "get_egress_path_config",
    "smtp_server_message_received",
    "http_message_generated",
    "http_server_validate_auth_basic",
    "init",
]


@pytest.mark.parametrize("event", SINGLE_HANDLER_EVENTS)
def test_it_refuses_a_second_handler_for_a_single_handler_event(event):
    standin = KumoStandin()
    register = f"require('kumo').on('{event}', function() end)"
    standin.run(register)

    with pytest.raises(PolicyError, match=f"{event} event already has a handler defined at"):
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


def test_it_takes_return_nil_as_an_answer_not_a_pass():
    standin = KumoStandin()
    standin.run(
        """
        local kumo = require 'kumo'
        kumo.on('get_queue_config', function(domain) return nil end)
        kumo.on('get_queue_config', function(domain)
          return kumo.make_queue_config { egress_pool = 'never' }
        end)
        """
    )

    with pytest.raises(PolicyError, match="returned nil, which is an answer"):
        standin.fire("get_queue_config", "any.example", None, None, None)


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


# --- memoize -----------------------------------------------------------------------------------

MEMOIZED = """
local kumo = require 'kumo'
calls = 0
lookup = kumo.memoize(function(name)
  calls = calls + 1
  if name == 'pair' then
    return { 1, 2 }, 'second'
  end
  if name == 'boom' then
    error('no such thing')
  end
  return { name = name, list = { 'a', 'b', 'c' }, nested = { deep = { x = 1 } } }
end, { name = 'user.test', ttl = '10 seconds', capacity = 10 })
"""


def test_memoize_hands_back_userdata_that_reads_like_a_table():
    standin = KumoStandin()
    standin.run(MEMOIZED)

    seen = standin.run(
        """
        local fresh = lookup 'x'
        local cached = lookup 'x'
        local keys = {}
        for k in pairs(cached) do table.insert(keys, k) end
        table.sort(keys)
        local items = {}
        for i, v in ipairs(cached.list) do items[i] = v end
        local ok, err = pcall(next, cached)
        return {
          fresh = type(fresh), cached = type(cached), name = cached.name,
          keys = table.concat(keys, ','), items = table.concat(items, ','),
          count = #cached, list_count = #cached.list, deep = cached.nested.deep.x,
          is_table = type(cached) == 'table', next_fails = not ok, calls = calls,
        }
        """
    )

    assert to_python(seen) == {
        "fresh": "userdata",
        "cached": "userdata",
        "name": "x",
        "keys": "list,name,nested",
        "items": "a,b,c",
        "count": 3,
        "list_count": 3,
        "deep": 1,
        "is_table": False,
        "next_fails": True,
        "calls": 1,
    }


def test_memoize_writes_change_only_the_copy_in_hand():
    standin = KumoStandin()
    standin.run(MEMOIZED)

    seen = standin.run(
        """
        local first = lookup 'x'
        first.name = 'changed'
        first.nested.deep.x = 99
        local again = lookup 'x'
        return { first.name, again.name, first.nested.deep.x, again.nested.deep.x }
        """
    )

    assert to_python(seen) == ["changed", "x", 1, 1]


def test_memoize_returns_several_values_as_one_table():
    standin = KumoStandin()
    standin.run(MEMOIZED)

    seen = standin.run(
        """
        local result, extra = lookup 'pair'
        return { type(result), extra == nil, type(result[1]), result[1][2], result[2] }
        """
    )

    assert to_python(seen) == ["table", True, "userdata", 2, "second"]


def test_memoize_keeps_an_error_for_a_minute_whatever_the_ttl():
    standin = KumoStandin()
    standin.run(MEMOIZED)
    attempt = "local ok, err = pcall(lookup, 'boom'); return tostring(err)"

    assert "no such thing" in standin.run(attempt)
    standin.clock.advance(30)
    assert "no such thing" in standin.run(attempt)
    assert standin.run("return calls") == 1
    standin.clock.advance(31)
    standin.run(attempt)
    assert standin.run("return calls") == 2


def test_memoize_caches_outlive_a_context_but_not_an_epoch_bump_when_asked(tmp_path):
    source = """
    local kumo = require 'kumo'
    local function make(name, epoch)
      return kumo.memoize(function(arg)
        return { made_in = context_id }
      end, { name = name, ttl = '1 hour', capacity = 10, invalidate_with_epoch = epoch })
    end
    plain = make('user.plain', false)
    epoch = make('user.epoch', true)
    """
    standin = policy(tmp_path, {"init": source})
    standin.run("context_id = 1")
    assert standin.run("return plain('k').made_in + epoch('k').made_in") == 2

    standin.recycle()
    standin.run("context_id = 2")
    assert standin.run("return plain('k').made_in + epoch('k').made_in") == 2

    standin.bump_config_epoch()
    standin.run("context_id = 3")
    assert standin.run("return plain('k').made_in .. epoch('k').made_in") == "13"
    assert standin.contexts_created == 3


def test_memoize_cannot_keep_functions_or_memoized_values():
    standin = KumoStandin()
    standin.run(MEMOIZED)
    standin.run(
        """
        local kumo = require 'kumo'
        keep_function = kumo.memoize(function() return { f = print } end,
          { name = 'user.f', ttl = '1m', capacity = 1 })
        keep_memoized = kumo.memoize(function() return lookup 'x' end,
          { name = 'user.m', ttl = '1m', capacity = 1 })
        """
    )

    with pytest.raises(PolicyError, match="cannot be memoized"):
        standin.run("keep_function()")
    with pytest.raises(PolicyError, match="cannot be memoized"):
        standin.run("keep_memoized()")


# --- yields ------------------------------------------------------------------------------------


def test_a_redis_query_cannot_run_while_a_module_loads(tmp_path, prefix):
    modules = {
        "init": "require 'settings_at_load'",
        "settings_at_load": f"""
            local redis = require 'redis'
            local conn = redis.open {{ node = '{REDIS_URL}' }}
            return {{ value = conn:query('GET', '{prefix}x') }}
        """,
    }

    with pytest.raises(PolicyError, match="attempt to yield across a C-call boundary"):
        policy(tmp_path, modules)


def test_a_memoized_miss_cannot_run_while_a_module_loads_even_under_pcall(tmp_path):
    modules = {
        "init": "require 'cached_at_load'",
        "cached_at_load": """
            local kumo = require 'kumo'
            local cached = kumo.memoize(function() return 1 end,
              { name = 'user.load', ttl = '1m', capacity = 1 })
            local ok = pcall(cached)
            return { ok = ok }
        """,
    }

    standin = policy(tmp_path, modules)

    assert len(standin.refused_yields) == 1
    assert "cached_at_load.lua" in standin.refused_yields[0]


def test_the_policy_file_itself_may_query_redis_while_it_loads(tmp_path, prefix):
    redis.Redis.from_url(REDIS_URL).set(f"{prefix}x", "42")
    init = f"""
        local redis = require 'redis'
        loaded = redis.open {{ node = '{REDIS_URL}' }}:query('GET', '{prefix}x')
    """

    standin = policy(tmp_path, {"init": init})

    assert standin.run("return loaded") == "42"
    assert standin.refused_yields == []


# --- Redis conversions -------------------------------------------------------------------------


def test_redis_arguments_and_replies_are_converted_like_kumomta(prefix):
    standin = KumoStandin()
    seen = standin.run(
        f"""
        local redis = require 'redis'
        local conn = redis.open {{ node = '{REDIS_URL}' }}
        local set = conn:query('SET', '{prefix}k', '1', 'NX', 'EX', 60)
        local again = conn:query('SET', '{prefix}k', '1', 'NX', 'EX', 60)
        conn:query('HSET', '{prefix}h', {{ a = '1' }})
        conn:query('HSET', '{prefix}h', 'b', nil, '2')  -- nil is dropped: HSET h b 2
        local fields = conn:query('HMGET', '{prefix}h', 'a', 'missing', 'b')
        local ok, err = pcall(conn.query, conn, 'SET', '{prefix}f', 1, 'EX', 5.0)
        return {{ set = set, again = again == nil, count = #fields,
                 first = fields[1], second = fields[2], float = tostring(err) }}
        """
    )

    seen = to_python(seen)
    assert "not an integer" in seen.pop("float")  # 5.0 is sent as "5.0"
    assert seen == {"set": True, "again": True, "count": 2, "first": "1", "second": "2"}


def test_hgetall_is_a_flat_list_over_resp2_and_a_map_over_resp3(prefix):
    redis.Redis.from_url(REDIS_URL).hset(f"{prefix}h", mapping={"a": "1", "b": "2"})
    standin = KumoStandin()
    query = """
        local reply = require('redis').open {{ node = '{url}' }}:query('HGETALL', '{key}')
        return {{ first = reply[1], a = reply.a }}
    """

    flat = to_python(standin.run(query.format(url=REDIS_URL, key=f"{prefix}h")))
    mapped = to_python(
        standin.run(query.format(url=f"{REDIS_URL}?protocol=resp3", key=f"{prefix}h"))
    )

    assert flat["first"] in ("a", "b") and "a" not in flat
    assert mapped == {"a": "1"}


# --- log hook delivery -------------------------------------------------------------------------


HOOK = """
local kumo = require 'kumo'
local log_hooks = require 'policy-extras.log_hooks'
log_hooks:new {{
  name = 'h',
  batch_size = {batch_size},
  constructor = function()
    return {{
      send_batch = function(self, msgs) return 'batch of ' .. #msgs end,
      {send}
    }}
  end,
}}
"""


def test_the_log_hook_calls_send_for_a_batch_size_of_one_and_send_batch_otherwise():
    records = [{"type": "Delivery", "id": str(n)} for n in range(3)]
    batched = KumoStandin()
    batched.run(HOOK.format(batch_size=2, send=""))
    single = KumoStandin()
    single.run(HOOK.format(batch_size=1, send=""))
    numbered = KumoStandin()
    numbered.run(HOOK.format(batch_size=1, send="send = function(self, msg) return 7 end,"))

    assert batched.deliver_log_records(records, hook="h") == ["batch of 2", "batch of 1"]
    with pytest.raises(PolicyError, match="sender:send method not found"):
        single.deliver_log_records(records, hook="h")
    with pytest.raises(PolicyError, match="must return a string"):
        numbered.deliver_log_records(records, hook="h")


# --- configuration objects ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "call",
    [
        "kumo.make_queue_config { egress_pool = 'p', refresh = '1m' }",
        "kumo.make_egress_path { connection_limit = 2, max_connections = 3 }",
        "kumo.make_egress_pool { name = 'p', entries = {}, weights = {} }",
    ],
)
def test_configuration_objects_refuse_unknown_fields(call):
    standin = KumoStandin()

    with pytest.raises(PolicyError, match="unknown field"):
        standin.run(f"local kumo = require 'kumo'; {call}")


def test_the_shaping_helper_refuses_an_unknown_parameter_in_a_shaping_file(tmp_path):
    (tmp_path / "bad.toml").write_text('["example.net"]\nmx_rollup = false\nconnections = 3\n')
    init = f"""
        local kumo = require 'kumo'
        local shaper = require('policy-extras.shaping'):setup_with_automation {{
          extra_files = {{ '{tmp_path / "bad.toml"}' }},
        }}
        kumo.on('get_egress_path_config', shaper.get_egress_path_config)
    """
    standin = policy(tmp_path, {"init": init})

    with pytest.raises(PolicyError, match="`connections` is not an egress path parameter"):
        standin.fire("get_egress_path_config", "example.net", "ip-1", "example.net")
