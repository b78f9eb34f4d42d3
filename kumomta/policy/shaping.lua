-- Traffic shaping: KumoMTA's shaping helper (policy-extras.shaping) with
-- shaping.toml recognises the providers by MX, keeps the stock defaults and
-- the Traffic Shaping Automation (TSA) rules; over what it gives, the policy
-- lays the platform's per-provider numbers from the `shaping` field of the
-- settings hash (connections, messages per hour, deliveries per connection per
-- source IP and provider site). With Redis throttles configured, the limits
-- are shared by all nodes.
local kumo = require 'kumo'
local defaults = require 'defaults'
local helper = require 'policy-extras.shaping'
local node = require 'node_config'
local routing = require 'routing'
local store = require 'store'

local M = {}

local shaper = nil

local function ends_with(text, suffix)
  return #text >= #suffix and text:sub(-#suffix) == suffix
end

local function positive_integer(value)
  local number = math.tointeger(value)
  if number ~= nil and number > 0 then
    return number
  end
  return nil
end

-- The platform's name for the provider of a path: the one the shaping helper
-- matched (by every MX host of the domain), else the one whose MX suffix ends
-- the site name, else 'default'.
function M.provider(matched, site_name)
  local shaping = store.setting 'shaping'
  if matched ~= nil and shaping[matched] ~= nil then
    return matched
  end
  local site = string.lower(site_name or '')
  for name, entry in pairs(shaping) do
    for _, suffix in ipairs(entry.mx_suffixes or {}) do
      if ends_with(site, suffix) then
        return name
      end
    end
  end
  return 'default'
end

-- The platform's numbers for a provider, field by field: from Redis, else the
-- fallback in defaults.lua (nil when neither has one).
function M.limits(provider)
  local configured = store.setting('shaping')[provider]
  local fallback = defaults.shaping[provider]
  local limits = {}
  for _, field in ipairs {
    'max_connections',
    'messages_per_hour',
    'max_deliveries_per_connection',
  } do
    limits[field] = positive_integer(configured and configured[field])
      or (fallback and fallback[field])
  end
  return limits
end

function M.path_config(domain, egress_source, site_name)
  local params = shaper.get_egress_path_config(domain, egress_source, site_name, true)
  if routing.is_internal(domain) then
    -- Log records, not mail: the queue's own entry in shaping.toml applies,
    -- and no provider limit; the stock default message rate is a mail limit
    -- that would hold the records back.
    params.max_message_rate = nil
    return kumo.make_egress_path(params)
  end
  local limits = M.limits(M.provider(params.provider_name, site_name))
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

-- Registers the helper's own handlers (the TSA publisher's queue and log
-- hook) and ours. Called once, from init.lua's main chunk.
function M.register()
  local options = { extra_files = { node.shaping_file }, publish = {}, subscribe = {} }
  if node.tsa_url ~= '' then
    options.publish = { node.tsa_url }
    options.subscribe = { node.tsa_url }
  end
  shaper = helper:setup_with_automation(options)
  kumo.on('get_egress_path_config', M.path_config)
end

-- In the `init` event: with a TSA daemon, starts publishing log records to it
-- and listening for its suspensions and configuration changes.
function M.setup_publish()
  if node.tsa_url ~= '' then
    shaper.setup_publish()
  end
end

return M
