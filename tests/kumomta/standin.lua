-- Test stand-in for the parts of KumoMTA's Lua API that the TrustGate policy
-- uses, written from KumoMTA's documentation and observed behaviour
-- (KumoCorp/kumomta, docs/). One copy of this file runs per Lua context;
-- kumo_standin.py passes `py`: the process-wide state (memoize caches, config
-- epoch, logs) and the clock, Redis, HTTP, JSON, DKIM and shaping work that
-- is easier (or only possible) in Python.
--
-- Behaviour the policy must cope with, as on a real node:
-- * Redis queries, HTTP requests and memoized calls that miss are async: they
--   yield the event's coroutine. Lua 5.4 cannot yield through `require`, so
--   such a call in a `require`d module's main chunk fails with "attempt to
--   yield across a C-call boundary"; init.lua's own main chunk may make them.
-- * memoize hands cached tables back as userdata (`type()` is 'userdata'):
--   indexable, iterable with pairs/ipairs, `#` is the entry count, writes
--   change only that copy. Several return values come back as one table.
--   A failed populate is cached for 60 seconds whatever the ttl.
-- * Single-handler events refuse a second handler; in multi-handler events a
--   bare `return` passes to the next handler but `return nil` is an answer.
local py = ...

local standin = {
  handlers = {},
  memoize_enabled = true,
  current_event = nil,
}
local kumo = { dkim = {}, http = {}, serde = {}, api = { admin = {} } }
local redis = {}

-- Events that accept several handlers (KumoMTA declares them `Multiple`);
-- every other event may have only one.
local MULTIPLE = {
  get_queue_config = true,
  get_acl_definition = true,
  should_enqueue_log_record = true,
  pre_init = true,
  validate_config = true,
  requeue_message = true,
  throttle_insert_ready_queue = true,
}

local function set_of(list)
  local set = {}
  for _, item in ipairs(list) do
    set[item] = true
  end
  return set
end

local function check_params(what, params, allowed, required)
  if type(params) ~= 'table' then
    error(string.format('%s: expected a table of parameters', what), 3)
  end
  for key in pairs(params) do
    if not allowed[key] then
      error(string.format('%s: unknown field `%s`', what, tostring(key)), 3)
    end
  end
  for _, key in ipairs(required or {}) do
    if params[key] == nil then
      error(string.format('%s: missing field `%s`', what, key), 3)
    end
  end
end

-- Durations: a number of seconds, or humantime-style text ("5 seconds", "1m",
-- "1h 30m"). Anything else raises, as in KumoMTA.
local UNITS = {
  ms = 0.001, msec = 0.001, millis = 0.001, milliseconds = 0.001,
  s = 1, sec = 1, secs = 1, second = 1, seconds = 1,
  m = 60, min = 60, mins = 60, minute = 60, minutes = 60,
  h = 3600, hr = 3600, hrs = 3600, hour = 3600, hours = 3600,
  d = 86400, day = 86400, days = 86400,
}

function standin.parse_duration(value)
  if type(value) == 'number' then
    return value
  end
  if type(value) ~= 'string' then
    error('invalid duration: ' .. tostring(value), 2)
  end
  local total, found = 0, false
  local rest = value:gsub('(%d+%.?%d*)%s*(%a+)', function(amount, unit)
    local scale = UNITS[unit:lower()]
    if scale == nil then
      error(string.format('invalid duration %q: unknown unit %q', value, unit), 0)
    end
    total = total + tonumber(amount) * scale
    found = true
    return ''
  end)
  if not found or rest:match '%S' then
    error(string.format('invalid duration %q', value), 2)
  end
  return total
end

local function check_throttle(what, value)
  if value ~= nil and not (type(value) == 'string' and value:match '^[%w:]*[%d,_]+/%a+$') then
    error(string.format('%s: invalid throttle %q', what, tostring(value)), 3)
  end
end

--------------------------------------------------------------------------------
-- Async calls. Every entry point (loading the policy, firing an event) runs in
-- a coroutine driven below; an async call yields it once, as mlua does when a
-- future is pending, and the driver resumes it at once.

local SUSPEND = setmetatable({}, { __name = 'pending future' })

local function suspend()
  if not coroutine.isyieldable() then
    -- Recorded, because policy code may catch the error below with pcall and
    -- carry on as if Redis were down.
    py.yield_refused(debug.traceback('attempt to yield across a C-call boundary', 2))
  end
  coroutine.yield(SUSPEND)
end

local DONE = setmetatable({}, { __name = 'done' })

-- One long-lived coroutine per context runs every entry point in turn. (lupa
-- ties the Lua objects handed to Python during a call to the running
-- coroutine; a coroutine per event would leave them pointing at dead ones.)
local worker
local retired = {}

local function work(fn, ...)
  local call = table.pack(fn, ...)
  while true do
    local results = table.pack(call[1](table.unpack(call, 2, call.n)))
    call = table.pack(coroutine.yield(DONE, results))
  end
end

