-- Every Redis access of the policy. Lookups are memoized and read from
-- TRUSTGATE_REDIS_READ_URL (a replica on the node, which keeps serving its last
-- data when the primary is gone); the accepted-message notes are read and
-- written on TRUSTGATE_REDIS_URL, the primary.
--
-- Every lookup returns `value, state` where state is
--   'fresh'       Redis answered (now, or within the memoize TTL),
--   'stale'       Redis failed; value is the last answer this Lua context got,
--   'unavailable' Redis failed and this Lua context never had an answer.
--
-- Nothing here touches Redis while the module loads: a query (or a memoized
-- call that misses) yields, and `require` cannot yield on a real node.
--
-- Memoized values come back as userdata, not tables: they can be indexed and
-- iterated, but `type(v) == 'table'` is false for them. Replies are checked
-- here, before they are memoized; callers never test a value's type.
local kumo = require 'kumo'
local redis = require 'redis'
local node = require 'node_config'
local defaults = require 'defaults'

local M = {}

-- Enough entries for every tenant of a large platform, so routing lookups are
-- not evicted before their TTL.
local CAPACITY = 500000
-- KumoMTA waits 30 seconds by default for a connection; a dead Redis must cost
-- a message far less than that (the failure is then cached for one TTL).
local REDIS_TIMEOUT = '2 seconds'

function M.key(name)
  return node.key_prefix .. name
end

local function connect(url)
  return redis.open {
    node = url,
    connect_timeout = REDIS_TIMEOUT,
    response_timeout = REDIS_TIMEOUT,
    wait_timeout = REDIS_TIMEOUT,
  }
end

-- Opened on first use (inside an event); KumoMTA pools connections per
-- process and parameter set, so a new Lua context reuses them.
local replica, primary

local function read(...)
  replica = replica or connect(node.redis_read_url)
  return replica:query(...)
end

-- The primary: writes, and reads that a replica's lag could get wrong.
local function on_primary(...)
  primary = primary or connect(node.redis_url)
  return primary:query(...)
end

-- The last answer Redis gave for each lookup in this Lua context: a bridge
-- over a short failure of the replica. KumoMTA recycles contexts every few
-- minutes and on every config epoch bump, so it is not where an outage is
-- survived (the replica is; see README.md, "When Redis is down").
local last_good = {}

-- `fetch(arg)` queries Redis and may raise. Its failure is turned into a value
-- inside the memoized function, so that it is cached for one TTL (memoize
-- itself would keep an error for 60 seconds) and a dead Redis is not asked
-- once per message.
local function reader(name, fetch)
  local cached = kumo.memoize(function(arg)
    local ok, value = pcall(fetch, arg)
    if ok then
      return { ok = true, value = value }
    end
    kumo.log_warn(
      string.format('trustgate: redis lookup %s(%s) failed: %s', name, arg, tostring(value))
    )
    return { ok = false }
  end, {
    name = 'user.trustgate.' .. name,
    ttl = node.memoize_ttl,
    capacity = CAPACITY,
    -- A config epoch bump (the platform sends one after each change) makes
    -- every node read the map again at once.
    invalidate_with_epoch = true,
  })

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

-- HGETALL: a flat list {field, value, ...} over RESP2, a map {field = value}
-- over RESP3 (`?protocol=resp3` in the URL).
local function hash_fields(reply)
  if reply[1] == nil then
    return reply
  end
  local fields = {}
  for i = 1, #reply, 2 do
    fields[reply[i]] = reply[i + 1]
  end
  return fields
end

local function positive_number(value)
  return type(value) == 'number' and value > 0
end

-- The `shaping` field: JSON {provider: {max_connections, messages_per_hour,
-- max_deliveries_per_connection, mx_suffixes}}. What does not have that shape
-- is dropped here, before memoize hides the types.
local function parse_shaping(raw)
  local ok, document = pcall(kumo.serde.json_parse, raw)
  if not ok or type(document) ~= 'table' then
    kumo.log_warn 'trustgate: ignoring malformed `shaping` setting'
    return nil
  end
  local shaping = {}
  for provider, entry in pairs(document) do
    if type(provider) == 'string' and type(entry) == 'table' then
      local clean = {}
      for _, field in ipairs {
        'max_connections',
        'messages_per_hour',
        'max_deliveries_per_connection',
      } do
        if positive_number(entry[field]) then
          clean[field] = entry[field]
        end
      end
      if type(entry.mx_suffixes) == 'table' then
        clean.mx_suffixes = {}
        for _, suffix in ipairs(entry.mx_suffixes) do
          if type(suffix) == 'string' and suffix ~= '' then
            table.insert(clean.mx_suffixes, string.lower(suffix))
          end
        end
      end
      shaping[provider] = clean
    end
  end
  return shaping
end

local function fetch_settings()
  local settings = hash_fields(read('HGETALL', M.key 'settings'))
  if settings.shaping ~= nil then
    settings.shaping = parse_shaping(settings.shaping)
  end
  return settings
end

local read_settings = reader('settings', fetch_settings)

-- One field of the settings hash, through `check` (which returns nil for a
-- value it does not accept), else its fallback from defaults.lua. Every field
-- the policy reads goes through here: a platform test finds them by this
-- name and checks that the platform exports each.
function M.setting(name, check)
  local settings = read_settings 'all'
  local value
  if settings ~= nil then
    value = settings[name]
  end
  if value ~= nil and check ~= nil then
    value = check(value)
  end
  if value == nil then
    value = defaults[name]
  end
  return value
end

-- Checks for M.setting.

-- A duration KumoMTA accepts ("1 minute", "30s"); memoize and the make_*
-- functions raise on one they cannot parse.
function M.duration(value)
  if type(value) == 'string' and value:match '^%s*%d+%s*%a*%s*$' then
    return value
  end
  return nil
end

function M.positive_integer(value)
  local number = math.tointeger(tonumber(value))
  if number ~= nil and number > 0 then
    return number
  end
  return nil
end

-- Lookups.

M.tenant_pool = reader('tenant_pool', function(tenant)
  return read('HGET', M.key 'tenant_pool', tenant)
end)

M.pool = reader('pool', function(name)
  return decode_json(read('HGET', M.key 'pools', name))
end)

M.source = reader('source', function(name)
  return decode_json(read('HGET', M.key 'sources', name))
end)

M.dkim_key = reader('dkim', function(domain)
  -- Missing fields do not leave holes in a reply (KumoMTA's client builds a
  -- Lua sequence): fewer than two values means no usable key.
  local found = read('HMGET', M.key('dkim:' .. domain), 'selector', 'key')
  if #found ~= 2 then
    return nil
  end
  return { selector = found[1], key = found[2] }
end)

-- The accepted-message notes, on the primary (never memoized: a note
-- written by another node a moment ago must be seen).

local function accepted_key(message_id)
  return M.key('accepted:' .. message_id)
end

-- Whether a Message-ID is noted as accepted: true or false, or nil plus the
-- error when Redis cannot say.
function M.is_accepted(message_id)
  local ok, reply = pcall(on_primary, 'GET', accepted_key(message_id))
  if not ok then
    return nil, reply
  end
  return reply ~= nil
end

-- Notes a Message-ID as accepted for `ttl` seconds. Returns true the first
-- time, false when it was already noted (another copy), and nil plus the
-- error when Redis cannot say.
function M.note_accepted(message_id, ttl)
  local ok, reply = pcall(on_primary, 'SET', accepted_key(message_id), '1', 'NX', 'EX', ttl)
  if not ok then
    return nil, reply
  end
  return reply ~= nil
end

return M
