-- Tenant -> egress pool -> egress sources, from the map the platform keeps in
-- Redis. The pool is a property of the scheduled queue, so it is chosen in
-- get_queue_config; queues use the 'Epoch' refresh strategy, so a change
-- reaches queues that already exist when the platform bumps the nodes' config
-- epoch (it does after every change it publishes).
local kumo = require 'kumo'
local store = require 'store'

local M = {}

-- Best to worst. The names are the contract with the platform, which decides
-- who goes where; the policy only needs to know which pools exist.
M.POOLS = { 'premium', 'standard', 'rehab', 'quarantine' }
local RANK = {}
for rank, name in ipairs(M.POOLS) do
  RANK[name] = rank
end

-- Where a tenant with a pool name this policy does not know goes: nothing
-- proves it deserves an external pool.
M.FALLBACK_POOL = 'rehab'
-- The pool with no sources, built by the policy itself (no Redis needed): its
-- queues wait (451 4.4.4, retried). Mail of a tenant whose pool cannot be
-- read at all (Redis gone and this context never learnt it) waits here too:
-- any pool would risk being better than the one it last had (a quarantined
-- tenant's spooled mail must not leave from rehab).
M.HELD_POOL = 'quarantine'

-- Queues that are not mail of a tenant: log hooks (`<name>.log_hook`), the
-- TSA publisher (`<url>.tsa.kumomta`) and KumoMTA's own. Their helpers (or
-- KumoMTA) answer get_queue_config for them.
local INTERNAL_SUFFIXES = { '.log_hook', '.tsa.kumomta', '.kumomta.internal' }

local function ends_with(text, suffix)
  return #text >= #suffix and text:sub(-#suffix) == suffix
end

function M.is_internal(domain)
  for _, suffix in ipairs(INTERNAL_SUFFIXES) do
    if ends_with(domain or '', suffix) then
      return true
    end
  end
  return false
end

-- Returns the pool name, or nil and why: 'unknown' (not in the map) or
-- 'unavailable' (Redis cannot be read and no answer is known).
function M.pool_for_tenant(tenant)
  local pool, state = store.tenant_pool(tenant)
  if state == 'unavailable' then
    return nil, 'unavailable'
  end
  if pool == nil then
    return nil, 'unknown'
  end
  if RANK[pool] == nil then
    -- A pool name this policy does not know could be anything; do not let it
    -- route a tenant better than the fallback.
    kumo.log_warn(
      string.format('trustgate: tenant %s has unknown pool %q', tenant, pool)
    )
    return M.FALLBACK_POOL
  end
  return pool
end

function M.queue_config(domain, tenant, campaign, routing_domain)
  local pool
  if tenant == nil then
    -- Reception refuses mail without a tenant, so this is mail that entered
    -- another way; hold it rather than send it from an arbitrary address.
    kumo.log_warn(
      string.format('trustgate: holding queue for %s: no tenant', domain)
    )
    pool = M.HELD_POOL
  else
    local why
    pool, why = M.pool_for_tenant(tenant)
    if pool == nil and why == 'unavailable' then
      kumo.log_warn(
        string.format('trustgate: holding queue for %s: tenant map unavailable', domain)
      )
      pool = M.HELD_POOL
    elseif pool == nil then
      -- Removed from the map after it was accepted (domain no longer allowed
      -- to send): hold its mail, which then expires or resumes.
      pool = M.HELD_POOL
    end
  end
  return kumo.make_queue_config {
    egress_pool = pool,
    refresh_strategy = 'Epoch',
  }
end

local function egress_pool(name)
  if name == M.HELD_POOL then
    -- Built here, without Redis: holding mail must work when Redis has been
    -- gone longer than this node's Lua contexts live (whatever the map says,
    -- this pool never sends).
    return kumo.make_egress_pool { name = M.HELD_POOL, entries = {} }
  end
  local definition, state = store.pool(name)
  if state == 'unavailable' then
    -- Raising (rather than returning an empty pool) keeps KumoMTA from caching
    -- a made-up definition; the queue retries resolution later.
    error(string.format('egress pool %s: pool map unavailable', name))
  end
  if definition == nil then
    error(string.format('egress pool %s is not defined in the pool map', name))
  end
  local entries = {}
  for _, entry in ipairs(definition.entries or {}) do
    table.insert(entries, { name = entry.name, weight = entry.weight })
  end
  -- No entries is valid: KumoMTA pauses the pool's queues (451 4.4.4,
  -- retried).
  return kumo.make_egress_pool {
    name = name,
    entries = entries,
    ttl = store.setting('pool_ttl', store.duration),
  }
end

local function egress_source(name)
  local definition, state = store.source(name)
  if state == 'unavailable' then
    error(string.format('egress source %s: source map unavailable', name))
  end
  if definition == nil then
    error(string.format('egress source %s is not defined in the pool map', name))
  end
  return kumo.make_egress_source {
    name = name,
    source_address = definition.source_address,
    ehlo_domain = definition.ehlo_domain,
    ttl = store.setting('pool_ttl', store.duration),
  }
end

function M.register()
  kumo.on('get_queue_config', function(domain, tenant, campaign, routing_domain)
    if M.is_internal(domain) then
      -- Returning nothing (not nil) lets KumoMTA ask the next handler.
      return
    end
    return M.queue_config(domain, tenant, campaign, routing_domain)
  end)
  kumo.on('get_egress_pool', egress_pool)
  kumo.on('get_egress_source', egress_source)
end

return M
