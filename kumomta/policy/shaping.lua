-- Conservative per-provider shaping. The numbers come from the `shaping` field
-- of the settings hash (JSON), which the platform computes, e.g.
--   {"gmail": {"max_connections": 3, "messages_per_hour": 300}, ...}
-- With redis throttles configured, the limits are shared by all nodes.
local kumo = require 'kumo'
local store = require 'store'

local M = {}

-- FALLBACK ONLY, used while the settings hash has no `shaping` entry for a
-- provider. Deliberately low: too slow is recoverable, a block is not.
M.FALLBACK = {
  gmail = { max_connections = 3, messages_per_hour = 300 },
  microsoft = { max_connections = 2, messages_per_hour = 200 },
  yahoo = { max_connections = 2, messages_per_hour = 150 },
}

-- Recognised by recipient domain, or by MX host (the site name) for the many
-- domains hosted by these providers.
local PROVIDERS = {
  {
    name = 'gmail',
    domains = { '^gmail%.com$', '^googlemail%.com$' },
    sites = { 'google.com', 'googlemail.com' },
  },
  {
    name = 'microsoft',
    domains = {
      '^outlook%.',
      '^hotmail%.',
      '^live%.',
      '^msn%.com$',
      '^windowslive%.com$',
    },
    sites = { 'outlook.com' },
  },
  {
    name = 'yahoo',
    domains = {
      '^yahoo%.',
      '^ymail%.com$',
      '^rocketmail%.com$',
      '^aol%.com$',
    },
    sites = { 'yahoodns.net' },
  },
}

function M.provider(routing_domain, site_name)
  local domain = string.lower(routing_domain or '')
  local site = string.lower(site_name or '')
  for _, provider in ipairs(PROVIDERS) do
    for _, pattern in ipairs(provider.domains) do
      if domain:match(pattern) then
        return provider.name
      end
    end
    for _, host in ipairs(provider.sites) do
      if site:find(host, 1, true) then
        return provider.name
      end
    end
  end
  return nil
end

local function positive_integer(value)
  if math.type(value) == 'integer' and value > 0 then
    return value
  end
  if math.type(value) == 'float' and value > 0 and value == math.floor(value) then
    return math.tointeger(value)
  end
  return nil
end

function M.limits(provider)
  local shaping = store.settings().shaping or {}
  local configured = shaping[provider]
  if type(configured) ~= 'table' then
    configured = {}
  end
  local fallback = M.FALLBACK[provider] or {}
  local limits = {}
  for _, field in ipairs { 'max_connections', 'messages_per_hour' } do
    limits[field] = positive_integer(configured[field]) or fallback[field]
  end
  limits.max_deliveries_per_connection =
    positive_integer(configured.max_deliveries_per_connection)
  return limits
end

function M.path_config(routing_domain, egress_source, site_name)
  local provider = M.provider(routing_domain, site_name) or 'default'
  -- 'default' (other domains) is shaped only if the platform asks for it.
  local limits = M.limits(provider)
  local params = {}
  if limits.max_connections then
    params.connection_limit = limits.max_connections
  end
  if limits.messages_per_hour then
    params.max_message_rate = string.format('%d/h', limits.messages_per_hour)
  end
  if limits.max_deliveries_per_connection then
    params.max_deliveries_per_connection = limits.max_deliveries_per_connection
  end
  return kumo.make_egress_path(params)
end

function M.register()
  kumo.on('get_egress_path_config', M.path_config)
end

return M