local function drive(fn, ...)
  if worker == nil or coroutine.status(worker) == 'dead' then
    table.insert(retired, worker)
    worker = coroutine.create(work)
  end
  if coroutine.status(worker) ~= 'suspended' then
    error('the stand-in cannot run an event inside another', 2)
  end
  local resumed = table.pack(coroutine.resume(worker, fn, ...))
  while true do
    if not resumed[1] then
      return 'error', tostring(resumed[2])
    end
    if resumed[2] == DONE then
      local results = resumed[3]
      return table.unpack(results, 1, results.n)
    end
    resumed = table.pack(coroutine.resume(worker))
  end
end

--------------------------------------------------------------------------------
-- memoize proxies: what KumoMTA returns for a cached table. Userdata come from
-- Python (any Python object is a full userdata in lupa) and get this module's
-- metatable; their state lives in a weak table.

local proxies = setmetatable({}, { __mode = 'k' })
local Proxy = { __name = 'MemoizedTable' }

local function is_proxy(value)
  return proxies[value] ~= nil
end

local function proxy(data)
  local u = py.new_userdata()
  if Proxy.__gc == nil then
    -- Keep lupa's finaliser, which releases the Python object.
    Proxy.__gc = debug.getmetatable(u).__gc
  end
  debug.setmetatable(u, Proxy)
  proxies[u] = { data = data }
  return u
end

local function wrap(value)
  if type(value) == 'table' then
    return proxy(value)
  end
  return value
end

local function map_key(key)
  if type(key) == 'string' or math.type(key) == 'integer' then
    return key
  end
  return nil
end

local function entries_of(u)
  local state = proxies[u]
  return state.own or state.data
end

Proxy.__index = function(u, key)
  key = map_key(key)
  if key == nil then
    return nil
  end
  return wrap(entries_of(u)[key])
end

-- Writing "unshares" the top level: this userdata sees the change, the cache
-- and every other reader do not.
Proxy.__newindex = function(u, key, value)
  key = map_key(key)
  if key == nil then
    error('invalid key type while trying to call __newindex and assign a value', 2)
  end
  if type(value) == 'function' or type(value) == 'userdata' then
    error('cannot store a ' .. type(value) .. ' in a memoized table', 2)
  end
  local state = proxies[u]
  if state.own == nil then
    state.own = {}
    for k, v in next, state.data do
      state.own[k] = v
    end
  end
  state.own[key] = value
end

-- The number of entries, not a sequence border.
Proxy.__len = function(u)
  local count = 0
  for _ in next, entries_of(u) do
    count = count + 1
  end
  return count
end

Proxy.__pairs = function(u)
  local entries = entries_of(u)
  local function step(_, key)
    local value
    key, value = next(entries, key)
    return key, wrap(value)
  end
  return step, u, nil
end

Proxy.__tostring = function()
  return 'MemoizedTable'
end

-- What a Rust API sees when it converts a Lua value (from_lua_value): proxies
-- are walked through __pairs, tables copied.
local function materialize(value, seen)
  if is_proxy(value) then
    local result = {}
    for k, v in pairs(value) do
      result[k] = materialize(v, seen)
    end
    return result
  end
  if type(value) ~= 'table' then
    return value
  end
  seen = seen or {}
  if seen[value] then
    error('cannot convert a table that contains itself', 3)
  end
  seen[value] = true
  local result = {}
  for k, v in pairs(value) do
    result[k] = materialize(v, seen)
  end
  seen[value] = nil
  return result
end
standin.materialize = materialize
standin.is_proxy = is_proxy

--------------------------------------------------------------------------------
-- Events

function kumo.on(name, fn)
  if type(name) ~= 'string' or type(fn) ~= 'function' then
    error('kumo.on(EVENT, FUNCTION): bad arguments', 2)
  end
  if standin.current_event ~= nil then
    error(
      string.format(
        "Attempting to register an event handler via `kumo.on('%s', ...)` "
          .. "from within the event handler '%s'",
        name,
        standin.current_event
      ),
      2
    )
  end
  local existing = standin.handlers[name]
  if MULTIPLE[name] then
    existing = existing or {}
    table.insert(existing, fn)
    standin.handlers[name] = existing
    return
  end
  if existing ~= nil then
    local info = debug.getinfo(existing[1], 'S')
    error(
      string.format(
        '%s event already has a handler defined at %s:%d',
        name,
        info.short_src,
        info.linedefined
      ),
      2
    )
  end
  standin.handlers[name] = { fn }
end

local Rejection = {}
Rejection.__tostring = function(r)
  return string.format('%d %s', r.code, r.message)
end

function kumo.reject(code, message)
  if math.type(code) ~= 'integer' or code < 400 or code > 599 then
    error('kumo.reject: CODE must be a 4xx or 5xx integer', 2)
  end
  error(setmetatable({ code = code, message = tostring(message) }, Rejection), 0)
end

-- Events whose answer KumoMTA converts to a configuration object: nil is not
-- one.
local TYPED_RESULT = { get_queue_config = 'QueueConfig' }

-- Multiple-handler events: the first handler that returns any value wins; a
-- bare `return` (no value at all) passes to the next one, `return nil` does
-- not.
local function dispatch(name, list, ...)
  if not MULTIPLE[name] then
    return list[1](...)
  end
  for _, fn in ipairs(list) do
    local results = table.pack(fn(...))
    if results.n > 0 then
      if results[1] == nil and TYPED_RESULT[name] then
        error(
          string.format(
            '%s: a handler returned nil, which is an answer (not a pass) and not a %s',
            name,
            TYPED_RESULT[name]
          ),
          0
        )
      end
      return table.unpack(results, 1, results.n)
    end
  end
