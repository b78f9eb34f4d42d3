-- Posts log records to the platform in batches (a JSON array) with a bearer
-- token. KumoMTA queues each record like a message, so an answer that asks
-- for a retry must become a transient failure here, or the record is lost.
local kumo = require 'kumo'
local log_hooks = require 'policy-extras.log_hooks'
local node = require 'node_config'
local store = require 'store'
local tenant = require 'tenant'

local M = {}

M.NAME = 'trustgate'
-- Fallback only; the platform sets `hook_batch_size` in the settings hash.
local DEFAULT_BATCH_SIZE = 100
local REQUEST_TIMEOUT = '30 seconds'
-- The records themselves are unacceptable: retrying the same batch cannot
-- succeed. Anything else that is not 2xx (429, 5xx, but also a wrong token or
-- URL) is an operator-fixable condition, so the records wait for the fix.
local PERMANENT = { [400] = true, [413] = true, [422] = true }

local function batch_size()
  local size = tonumber(store.settings().hook_batch_size)
  if size and size >= 1 and size == math.floor(size) then
    return math.tointeger(size)
  end
  return DEFAULT_BATCH_SIZE
end

local function hook_url()
  local url = store.settings().hook_url
  if type(url) == 'string' and url ~= '' then
    return url
  end
  return node.hook_url
end

local function excerpt(text)
  text = tostring(text or '')
  if #text > 200 then
    return text:sub(1, 200) .. '...'
  end
  return text
end

function M.constructor(domain, tenant_id, campaign)
  local client = kumo.http.build_client { timeout = REQUEST_TIMEOUT }
  local connection = {}

  function connection:send_batch(messages)
    local url = hook_url()
    if url == '' then
      kumo.reject(451, '4.3.5 log hook URL is not configured')
    end
    local records = {}
    for _, msg in ipairs(messages) do
      table.insert(records, msg:get_meta 'log_record')
    end
    local body = kumo.serde.json_encode(records)

    local ok, response = pcall(function()
      return client
        :post(url)
        :header('Content-Type', 'application/json')
        :bearer_auth(node.hook_token)
        :body(body)
        :send()
    end)
    if not ok then
      kumo.reject(451, '4.4.1 log hook unreachable: ' .. excerpt(response))
    end

    local status = response:status_code()
    local text = excerpt(response:text())
    if status >= 200 and status < 300 then
      return string.format('%d %s', status, text)
    end
    if PERMANENT[status] then
      kumo.reject(550, string.format('5.6.0 log hook refused the batch: %d %s', status, text))
    end
    kumo.reject(451, string.format('4.4.2 log hook answered %d %s', status, text))
  end

  function connection:close()
    client:close()
  end

  return connection
end

function M.register()
  if node.hook_token == '' then
    kumo.log_warn 'trustgate: TRUSTGATE_HOOK_TOKEN is empty; the platform will refuse log records'
  end
  log_hooks:new {
    name = M.NAME,
    batch_size = batch_size(),
    log_parameters = { meta = tenant.META },
    constructor = M.constructor,
  }
end

return M
