-- Reads of the platform's Redis keys, memoized, with a fallback to the last
-- answer Redis gave when it cannot be reached.
--
-- Every lookup returns `value, state` where state is
--   'fresh'       Redis answered (now, or within the memoize TTL),
--   'stale'       Redis failed; value is the last answer it gave,
--   'unavailable' Redis failed and this node never had an answer.
local kumo = require 'kumo'
local redis = require 'redis'
local node = require 'node_config'

local M = {}

-- Fallbacks for when Redis has no setting (or is down at load time). They are
-- operational defaults, not business numbers: the platform sets the real ones.
M.DEFAULT_MEMOIZE_TTL = '5 seconds'
-- The settings hash itself cannot say how long to cache the settings hash.
local SETTINGS_TTL = '5 seconds'
-- Enough entries for every tenant of a large platform, so routing lookups are
-- not evicted before their TTL (memoize evicts the eldest entry when full).
local CAPACITY = 500000
-- KumoMTA waits 30 seconds by default for a connection; a dead Redis must cost
-- a message far less than that (the failure is then cached for one TTL).
local REDIS_TIMEOUT = '2 seconds'

function M.key(name)
  return node.key_prefix .. name
end

local conn = nil

local function query(...)
  if conn == nil then
    conn = redis.open {
      node = node.redis_url,
      connect_timeout = REDIS_TIMEOUT,
      response_timeout = REDIS_TIMEOUT,
      wait_timeout = REDIS_TIMEOUT,
    }
  end
  return conn:query(...)
end

-- The last answer Redis gave for each lookup. It lives as long as this Lua
-- context; KumoMTA recycles contexts, so after an outage starts a new context
-- knows nothing and callers fall back to their safe defaults.
local last_good = {}

-- `fetch(arg)` queries Redis and may raise. Its failure is turned into a value
-- inside the memoized function so that memoize caches it for one TTL: memoize
-- never caches errors, and re-trying a dead Redis for every message would
-- stall reception.
local function reader(name, ttl, fetch)
  local cached = kumo.memoize(function(arg)
    local ok, value = pcall(fetch, arg)
    if ok then
      return { ok = true, value = value }
    end
    kumo.log_warn(
      string.format('trustgate: redis lookup %s(%s) failed: %s', name, arg, value)
    )
    return { ok = false }
  end, { name = 'user.trustgate.' .. name, ttl = ttl, capacity = CAPACITY })

  return function(arg)
    local slot = name .. '\0' .. arg
    local ok, result = pcall(cached, arg)
    if ok and result.ok then
      last_good[slot] = { value = result.value }
      return result.value, 'fresh'
    end
    local known = last_good[slot]
    if known then
      return known.value, 'stale'
    end
    return nil, 'unavailable'
  end
end

local function decode_json(raw)
  if raw == nil then
    return nil
  end
  return kumo.serde.json_parse(raw)
end

local function fetch_settings()
  local flat = query('HGETALL', M.key 'settings')
  local settings = {}
  for i = 1, #flat, 2 do
    settings[flat[i]] = flat[i + 1]
  end
  if settings.shaping ~= nil then
    -- A malformed shaping document must not cost us the other settings.
    local ok, shaping = pcall(kumo.serde.json_parse, settings.shaping)
    if ok and type(shaping) == 'table' then
      settings.shaping = shaping
    else
      kumo.log_warn 'trustgate: ignoring malformed `shaping` setting'
      settings.shaping = nil
    end
  end
  return settings
end

local read_settings = reader('settings', SETTINGS_TTL, fetch_settings)

function M.settings()
  return read_settings 'all' or {}
end

-- memoize raises on a duration it cannot parse; a bad value from Redis must
-- fall back rather than break policy loading.
function M.duration(value, default)
  if type(value) == 'string' and value:match '^%s*%d+%s*%a*%s*$' then
    return value
  end
  return default
end

-- The TTL is read once per Lua context: KumoMTA builds new contexts regularly
-- and after each config epoch bump, which the platform sends after an export.
M.ttl = M.duration(M.settings().memoize_ttl, M.DEFAULT_MEMOIZE_TTL)

M.tenant_pool = reader('tenant_pool', M.ttl, function(tenant)
  return query('HGET', M.key 'tenant_pool', tenant)
end)

M.pool = reader('pool', M.ttl, function(name)
  return decode_json(query('HGET', M.key 'pools', name))
end)

M.source = reader('source', M.ttl, function(name)
  return decode_json(query('HGET', M.key 'sources', name))
end)

M.dkim_key = reader('dkim', M.ttl, function(domain)
  local found = query('HMGET', M.key('dkim:' .. domain), 'selector', 'key')
  local selector, pem = found[1], found[2]
  if selector == nil or pem == nil then
    return nil
  end
  return { selector = selector, key = pem }
end)

return M