end

-- Returns 'ok', results... | 'reject', code, message | 'error', text.
local function protected(label, fn, ...)
  local previous = standin.current_event
  standin.current_event = label
  local results = table.pack(pcall(fn, ...))
  standin.current_event = previous
  if results[1] then
    return 'ok', table.unpack(results, 2, results.n)
  end
  local err = results[2]
  if getmetatable(err) == Rejection then
    return 'reject', err.code, err.message
  end
  return 'error', tostring(err)
end

-- Returns 'none' when the event has no handler.
function standin.fire(name, ...)
  local list = standin.handlers[name]
  if list == nil then
    return 'none'
  end
  return drive(protected, name, dispatch, name, list, ...)
end

-- Runs fn(...) as event code (in a coroutine, inside the named event).
function standin.call(fn, ...)
  return drive(protected, 'call', fn, ...)
end

function standin.handler_count(name)
  return #(standin.handlers[name] or {})
end

-- Top-level code, the way kumod loads the policy file: in a coroutine (so the
-- main chunk may make async calls) and outside any event (so it may register
-- handlers).
local function top_level(chunk)
  local results = table.pack(pcall(chunk))
  if not results[1] then
    local failure = results[2]
    if getmetatable(failure) == Rejection then
      return 'reject', failure.code, failure.message
    end
    return 'error', tostring(failure)
  end
  return 'ok', table.unpack(results, 2, results.n)
end

function standin.load_policy(path)
  local chunk, err = loadfile(path)
  if chunk == nil then
    return 'error', err
  end
  return drive(top_level, chunk)
end

function standin.run_chunk(code)
  local chunk, err = load(code, '=policy')
  if chunk == nil then
    return 'error', err
  end
  return drive(top_level, chunk)
end

--------------------------------------------------------------------------------
-- Logging and configuration calls (recorded, process-wide, for tests)

for _, level in ipairs { 'debug', 'info', 'warn', 'error' } do
  kumo['log_' .. level] = function(...)
    local parts = table.pack(...)
    for i = 1, parts.n do
      parts[i] = tostring(parts[i])
    end
    py.log(level, table.concat(parts, ' ', 1, parts.n))
  end
end

local function configuration(name, events, allowed, required)
  allowed = set_of(allowed)
  kumo[name] = function(params)
    if not events[standin.current_event] then
      error(string.format('kumo.%s must be called from %s', name, 'the init event'), 2)
    end
    check_params('kumo.' .. name, params, allowed, required)
    py.record_config(name, materialize(params))
  end
end

local INIT = { init = true }
configuration('define_spool', INIT, {
  'name', 'path', 'kind', 'flush', 'min_free_space', 'min_free_inodes', 'rocks_params',
}, { 'name', 'path' })
configuration('configure_local_logs', INIT, {
  'log_dir', 'max_file_size', 'max_segment_duration', 'compression_level', 'back_pressure',
  'meta', 'headers', 'per_record', 'filter_event', 'min_free_space', 'min_free_inodes',
}, { 'log_dir' })
configuration('configure_bounce_classifier', INIT, {
  'files', 'back_pressure', 'pool_size', 'cache_size', 'uncategorized_cache_size',
}, { 'files' })
configuration('configure_redis_throttles', INIT, {
  'node', 'pool_size', 'read_from_replicas', 'username', 'password', 'connect_timeout',
  'wait_timeout', 'response_timeout', 'recycle_timeout', 'cluster',
}, { 'node' })
configuration('configure_log_hook', { pre_init = true, init = true }, {
  'name', 'back_pressure', 'meta', 'headers', 'per_record', 'deferred_spool',
}, { 'name' })
configuration('start_esmtp_listener', INIT, {
  'listen', 'hostname', 'relay_hosts', 'banner', 'trace_headers', 'max_message_size',
  'max_recipients_per_message', 'max_messages_per_connection', 'max_connections',
  'tls_certificate', 'tls_private_key', 'tls_required_client_ca', 'client_timeout',
  'data_buffer_size', 'data_processing_timeout', 'deferred_queue', 'deferred_spool',
  'invalid_line_endings', 'line_length_hard_limit', 'meta', 'peer', 'require_proxy_protocol',
  'allow_xclient', 'batch_handling', 'via',
}, {})
configuration('start_http_listener', INIT, {
  'listen', 'hostname', 'trusted_hosts', 'use_tls', 'tls_certificate', 'tls_private_key',
  'request_body_limit',
}, {})

-- Background tasks are recorded, not run.
function kumo.spawn_task(params)
  check_params('kumo.spawn_task', params, set_of { 'event_name', 'args' }, { 'event_name', 'args' })
  py.record_config('spawn_task', materialize(params))
end

function kumo.bump_config_epoch()
  py.bump_config_epoch()
end

--------------------------------------------------------------------------------
-- memoize: process-wide caches by name (kept in Python, so they outlive Lua
-- contexts), keyed by the argument list and, with invalidate_with_epoch, the
-- config epoch.

local function key_of(value)
  local kind = type(value)
  if is_proxy(value) then
    return key_of(materialize(value))
  end
  if kind == 'function' or kind == 'thread' or kind == 'userdata' then
    error('memoize: a ' .. kind .. ' cannot be part of the cache key', 3)
  end
  if kind ~= 'table' then
    return kind .. ':' .. tostring(value)
  end
  local keys = {}
  for k in pairs(value) do
    table.insert(keys, k)
  end
  table.sort(keys, function(a, b)
    return tostring(a) < tostring(b)
  end)
  local parts = {}
  for _, k in ipairs(keys) do
    table.insert(parts, key_of(k) .. '=' .. key_of(value[k]))
  end
  return '{' .. table.concat(parts, ',') .. '}'
end

-- What memoize can keep: tables with integer or string keys, and plain
-- values. Userdata (a memoized table included) and functions cannot be kept.
local function cacheable(value, path)
  local kind = type(value)
  if kind == 'function' or kind == 'thread' or kind == 'userdata' then
    error(string.format('memoize: %s: a %s cannot be memoized', path, kind), 0)
  end
  if kind == 'table' then
    for k, v in pairs(value) do
      if map_key(k) == nil then
        error(
          string.format(
            'table key %s cannot be used as a key in a memoizable table',
            tostring(k)
          ),
          0
        )
      end
      cacheable(v, path .. '.' .. tostring(k))
    end
  end
  return value
end

local MEMOIZE_PARAMS = set_of {
  'name', 'ttl', 'capacity', 'invalidate_with_epoch', 'populate_timeout',
  'retry_on_populate_timeout', 'allow_stale_reads',
}

function kumo.memoize(fn, params)
  check_params('kumo.memoize', params, MEMOIZE_PARAMS, { 'name', 'ttl', 'capacity' })
  local ttl = standin.parse_duration(params.ttl)
  if params.populate_timeout ~= nil then
    standin.parse_duration(params.populate_timeout)
  end
  if not standin.memoize_enabled then
    return fn
  end
  local name = params.name
  py.memoize_define(
    name,
    ttl,
    params.capacity,
    params.invalidate_with_epoch == true,
    params.allow_stale_reads == true
  )
  return function(...)
    local key = key_of(table.pack(...))
    local state, kind, value = py.memoize_get(name, key)
    if state == 'error' then
      error(kind, 0)
    end
    if state == 'hit' then
      if kind == 'single' then
        return wrap(value)
      elseif kind == 'multi' then
        local results = {}
        for i, v in ipairs(value) do
          results[i] = wrap(v)
        end
        return results
      end
      return nil
    end
    -- A miss awaits the populate future.
    suspend()
    local results = table.pack(pcall(fn, ...))
    if not results[1] then
      py.memoize_fail(name, key, tostring(results[2]))
      error(results[2], 0)
    end
    local ok, failure = pcall(function()
      for i = 2, results.n do
        cacheable(results[i], 'value ' .. (i - 1))
      end
    end)
    if not ok then
      py.memoize_fail(name, key, failure)
      error(failure, 0)
    end
    if results.n == 1 then
      py.memoize_put(name, key, 'null', nil)
      return nil
    elseif results.n == 2 then
      py.memoize_put(name, key, 'single', results[2])
      return wrap(py.memoize_built(name, key))
    end
    py.memoize_put(name, key, 'multi', { table.unpack(results, 2, results.n) })
    local built, list = py.memoize_built(name, key), {}
    for i, v in ipairs(built) do
      list[i] = wrap(v)
    end
    return list
  end
end

--------------------------------------------------------------------------------
-- Configuration objects: unknown fields are refused, as KumoMTA's
-- deny_unknown_fields structs do.

local QUEUE_CONFIG = set_of {
  'egress_pool', 'max_age', 'max_message_rate', 'max_retry_interval', 'protocol',
  'provider_name', 'reap_interval', 'refresh_interval', 'refresh_strategy', 'retry_interval',
  'shrink_policy', 'strategy', 'timerwheel_tick_interval',
}

local function check_refresh_strategy(what, strategy)
  if strategy ~= nil and strategy ~= 'Ttl' and strategy ~= 'Epoch' then
    error(what .. ': refresh_strategy must be "Ttl" or "Epoch"', 3)
  end
end

function kumo.make_queue_config(params)
  check_params('kumo.make_queue_config', params, QUEUE_CONFIG)
  check_refresh_strategy('kumo.make_queue_config', params.refresh_strategy)
  for _, field in ipairs { 'refresh_interval', 'retry_interval', 'max_retry_interval', 'max_age' } do
    if params[field] ~= nil then
      standin.parse_duration(params[field])
    end
  end
  check_throttle('kumo.make_queue_config', params.max_message_rate)
  local config = materialize(params)
  config.kind = 'QueueConfig'
  return config
end

function kumo.make_egress_pool(params)
  check_params('kumo.make_egress_pool', params, set_of { 'name', 'entries', 'ttl' }, { 'name', 'entries' })
  for i, entry in ipairs(params.entries) do
    check_params('kumo.make_egress_pool entry', entry, set_of { 'name', 'weight' }, { 'name' })
    if entry.weight ~= nil and (math.type(entry.weight) ~= 'integer' or entry.weight < 0) then
      error(string.format('kumo.make_egress_pool: entry %d: weight must be an integer >= 0', i), 2)
    end
  end
  if params.ttl ~= nil then
    standin.parse_duration(params.ttl)
  end
  local pool = materialize(params)
  pool.kind = 'EgressPool'
  return pool
end

function kumo.make_egress_source(params)
  check_params('kumo.make_egress_source', params, set_of {
    'name', 'source_address', 'ehlo_domain', 'ttl', 'remote_port', 'ha_proxy_server',
    'ha_proxy_source_address', 'socks5_proxy_server', 'socks5_proxy_source_address',
    'socks5_proxy_username', 'socks5_proxy_password', 'suspend_when_unplumbed',
    'suspend_when_proxy_unhealthy',
  }, { 'name' })
  if params.source_address ~= nil and not py.is_ip_address(params.source_address) then
    error('kumo.make_egress_source: invalid source_address ' .. tostring(params.source_address), 2)
  end
  if params.ttl ~= nil then
    standin.parse_duration(params.ttl)
  end
  local source = materialize(params)
  source.kind = 'EgressSource'
  return source
end

-- EgressPathConfig's fields (with the SMTP client timeouts flattened in).
standin.EGRESS_PATH = set_of {
  'additional_connection_limits', 'additional_message_rate_throttles',
  'additional_source_selection_rates', 'aggressive_connection_opening',
  'allow_smtp_auth_plain_without_tls', 'allow_smtp_auth_plain_without_valid_certificate',
  'auth_timeout', 'banner_timeout', 'connect_timeout', 'connection_limit',
  'consecutive_connection_failures_before_delay', 'data_dot_timeout', 'data_timeout',
  'dispatcher_progress_watchdog_timeout', 'dispatcher_wakeup_strategy', 'ehlo_domain',
  'ehlo_timeout', 'enable_dane', 'enable_mta_sts', 'enable_pipelining', 'enable_rset',
  'enable_tls', 'idle_timeout', 'ip_lookup_strategy', 'low_memory_reduction_policy',
  'mail_from_timeout', 'maintainer_wakeup_strategy', 'max_connection_rate',
  'max_deliveries_per_connection', 'max_message_rate', 'max_ready', 'max_recipients_per_batch',
  'no_memory_reduction_policy', 'openssl_cipher_list', 'openssl_cipher_suites',
  'openssl_options', 'opportunistic_tls_reconnect_on_failed_handshake', 'prohibited_hosts',
  'provider_name', 'rcpt_to_timeout', 'readyq_pool_name', 'reconnect_strategy',
  'refresh_interval', 'refresh_strategy', 'remember_broken_tls', 'rset_timeout',
  'rustls_cipher_suites', 'skip_hosts', 'smtp_auth_plain_password', 'smtp_auth_plain_username',
  'smtp_port', 'source_selection_rate', 'starttls_timeout', 'system_shutdown_timeout',
  'tls_certificate', 'tls_prefer_openssl', 'tls_private_key', 'try_next_host_on_transport_error',
  'use_lmtp',
}

local function check_limit(what, limit)
  if limit == nil or (math.type(limit) == 'integer' and limit > 0) then
    return
  end
  if type(limit) == 'string' and limit:match '^[%w]*:?%d+$' then
    return
  end
  error(what .. ': a connection limit must be a positive integer or "local:N"', 3)
end

function kumo.make_egress_path(params)
  check_params('kumo.make_egress_path', params, standin.EGRESS_PATH)
  check_limit('kumo.make_egress_path', params.connection_limit)
  for _, limit in pairs(params.additional_connection_limits or {}) do
    check_limit('kumo.make_egress_path', limit)
  end
  check_throttle('kumo.make_egress_path', params.max_message_rate)
  check_throttle('kumo.make_egress_path', params.max_connection_rate)
  check_refresh_strategy('kumo.make_egress_path', params.refresh_strategy)
  for _, field in ipairs { 'max_deliveries_per_connection', 'max_ready' } do
    local value = params[field]
    if value ~= nil and not (math.type(value) == 'integer' and value > 0) then
      error(string.format('kumo.make_egress_path: %s must be a positive integer', field), 2)
    end
  end
  local path = materialize(params)
  path.kind = 'EgressPathConfig'
  return path
end

local ARF_MODES = { Ignore = true, LogThenRelay = true, LogThenDrop = true }

function kumo.make_listener_domain(params)
  check_params('kumo.make_listener_domain', params, set_of {
    'relay_to', 'relay_from', 'log_oob', 'log_arf',
  })
  local arf = params.log_arf
  if arf ~= nil and type(arf) ~= 'boolean' and not ARF_MODES[arf] then
    error('kumo.make_listener_domain: invalid log_arf ' .. tostring(arf), 2)
  end
  local domain = materialize(params)
  domain.kind = 'ListenerDomain'
  return domain
end

--------------------------------------------------------------------------------
-- JSON (memoized tables are walked like tables, as kumo.serde does)

function kumo.serde.json_encode(value)
  local ok, text = py.json_encode(materialize(value))
  if not ok then
    error(text, 2)
  end
  return text
end

function kumo.serde.json_parse(text)
  local ok, value = py.json_parse(text)
  if not ok then
    error(value, 2)
  end
  return value
end

kumo.json_encode = kumo.serde.json_encode
kumo.json_parse = kumo.serde.json_parse

--------------------------------------------------------------------------------
-- Messages

local Message = {}
Message.__index = Message

local EnvelopeAddress = {
  __tostring = function(address)
    return address.email
  end,
}

local function envelope_address(email)
  local user, domain = email:match '^(.*)@([^@]+)$'
  return setmetatable({ email = email, user = user or email, domain = domain }, EnvelopeAddress)
end

-- Headers keep their raw text (after the colon, folding included) so that
-- get_data() reproduces the message byte for byte, as DKIM needs.
local function parse_message(data)
  data = data:gsub('\r?\n', '\r\n')
  local head, body = data:match '^(.-\r\n)\r\n(.*)$'
  if head == nil then
    head, body = data, ''
  end
  local headers = {}
  for line in head:gmatch '(.-)\r\n' do
    if line:match '^[ \t]' and #headers > 0 then
      headers[#headers].raw = headers[#headers].raw .. '\r\n' .. line
    else
      local name, raw = line:match '^([^:%s]+):(.*)$'
      if name == nil then
        error('malformed header line: ' .. line, 0)
      end
      table.insert(headers, { name = name, raw = raw })
    end
  end
  return headers, body
end

function standin.new_message(sender, recipient, data, meta)
  local headers, body = parse_message(data)
  local msg = setmetatable({
    _sender = envelope_address(sender),
    _recipient = envelope_address(recipient),
    _headers = headers,
    _body = body,
    _meta = {},
    _ops = {},
  }, Message)
  for k, v in pairs(meta or {}) do
    msg._meta[k] = v
  end
  return msg
end

local function unfold(raw)
  return (raw:gsub('\r\n', ''):gsub('^%s+', ''):gsub('%s+$', ''))
end

function Message:sender()
  return self._sender
end

function Message:recipient()
  return self._recipient
end

function Message:get_first_named_header_value(name)
  local wanted = name:lower()
  for _, header in ipairs(self._headers) do
    if header.name:lower() == wanted then
      return unfold(header.raw)
    end
  end
  return nil
end

function Message:get_all_named_header_values(name)
  local wanted, values = name:lower(), {}
  for _, header in ipairs(self._headers) do
    if header.name:lower() == wanted then
      table.insert(values, unfold(header.raw))
    end
  end
  return values
end

function Message:remove_all_named_headers(name)
  local wanted, kept = name:lower(), {}
  for _, header in ipairs(self._headers) do
    if header.name:lower() ~= wanted then
      table.insert(kept, header)
    end
  end
  self._headers = kept
  table.insert(self._ops, 'remove_all_named_headers:' .. name)
end

function Message:prepend_header(name, value)
  table.insert(self._headers, 1, { name = name, raw = ' ' .. value })
  table.insert(self._ops, 'prepend_header:' .. name)
end

function Message:get_data()
  local lines = {}
  for _, header in ipairs(self._headers) do
    table.insert(lines, header.name .. ':' .. header.raw .. '\r\n')
  end
  return table.concat(lines) .. '\r\n' .. self._body
end

local STRING_META = set_of { 'queue', 'tenant', 'campaign', 'routing_domain' }

function Message:set_meta(key, value)
  if STRING_META[key] and type(value) ~= 'string' then
    error(string.format('meta %s must be a string', key), 2)
  end
  self._meta[key] = value
  table.insert(self._ops, 'set_meta:' .. key)
end

function Message:get_meta(key)
  return self._meta[key]
end

local AddressList = {
  __index = function(_, key)
    if key == 'domain' or key == 'user' or key == 'email' or key == 'name' then
      error('addressheader: not a single simple address', 2)
    end
  end,
}

function Message:from_header()
  local value = self:get_first_named_header_value 'From'
  if value == nil then
    return nil
  end
  local addresses = py.parse_addresses(value)
  if #addresses == 1 then
    local address = addresses[1]
    local user, domain = address.email:match '^(.*)@([^@]+)$'
    return {
      name = address.name,
      email = address.email,
      user = user,
      domain = domain,
      list = addresses,
    }
  end
  return setmetatable({ list = addresses }, AddressList)
end

function Message:import_x_headers(names)
  local wanted = names and set_of(names)
  for _, header in ipairs(self._headers) do
    local lower = header.name:lower()
    if (wanted == nil and lower:match '^x%-') or (wanted and (wanted[header.name] or wanted[lower])) then
      self._meta[(lower:gsub('%-', '_'))] = unfold(header.raw)
    end
  end
end

--------------------------------------------------------------------------------
-- DKIM

local Signer = {}
Signer.__index = Signer

local SIGNER_FIELDS = set_of {
  'domain', 'selector', 'headers', 'atps', 'atpsh', 'agent_user_identifier', 'expiration',
  'body_length', 'reporting', 'header_canonicalization', 'body_canonicalization', 'key', 'ttl',
  'over_sign',
}

-- KeySource: a file path or { key_data = ... }. Vault and event_name sources
-- are not modelled.
local function load_key(source)
  if type(source) == 'string' then
    local file = assert(io.open(source, 'r'))
    local data = file:read 'a'
    file:close()
    return data
  end
  if type(source) == 'table' and type(source.key_data) == 'string' then
    return source.key_data
  end
  error('stand-in supports only file and key_data key sources', 3)
end

function kumo.dkim.rsa_sha256_signer(params)
  check_params('kumo.dkim.rsa_sha256_signer', params, SIGNER_FIELDS, {
    'domain', 'selector', 'headers', 'key',
  })
  local signer = materialize(params)
  signer.key_data = load_key(params.key)
  return setmetatable(signer, Signer)
end

function Message:dkim_sign(signer)
  if getmetatable(signer) ~= Signer then
    error('dkim_sign: expected a signer from kumo.dkim.*_signer', 2)
  end
  local headers = {}
  for _, name in ipairs(signer.headers) do
    -- over_sign: N occurrences are signed N+1 times (documented behaviour).
    local times = 1
    if signer.over_sign then
      times = #self:get_all_named_header_values(name) + 1
    end
    for _ = 1, times do
      table.insert(headers, name)
    end
  end
  local ok, name, raw = py.dkim_sign(self:get_data(), signer.domain, signer.selector, headers, signer.key_data)
  if not ok then
    error('dkim_sign: ' .. tostring(name), 2)
  end
  table.insert(self._headers, 1, { name = name, raw = raw })
  table.insert(self._ops, 'dkim_sign:' .. signer.domain)
end

--------------------------------------------------------------------------------
-- Supplemental trace header (kumo.apply_supplemental_trace_header, async)

function kumo.apply_supplemental_trace_header(msg, params)
  params = params or {}
  check_params('kumo.apply_supplemental_trace_header', params, set_of {
    'received_header', 'supplemental_header', 'header_name', 'include_meta_names',
  })
  suspend()
  if params.supplemental_header == false then
    return
  end
  local payload = { recipient = msg:recipient().email }
  for _, name in ipairs(params.include_meta_names or {}) do
    local value = msg:get_meta(name)
    if value ~= nil then
      payload[name] = value
    end
  end
  msg:prepend_header(params.header_name or 'X-KumoRef', py.trace_payload(payload))
  table.insert(msg._ops, 'apply_supplemental_trace_header')
end

--------------------------------------------------------------------------------
-- HTTP client (real requests through py.http_send; sending and reading the
-- body are async)

local Client = {}
Client.__index = Client
local Request = {}
Request.__index = Request
local Response = {}
Response.__index = Response

function kumo.http.build_client(params)
  check_params('kumo.http.build_client', params, set_of {
    'user_agent', 'connection_verbose', 'pool_idle_timeout', 'timeout', 'accept_invalid_certs',
  })
  return setmetatable({
    user_agent = params.user_agent,
    timeout = standin.parse_duration(params.timeout or '60 seconds'),
    closed = false,
  }, Client)
end

local function request(client, method, url)
  if client.closed then
    error('http client is closed', 3)
  end
  local headers = {}
  if client.user_agent then
    headers['User-Agent'] = client.user_agent
  end
  return setmetatable({ method = method, url = url, _headers = headers, timeout_seconds = client.timeout }, Request)
end

function Client:get(url)
  return request(self, 'GET', url)
end

function Client:post(url)
  return request(self, 'POST', url)
end

function Client:put(url)
  return request(self, 'PUT', url)
end

function Client:close()
  self.closed = true
end

function Request:header(name, value)
  self._headers[name] = value
  return self
end

function Request:headers(map)
  for name, value in pairs(map) do
    self._headers[name] = value
  end
  return self
end

function Request:bearer_auth(token)
  self._headers['Authorization'] = 'Bearer ' .. token
  return self
end

function Request:basic_auth(username, password)
  self._headers['Authorization'] = 'Basic ' .. py.base64(username .. ':' .. (password or ''))
  return self
end

function Request:body(body)
  if type(body) ~= 'string' then
    error('request:body: body must be a string', 2)
  end
  self.body_text = body
  return self
end

function Request:timeout(duration)
  self.timeout_seconds = standin.parse_duration(duration)
  return self
end

function Request:send()
  suspend()
  local ok, status, reason, text =
    py.http_send(self.method, self.url, self._headers, self.body_text, self.timeout_seconds)
  if not ok then
    error(status, 2)
  end
  return setmetatable({ _status = status, _reason = reason, _text = text, _consumed = false }, Response)
end

local function unconsumed(response)
  if response._consumed then
    error('the response body was already read', 3)
  end
end

function Response:status_code()
  unconsumed(self)
  return self._status
end

function Response:status_reason()
  unconsumed(self)
  return self._reason
end

function Response:status_is_success()
  unconsumed(self)
  return self._status >= 200 and self._status < 300
end

function Response:status_is_client_error()
  unconsumed(self)
  return self._status >= 400 and self._status < 500
end

function Response:status_is_server_error()
  unconsumed(self)
  return self._status >= 500 and self._status < 600
end

function Response:text()
  unconsumed(self)
  suspend()
  self._consumed = true
  return self._text
end

--------------------------------------------------------------------------------
-- redis module: redis.open{...} and conn:query(cmd, ...) on a real server.
-- Arguments go through JSON as in KumoMTA: nil is dropped, an array becomes
-- several arguments, a map `k v k v`, an integer its digits, a float its JSON
-- text (5.0 -> "5.0").

local REDIS_OPEN = set_of {
  'node', 'pool_size', 'read_from_replicas', 'username', 'password', 'connect_timeout',
  'wait_timeout', 'response_timeout', 'recycle_timeout', 'cluster',
}

local Connection = {}
Connection.__index = Connection

function redis.open(params)
  check_params('redis.open', params, REDIS_OPEN, { 'node' })
  if type(params.node) ~= 'string' then
    error('redis.open: the stand-in supports a single node URL only', 2)
  end
  return setmetatable({
    node = params.node,
    connect_timeout = standin.parse_duration(params.connect_timeout or '30 seconds'),
    response_timeout = params.response_timeout and standin.parse_duration(params.response_timeout),
  }, Connection)
end

local function redis_args(value, into)
  if value == nil then
    return
  end
  if is_proxy(value) then
    value = materialize(value)
  end
  local kind = type(value)
  if kind == 'table' then
    if #value > 0 or next(value) == nil then
      for _, item in ipairs(value) do
        redis_args(item, into)
      end
    else
      for k, v in pairs(value) do
        table.insert(into, tostring(k))
        redis_args(v, into)
      end
    end
  elseif kind == 'boolean' then
    table.insert(into, value and '1' or '0')
  elseif math.type(value) == 'float' then
    table.insert(into, py.float_text(value))
  elseif kind == 'number' or kind == 'string' then
    table.insert(into, tostring(value))
  else
    error('redis: cannot send a ' .. kind .. ' as an argument', 3)
  end
end

function Connection:query(...)
  local given = table.pack(...)
  local args = {}
  for i = 1, given.n do
    redis_args(given[i], args)
  end
  suspend()
  local ok, value = py.redis_query(self.node, self.connect_timeout, self.response_timeout, args)
  if not ok then
    error(value, 2)
  end
  return value
end

--------------------------------------------------------------------------------
-- What the policy-extras.shaping stand-in needs from the process: loading and
-- merging shaping files, and the egress path parameters they give (async, as
-- KumoMTA's Shaping methods are).

standin.shaping = {
  load = function(names)
    suspend()
    local ok, result = py.shaping_load(materialize(names))
    if not ok then
      error(result, 2)
    end
    return result
  end,
  params = function(handle, domain, egress_source, site_name)
    suspend()
    return py.shaping_params(handle, domain, egress_source, site_name)
  end,
  matches = function(handle, record)
    return py.shaping_matches(handle, materialize(record))
  end,
}

--------------------------------------------------------------------------------
-- Log hook delivery, as kumod drives it: should_enqueue_log_record, the hook
-- queue's get_queue_config, its constructor event, then `send` (batch size 1)
-- or `send_batch`, whose answer must be a string.

local function deliver(hook_name, records)
  local messages = {}
  for i, record in ipairs(records) do
    local msg = standin.new_message('', 'log@' .. hook_name .. '.log_hook', 'X-Log: record\r\n\r\n', {
      log_record = record,
    })
    local status, verdict = protected('should_enqueue_log_record', dispatch,
      'should_enqueue_log_record', standin.handlers.should_enqueue_log_record or {}, msg, hook_name)
    if status ~= 'ok' or verdict ~= true then
      return 'error', string.format('record %d was not enqueued (%s %s)', i, status, tostring(verdict))
    end
    table.insert(messages, msg)
  end
  local queue = messages[1]:get_meta 'queue'
  local status, config = protected('get_queue_config', dispatch, 'get_queue_config',
    standin.handlers.get_queue_config or {}, queue, nil, nil, nil)
  if status ~= 'ok' or config == nil or config.protocol == nil or config.protocol.custom_lua == nil then
    return 'error', 'the hook queue has no custom_lua protocol: ' .. tostring(config)
  end
  local protocol = config.protocol.custom_lua
  local list = standin.handlers[protocol.constructor]
  if list == nil then
    return 'error', 'no handler for ' .. protocol.constructor
  end
  local made, connection = protected(protocol.constructor, list[1], queue, nil, nil)
  if made ~= 'ok' then
    return made, connection
  end
  local size = protocol.batch_size or 1
  local method = size == 1 and 'send' or 'send_batch'
  if connection[method] == nil then
    return 'error', string.format('sender:%s method not found', method)
  end
  local dispositions = {}
  for first = 1, #messages, size do
    local batch = table.move(messages, first, math.min(first + size - 1, #messages), 1, {})
    local arg = size == 1 and batch[1] or batch
    local result = table.pack(protected(method, connection[method], connection, arg))
    if result[1] == 'ok' and type(result[2]) ~= 'string' then
      local kind = type(result[2])
      result = table.pack('error', string.format('%s must return a string, not %s', method, kind))
    end
    if result[1] ~= 'ok' then
      if connection.close then
        protected('close', connection.close, connection)
      end
      return table.unpack(result, 1, result.n)
    end
    table.insert(dispositions, result[2])
  end
  if connection.close then
    protected('close', connection.close, connection)
  end
  return 'ok', dispositions
end

function standin.deliver_log_records(hook_name, records)
  return drive(deliver, hook_name, records)
end

return standin, kumo, redis
